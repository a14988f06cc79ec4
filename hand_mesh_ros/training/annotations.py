"""The annotated-image JSONL of ``hand-mesh evaluate`` (``datasets.annotations``) as a
map-style dataset of ``HandSample``s, for ``evaluate-model --dataset annotations``.

Conversions: 3D keypoints millimetres -> metres (camera frame unchanged); hands whose side is
unknown are skipped (the DHPE is a right-hand model; left hands are mirrored by the crop, which
needs the side); without K the 60 degree horizontal field of view of ``hand-mesh estimate`` is
assumed (only the crop's K depends on it; such entries have no 3D, so no 3D metric uses it).
No masks (the format has none).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hand_mesh_ros.datasets.annotations import load_annotations
from hand_mesh_ros.datasets.sample import HandSample
from hand_mesh_ros.imageio import read_image
from hand_mesh_ros.pipeline.types import CameraIntrinsics

MM_PER_M = 1000.0
ASSUMED_FOV_DEG = 60.0  # horizontal field of view when an entry has no K (as ``estimate``)


class AnnotationDataset:
    """``len()`` and ``[i] -> HandSample`` over the entries with a known side."""

    def __init__(self, path: str | Path) -> None:
        self.entries = [a for a in load_annotations(path) if a.side is not None]
        if not self.entries:
            raise ValueError(f"{path}: no annotation with a known side")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> HandSample:
        entry = self.entries[index]
        image = read_image(entry.image)
        height, width = image.shape[:2]
        K = entry.K
        if K is None:
            camera = CameraIntrinsics.assumed_for(width, height, ASSUMED_FOV_DEG)
            K = camera.matrix(dtype=torch.float64).numpy()
        keypoints_3d = None
        if entry.keypoints_3d_mm is not None:
            keypoints_3d = entry.keypoints_3d_mm / MM_PER_M
        return HandSample(
            image=image,
            K=np.asarray(K, dtype=np.float64),
            keypoints_2d=entry.keypoints_2d,
            visibility=entry.visible.astype(np.float64),
            keypoints_3d=keypoints_3d,
            mask=None,
            side=entry.side,
            source=f"{entry.dataset}/{entry.name}",
        )
