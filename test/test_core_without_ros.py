"""The torch core must be usable without ROS: importing it never loads rclpy or messages."""

import ast
import subprocess
import sys
from pathlib import Path

from helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "hand_mesh_ros"
ROS_GLUE = PACKAGE / "ros"  # the only place allowed to import ROS
ROS_MODULE_PREFIXES = (
    "rclpy",
    "sensor_msgs",
    "std_msgs",
    "visualization_msgs",
    "geometry_msgs",
    "cv_bridge",
    "rosidl",
    "diagnostic_msgs",
    "lifecycle_msgs",
    "builtin_interfaces",
)


def _core_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ROS_GLUE in path.parents:
            continue
        rel = path.relative_to(REPO_ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__":  # a script: runs on import (its imports are checked above)
            continue
        names.append(".".join(parts))
    return names


def test_core_sources_import_no_ros():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if ROS_GLUE in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}: {m}" for m in mods if m.startswith(ROS_MODULE_PREFIXES)]
    assert not offenders, f"ROS imports in the torch core: {offenders}"


def test_importing_every_core_module_loads_no_ros():
    modules = _core_modules()
    assert "hand_mesh_ros.handmodel.model" in modules and "hand_mesh_ros.fitting.refine" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.startswith({ROS_MODULE_PREFIXES!r})]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(REPO_ROOT),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"ROS modules loaded: {result.stdout}"
