#!/usr/bin/env bash
# Install the wheels that PyPI lacks from ../shared/wheels (beside the checkout) into a venv:
# pytorch3d 0.7.9 (CPU build for torch 2.13.0+cpu; the renderer's optional backend and its
# parity test) and sensor_msgs_py (PointCloud2 helpers), plus pytorch3d's one runtime
# dependency, iopath, from PyPI (it pulls tqdm, portalocker, typing_extensions).
#
#   tools/install_shared_wheels.sh [VENV]      (default .venv)
#
# The shared wheels go in with --no-index --no-deps, and torch is pinned to the venv's own
# version while iopath resolves, so pip never changes torch. Without the folder this prints
# one line and succeeds: pytorch3d stays absent and its tests skip.
set -euo pipefail
VENV=$(cd "${1:-.venv}" && pwd)
cd "$(dirname "$0")/.."
WHEELS=../shared/wheels
PY="$VENV/bin/python"
# pytorch3d's C++ extension links against exactly this torch (../shared/wheels/PYTORCH3D.md)
PYTORCH3D_TORCH=2.13.0+cpu

if [ ! -d "$WHEELS" ]; then
  echo "no $WHEELS folder: shared wheels (pytorch3d, sensor_msgs_py) not installed"
  exit 0
fi

TORCH=$("$PY" -c "import torch; print(torch.__version__)")
PACKAGES=(sensor_msgs_py)
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
echo "installed ${PACKAGES[*]} from $WHEELS (and iopath from PyPI) into $VENV"
