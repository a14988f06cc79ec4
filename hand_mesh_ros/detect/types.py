"""Result types of the 2D hand front end (detectors that find hands and their 21 keypoints).

Pixels follow ``camera.py``: (u, v), u along columns, pixel centres at integer coordinates.
Keypoints follow ``topology.KEYPOINT_NAMES`` (K = 21: 0 wrist, 1-4 thumb, ..., 17-20 little).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_mesh_ros.topology import NUM_KEYPOINTS, SIDES


@dataclass(frozen=True, eq=False)
class Detection2D:
    """One detected hand in one image.

    Attributes:
        keypoints: (K, 2) float64 pixel coordinates (u, v) in the image given to the
            detector, in the core's keypoint order; may lie slightly outside the image.
        confidence: (K,) float64 in [0, 1], per-keypoint confidence (see the detector's
            docs for what it is made of).
        side: "left" or "right", the physical hand (already corrected for mirrored input).
        score: float in [0, 1], the detector's score for this hand (see the detector).
        world_keypoints: (K, 3) float64 metres, or None; the detector's metric 3D keypoints
            relative to the hand (frame documented by the detector).
        bbox: (x, y, w, h) pixels, the box around the keypoints clipped to the image;
            (x, y) is its top-left corner in the pixel-centre convention above.

    ``eq=False``: detections compare by identity (their fields are numpy arrays).
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    side: str
    score: float
    world_keypoints: np.ndarray | None
    bbox: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        problems = []
        if np.shape(self.keypoints) != (NUM_KEYPOINTS, 2):
            problems.append(f"keypoints shape {np.shape(self.keypoints)} != (21, 2)")
        if np.shape(self.confidence) != (NUM_KEYPOINTS,):
            problems.append(f"confidence shape {np.shape(self.confidence)} != (21,)")
        elif np.any((self.confidence < 0) | (self.confidence > 1)):
            problems.append("confidence outside [0, 1]")
        if self.side not in SIDES:
            problems.append(f"side {self.side!r} not in {SIDES}")
        if not 0.0 <= self.score <= 1.0:
            problems.append(f"score {self.score} outside [0, 1]")
        if self.world_keypoints is not None and np.shape(self.world_keypoints) != (
            NUM_KEYPOINTS,
            3,
        ):
            problems.append(f"world_keypoints shape {np.shape(self.world_keypoints)}")
        if len(self.bbox) != 4 or self.bbox[2] < 0 or self.bbox[3] < 0:
            problems.append(f"bbox {self.bbox} is not (x, y, w >= 0, h >= 0)")
        if problems:
            raise ValueError("invalid Detection2D: " + "; ".join(problems))
