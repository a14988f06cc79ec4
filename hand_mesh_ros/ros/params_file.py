"""ROS 2 parameter files (``config/estimator.yaml`` layout) read into config dataclasses.

Plain Python (PyYAML, no rclpy), so that ``hand-mesh estimate --params-file`` reads the node's
file without ROS. Layout: ``<node name or /**>: ros__parameters: {name: value}``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


def read_params_file(path: str | Path) -> dict[str, object]:
    """Every ``ros__parameters`` entry of the file (later sections override earlier ones)."""
    import yaml

    with open(path) as f:
        document = yaml.safe_load(f) or {}
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a ROS 2 parameter file (top level is not a mapping)")
    params: dict[str, object] = {}
    for section in document.values():
        if isinstance(section, dict):
            params.update(section.get("ros__parameters", {}) or {})
    return params


def load_params_file(path: str | Path, *config_classes) -> tuple:
    """One instance per class in ``config_classes`` from the file's values (defaults for the
    rest). A key that belongs to none of the classes is an error naming it; so is a value
    the class refuses."""
    params = read_params_file(path)
    names = [{f.name for f in dataclasses.fields(cls)} for cls in config_classes]
    known = set().union(*names)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{path}: unknown parameters {unknown}; known: {sorted(known)}")
    try:
        return tuple(
            cls(**{k: v for k, v in params.items() if k in fields})
            for cls, fields in zip(config_classes, names, strict=True)
        )
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
