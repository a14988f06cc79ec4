"""One annotated hand image, the common structure every dataset reader and the synthetic
generator produce (training, evaluation and self-data augmentation all consume it).

Frames and units: camera frame = OpenCV (x right, y down, z forward), metres; pixels with
centres at integer coordinates; keypoint order of ``topology.py`` (0 wrist, 1-4 thumb CMC..tip,
5-8 index MCP..tip, 9-12 middle, 13-16 ring, 17-20 little). Arrays are numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_mesh_ros.topology import NUM_KEYPOINTS

SIDES = ("left", "right")


@dataclass(frozen=True, eq=False)
class HandSample:
    """One hand in one RGB image.

    image: (H, W, 3) uint8 RGB.
    K: (3, 3) float64 pinhole intrinsics of ``image``, pixels.
    keypoints_2d: (21, 2) float64 pixels.
    visibility: (21,) float64 in [0, 1] (0 = not annotated / not visible).
    keypoints_3d: (21, 3) float64 metres, camera frame; None when the dataset has no 3D.
    mask: (H, W) bool hand mask; None when the dataset has none.
    side: "left" or "right" (the person's hand).
    pose (45,), shape (10,), global_orient (3,), transl (3,): hand-model parameters in the
        camera frame when known (synthetic data), else None.
    source: dataset name and item id, e.g. "rhd/training/00012:left".
    """

    image: np.ndarray
    K: np.ndarray
    keypoints_2d: np.ndarray
    visibility: np.ndarray
    keypoints_3d: np.ndarray | None
    mask: np.ndarray | None
    side: str
    source: str
    pose: np.ndarray | None = None
    shape: np.ndarray | None = None
    global_orient: np.ndarray | None = None
    transl: np.ndarray | None = None

    def __post_init__(self) -> None:
        h, w = self.image.shape[:2]
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"{self.source}: image must be (H, W, 3) uint8 RGB")
        if self.K.shape != (3, 3):
            raise ValueError(f"{self.source}: K must be (3, 3)")
        if self.keypoints_2d.shape != (NUM_KEYPOINTS, 2):
            raise ValueError(f"{self.source}: keypoints_2d must be (21, 2)")
        if self.visibility.shape != (NUM_KEYPOINTS,):
            raise ValueError(f"{self.source}: visibility must be (21,)")
        if self.keypoints_3d is not None and self.keypoints_3d.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(f"{self.source}: keypoints_3d must be (21, 3)")
        if self.mask is not None and self.mask.shape != (h, w):
            raise ValueError(f"{self.source}: mask must be (H, W) = {(h, w)}")
        if self.side not in SIDES:
            raise ValueError(f"{self.source}: side must be one of {SIDES}")

    @property
    def has_params(self) -> bool:
        return self.pose is not None
