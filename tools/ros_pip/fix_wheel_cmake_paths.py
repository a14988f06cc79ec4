"""Rewrite the build machine's paths that the ROS 2 PyPI wheels hard-code in their CMake files.

The wheels' CMake export files name `/opt/python/cp311-cp311/include/python3.11` and
`/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include`; CMake refuses
imported targets whose include directories do not exist (../shared/ROS2_PIP.md, point 3).
This replaces them, in `<prefix>/share/*/cmake/*.cmake`, by this interpreter's Python include
directory and numpy's include directory. Idempotent.

    python tools/ros_pip/fix_wheel_cmake_paths.py [PREFIX]   (default: sys.prefix)
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_PYTHON_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
BUILD_NUMPY_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def rewrite(prefix: Path) -> int:
    """Rewrite every CMake file under prefix/share; returns how many files changed."""
    replacements = {
        BUILD_PYTHON_INCLUDE: sysconfig.get_paths()["include"],
        BUILD_NUMPY_INCLUDE: numpy.get_include(),
    }
    changed = 0
    for path in sorted(prefix.glob("share/*/cmake/*.cmake")):
        text = path.read_text()
        new = text
        for old, replacement in replacements.items():
            new = new.replace(old, replacement)
        if new != text:
            path.write_text(new)
            changed += 1
    return changed


def main() -> int:
    prefix = Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    if not (prefix / "share").is_dir():
        print(f"error: {prefix}/share does not exist (not a ROS wheel prefix)", file=sys.stderr)
        return 1
    print(f"rewrote build-machine paths in {rewrite(prefix)} CMake files under {prefix}/share")
    return 0


if __name__ == "__main__":
    sys.exit(main())
