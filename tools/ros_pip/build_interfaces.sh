#!/usr/bin/env bash
# Build and install this package's ROS 2 messages (msg/*.msg) into a virtual environment that
# holds ROS 2 Kilted from its PyPI wheels -- the same CMakeLists.txt a colcon build uses.
#
#   tools/ros_pip/build_interfaces.sh [VENV]      (default .venv)
#
# Result: the C/C++ type support libraries in VENV/lib (on the loader path of every Python
# process of VENV, via ros-wheels-bootstrapper), the package's ament index entry in VENV/share,
# and the generated Python module `hand_mesh_ros.msg` in VENV/ros_interfaces, which a .pth file
# puts on sys.path (hand_mesh_ros/__init__.py extends its package path to it).
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
