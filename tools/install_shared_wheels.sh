#!/usr/bin/env bash
# Install the wheels that PyPI lacks from ../shared/wheels (beside the checkout) into a venv:
# pytorch3d 0.7.9 (CPU build for torch 2.13.0+cpu; the renderer's optional backend and its
# parity test), sensor_msgs_py (PointCloud2 helpers), the ROS 2 command line (`ros2 launch`,
# `ros2 lifecycle`, `ros2 param`, `ros2 topic`, ...: launch, launch_ros and ros2cli built from
# upstream, ../shared/wheels/README.md) with its PyPI-free dependencies copied into that folder
# (osrf_pycommon, psutil, lark_parser), plus pytorch3d's one runtime dependency, iopath, from
# PyPI (it pulls tqdm, portalocker, typing_extensions).
#
#   tools/install_shared_wheels.sh [VENV]      (default .venv)
#
# The shared wheels go in with --no-index --no-deps (PyPI's `launch` is another project), and
# torch is pinned to the venv's own version while iopath resolves, so pip never changes torch.
# Every other requirement of the ROS 2 CLI wheels (ros-rclpy, ros-lifecycle-msgs, catkin-pkg,
# empy, ...) comes from requirements-ros.txt; `pip check` confirms it. Without the folder this
# prints one line and succeeds: pytorch3d and the `ros2` CLI stay absent and their tests skip.
# `ros2` and launch need AMENT_PREFIX_PATH (e.g. the venv itself, or a colcon install + venv).
set -euo pipefail
VENV=$(cd "${1:-.venv}" && pwd)
cd "$(dirname "$0")/.."
WHEELS=../shared/wheels
PY="$VENV/bin/python"
# pytorch3d's C++ extension links against exactly this torch (../shared/wheels/PYTORCH3D.md)
PYTORCH3D_TORCH=2.13.0+cpu

if [ ! -d "$WHEELS" ]; then
  echo "no $WHEELS folder: shared wheels (pytorch3d, sensor_msgs_py, ros2 CLI) not installed"
  exit 0
fi

TORCH=$("$PY" -c "import torch; print(torch.__version__)")
# The ROS 2 CLI and launch, then what they need that requirements-ros.txt does not provide.
ROS_CLI=(launch launch_xml launch_yaml launch_ros ros2launch ros2cli ros2pkg ros2run ros2node
  ros2topic ros2service ros2param ros2lifecycle ros2interface ros2action rosidl_runtime_py
  osrf_pycommon psutil lark_parser)
PACKAGES=(sensor_msgs_py "${ROS_CLI[@]}")
if [ "$TORCH" = "$PYTORCH3D_TORCH" ]; then
  PACKAGES+=(pytorch3d)
else
  echo "torch $TORCH is not $PYTORCH3D_TORCH: the shared pytorch3d wheel is left out"
fi
"$PY" -m pip install --quiet --no-index --no-deps --find-links "$WHEELS" "${PACKAGES[@]}"

CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==$TORCH" >"$CONSTRAINTS"
"$PY" -m pip install --quiet --constraint "$CONSTRAINTS" iopath
"$PY" -m pip check >/dev/null || { "$PY" -m pip check; exit 1; }
echo "installed ${PACKAGES[*]} from $WHEELS (and iopath from PyPI) into $VENV"
