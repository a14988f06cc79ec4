"""The annotated-hands JSON-lines format (``shared/data/hands/annotations.jsonl``): schema and
reader, shared by ``hand-mesh evaluate`` and ``evaluate-model --dataset annotations``.

One hand per line: ``image`` (path relative to the file's folder, or absolute), ``name``
(optional; default the image path), ``dataset`` (optional; default "unknown"), ``side``
("left", "right" or null), ``kp2d`` 21 x [u, v, visible] pixels, ``kp3d`` 21 x 3 millimetres
in the OpenCV camera frame or null, ``K`` 3x3 or null, ``bbox`` [x, y, w, h] pixels, and
optionally ``depth``: the path (relative like ``image``) of a depth image aligned to the image
(a 16-bit PNG in millimetres or a float32 .npy in metres, read by ``depthio.read_depth``), or
null. Several lines may name the same image (and then the same depth). Keypoints are in the
core order of ``topology.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hand_mesh_ros.topology import NUM_KEYPOINTS, SIDES


@dataclass(frozen=True, eq=False)
class Annotation:
    """One annotated hand.

    keypoints_2d: (21,2) pixels; visible: (21,) bool; keypoints_3d_mm: (21,3) millimetres,
    OpenCV camera frame, or None; K: (3,3) intrinsics or None; bbox: (x, y, w, h) pixels;
    depth: the aligned depth image's path, or None.
    """

    name: str
    image: Path
    dataset: str
    side: str | None
    keypoints_2d: np.ndarray
    visible: np.ndarray
    keypoints_3d_mm: np.ndarray | None
    K: np.ndarray | None
    bbox: tuple[float, float, float, float]
    depth: Path | None = None

    @property
    def box_size(self) -> float:
        """The annotated box's longer side (pixels): the 2D normaliser."""
        return float(max(self.bbox[2], self.bbox[3]))


def parse_annotation(record: dict, root: Path) -> Annotation:
    """One JSON record -> Annotation; image and depth paths are relative to ``root``."""
    keypoints_2d = np.asarray(record["kp2d"], dtype=np.float64)
    if keypoints_2d.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"kp2d must be 21 x [u, v, visible], got shape {keypoints_2d.shape}")
    side = record.get("side")
    if side is not None and side not in SIDES:
        raise ValueError(f"side must be one of {SIDES} or null, got {side!r}")
    keypoints_3d = None
    if record.get("kp3d") is not None:
        keypoints_3d = np.asarray(record["kp3d"], np.float64)
    if keypoints_3d is not None and keypoints_3d.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"kp3d must be 21 x 3, got shape {keypoints_3d.shape}")
    K = None if record.get("K") is None else np.asarray(record["K"], dtype=np.float64)
    if K is not None and K.shape != (3, 3):
        raise ValueError(f"K must be 3 x 3, got shape {K.shape}")
    bbox = tuple(float(v) for v in record["bbox"])
    if len(bbox) != 4 or max(bbox[2], bbox[3]) <= 0:
        raise ValueError(f"bbox must be [x, y, w, h] with a positive size, got {bbox}")
    depth = record.get("depth")
    if depth is not None and (not isinstance(depth, str) or not depth):
        raise ValueError(f"depth must be a depth image's path or null, got {depth!r}")
    return Annotation(
        name=str(record.get("name", record["image"])),
        image=root / record["image"],
        dataset=str(record.get("dataset", "unknown")),
        side=side,
        keypoints_2d=keypoints_2d[:, :2],
        visible=keypoints_2d[:, 2] > 0,
        keypoints_3d_mm=keypoints_3d,
        K=K,
        bbox=bbox,
        depth=None if depth is None else root / depth,
    )


def load_annotations(path: str | Path) -> list[Annotation]:
    """All hands of a JSON-lines file; errors name the line. Blank lines are skipped."""
    path = Path(path)
    annotations = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            annotations.append(parse_annotation(json.loads(line), path.parent))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: bad annotation: {exc!r}") from exc
    if not annotations:
        raise ValueError(f"{path}: no annotations")
    return annotations


def group_by_image(annotations: Sequence[Annotation]) -> dict[Path, list[Annotation]]:
    """Annotations per image, in first-appearance order."""
    groups: dict[Path, list[Annotation]] = {}
    for annotation in annotations:
        groups.setdefault(annotation.image, []).append(annotation)
    return groups
