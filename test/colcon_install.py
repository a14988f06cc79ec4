"""The package built as a ROS user builds it, once per test session, and the environment that
"sources" the result.

`colcon build` of a workspace holding this repository's tracked (and untracked, not ignored)
files, against the ROS 2 wheels' prefix (the venv); the session fixture ``colcon_install`` in
conftest.py calls :func:`build` and shares the install among test_colcon_build.py,
test_launch_file.py and test_ros2_cli.py. Imported as ``from colcon_install import ...``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import REPO_ROOT

COLCON = shutil.which("colcon", path=os.path.dirname(sys.executable))
PY = f"python{sys.version_info.major}.{sys.version_info.minor}"
BUILD_TIMEOUT_S = 600


def unavailable() -> str | None:
    """Why the package cannot be built here, or None."""
    if COLCON is None:
        return "colcon not installed"
    if not (REPO_ROOT / ".git").exists():
        return "needs a git checkout (the tracked files make the workspace)"
    return None


def build(ws: Path) -> Path:
    """colcon-build the repository in the new workspace ``ws``; returns install/hand_mesh_ros.
    AssertionError with the end of colcon's output when the build fails."""
    src = ws / "src" / "hand_mesh_ros"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if name.startswith(("docs/", "test/")) or not (REPO_ROOT / name).is_file():
            continue
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, src / name)
    prefix = sys.prefix
    env = dict(os.environ, AMENT_PREFIX_PATH=prefix, CMAKE_PREFIX_PATH=prefix)
    result = subprocess.run(
        [
            COLCON,
            "build",
            "--cmake-args",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DBUILD_TESTING=OFF",
        ],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return ws / "install" / "hand_mesh_ros"


def ament_prefix_path(install: Path) -> str:
    """The install in front of the ROS 2 wheels' prefix (what `source install/setup.bash`
    sets, for this one package)."""
    return f"{install}:{sys.prefix}"


def sourced_env(install: Path, *, domain: int) -> dict[str, str]:
    """os.environ as after activating the venv and sourcing the install, on a private
    ROS_DOMAIN_ID, localhost only. (The venv's bin on PATH: the installed estimator_node runs
    with ``#!/usr/bin/env python3``, and ``ros2 launch`` starts it that way.)"""
    env = dict(os.environ)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)  # let the wheels' bootstrap set the loader path
    env.update(
        PATH=os.pathsep.join(filter(None, (os.path.dirname(sys.executable), env.get("PATH")))),
        PYTHONPATH=str(install / "lib" / PY / "site-packages"),  # the install, not the source
        LD_LIBRARY_PATH=f"{install / 'lib'}:{env.get('LD_LIBRARY_PATH', '')}",
        AMENT_PREFIX_PATH=ament_prefix_path(install),
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
    )
    return env
