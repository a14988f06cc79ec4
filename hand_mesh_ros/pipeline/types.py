"""Results of the image -> hands pipeline: camera intrinsics, per-hand estimates, per frame.

Frames and units: camera frame = OpenCV (x right, y down, z forward), metres; pixels with
centres at integer coordinates; keypoint order of ``topology.py``. Arrays are numpy float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from hand_mesh_ros.fitting.depth import (  # noqa: F401 (the statuses' home is the rule)
    DEPTH_DISAGREES,
    DEPTH_IGNORED,
    DEPTH_NONE,
    DEPTH_TOO_FEW,
    DEPTH_USED,
)

DEFAULT_HORIZONTAL_FOV_DEG = 60.0  # assumed when no intrinsics are given (a typical webcam)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels; ``assumed`` is True when they were not given."""

    fx: float
    fy: float
    cx: float
    cy: float
    assumed: bool = False

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(
                f"invalid intrinsics fx={self.fx} fy={self.fy} cx={self.cx} "
                f"cy={self.cy}: focal lengths must be finite and > 0"
            )

    @staticmethod
    def assumed_for(
        width: int, height: int, horizontal_fov_deg: float = DEFAULT_HORIZONTAL_FOV_DEG
    ) -> CameraIntrinsics:
        """Square pixels, principal point at the image centre, the given horizontal FOV."""
        focal = (width / 2.0) / math.tan(math.radians(horizontal_fov_deg) / 2.0)
        return CameraIntrinsics(focal, focal, (width - 1) / 2.0, (height - 1) / 2.0, True)

    @staticmethod
    def from_matrix(K, *, assumed: bool = False) -> CameraIntrinsics:
        """From a (3,3) K (numpy, torch or nested lists); zero skew is assumed (K[0,1] ignored)."""
        k = np.asarray(K.tolist() if isinstance(K, torch.Tensor) else K, dtype=np.float64)
        if k.shape != (3, 3):
            raise ValueError(f"K must be 3x3, got shape {k.shape}")
        return CameraIntrinsics(
            float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), assumed
        )

    def matrix(self, *, dtype=torch.float32, device=None) -> torch.Tensor:
        """(3,3) K."""
        return torch.tensor(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]],
            dtype=dtype,
            device=device,
        )

    def as_dict(self) -> dict:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "assumed": self.assumed}




@dataclass(frozen=True)
class HandDepth:
    """How one hand's fit used the aligned depth image.

    used: the observed depth placed and refined the hand; status: ``DEPTH_USED`` or why not
    (``DEPTH_TOO_FEW``, ``DEPTH_DISAGREES``); valid_fraction: fraction of the hand's
    observation cells (``fitting/depth.py``: the grid cells its front-facing vertices fall in)
    with a valid observed depth; residual_mm: median |observed - fitted surface depth| over
    its depth points after the fit, mm (nan when unused); scale: the size correction the
    depth still implies after the fit (1 = the fitted size agrees with the depth);
    measured_shape: (10,) the fitted shape with that correction -- this frame's measurement
    of the hand's shape (None when unused).
    """

    used: bool
    status: str
    valid_fraction: float
    residual_mm: float = math.nan
    scale: float = 1.0
    measured_shape: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class HandEstimate:
    """One hand in one frame.

    keypoints_2d: (21,2) pixels, the fitted hand's projected keypoints.
    detected_keypoints_2d: (21,2) pixels, the detector's keypoints (the 2D evidence).
    keypoints_3d: (21,3) metres, camera frame.
    pose (45,), shape (10,), global_orient (3,), transl (3,): parameters of ``model_name``'s
        ``side`` hand model that reproduce vertices/keypoints_3d in the camera frame.
    vertices: (V,3) metres, camera frame; faces: (F,3) int64 (shared, do not modify).
    depth: how the aligned depth was used (None when the frame had no depth image).
    """

    side: str
    score: float
    track_id: int
    keypoints_2d: np.ndarray
    detected_keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray
    pose: np.ndarray
    shape: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    model_name: str
    refine_iterations: int
    refine_loss: float
    keypoint_error_px: float
    depth: HandDepth | None = None

    @property
    def depth_used(self) -> bool:
        """True when the observed depth placed and refined this hand (metric, not sized by
        the shape prior)."""
        return self.depth is not None and self.depth.used


@dataclass(frozen=True, eq=False)
class FrameResult:
    """All hands of one image.

    timings_ms: milliseconds per stage (detect, prepare, regress, align, refine, finish,
        total); a stage that ran for two groups of hands (tracked, new) holds their sum.
    invalid: indices of the detections whose fit was dropped (non-finite values).
    depth_given: an aligned depth image came with the frame (each hand's ``depth`` says
        whether it was used).
    """

    width: int
    height: int
    camera: CameraIntrinsics
    hands: tuple[HandEstimate, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
    invalid: tuple[int, ...] = ()
    depth_given: bool = False
