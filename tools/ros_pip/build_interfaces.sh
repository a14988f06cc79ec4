#!/usr/bin/env bash
# Build and install this package's ROS 2 messages (msg/*.msg) into a virtual environment that
# holds ROS 2 Kilted from its PyPI wheels -- the same CMakeLists.txt a colcon build uses.
#
#   tools/ros_pip/build_interfaces.sh [VENV]      (default .venv)
#
# Result: the C/C++ type support libraries in VENV/lib (on the loader path of every Python
# process of VENV, via ros-wheels-bootstrapper), the package's ament index entry in VENV/share,
# and the generated Python module `hand_mesh_ros.msg` in VENV/ros_interfaces, which a .pth file
# puts on sys.path (hand_mesh_ros/__init__.py extends its package path to it). Also
# tf2_msgs/msg/TFMessage (for /tf), from tools/ros_pip/tf2_msgs, when no tf2_msgs is importable.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=$(cd "${1:-.venv}" && pwd)
PY="$VENV/bin/python"
BUILD=build/ros_interfaces
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

"$PY" tools/ros_pip/fix_wheel_cmake_paths.py "$VENV"
export AMENT_PREFIX_PATH="$VENV"
cmake -S . -B "$BUILD" -Wno-dev --log-level=WARNING \
  -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" -DPython3_EXECUTABLE="$PY" \
  -DHAND_MESH_ROS_INSTALL_PYTHON=OFF -DPYTHON_INSTALL_DIR=ros_interfaces -DBUILD_TESTING=OFF
cmake --build "$BUILD" -j "$(nproc)" -- --no-print-directory >"$BUILD/build.log" 2>&1 \
  || { tail -40 "$BUILD/build.log"; exit 1; }
cmake --install "$BUILD" >/dev/null
echo "$VENV/ros_interfaces" >"$SITE/hand_mesh_ros_interfaces.pth"
echo "built hand_mesh_ros messages into $VENV"

# tf2_msgs/msg/TFMessage (the message of /tf) is not on PyPI: build the copy in
# tools/ros_pip/tf2_msgs (ROS's definition, so ROS's type hash) the same way, unless a tf2_msgs
# is importable from elsewhere (a sourced ROS install has the real one).
TF2_AT=$("$PY" -c "import tf2_msgs.msg as m; print(m.__file__)" 2>/dev/null || true)
if [[ -n "$TF2_AT" && "$TF2_AT" != "$VENV/ros_interfaces/"* ]]; then
  echo "tf2_msgs found at $TF2_AT: not building tools/ros_pip/tf2_msgs"
else
  TF2_BUILD=build/ros_interfaces_tf2_msgs
  cmake -S tools/ros_pip/tf2_msgs -B "$TF2_BUILD" -Wno-dev --log-level=WARNING \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" -DPython3_EXECUTABLE="$PY" \
    -DPYTHON_INSTALL_DIR=ros_interfaces -DBUILD_TESTING=OFF
  cmake --build "$TF2_BUILD" -j "$(nproc)" -- --no-print-directory >"$TF2_BUILD/build.log" 2>&1 \
    || { tail -40 "$TF2_BUILD/build.log"; exit 1; }
  cmake --install "$TF2_BUILD" >/dev/null
  echo "built tf2_msgs (TFMessage) into $VENV"
fi
