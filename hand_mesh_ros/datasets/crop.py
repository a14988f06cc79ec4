"""The paper's square hand crop (DHPE Sec. 3.3) and batching for a torch DataLoader.

Box: centred on the tight box of the visible 2D keypoints, side g = BOX_SCALE (1.5) x
max(height, width) of that box; optionally jittered (``CropJitter``: side scale and shift).
The box [c - g/2, c + g/2]^2 (continuous pixel coordinates, pixel centres at integers) maps
onto the crop's [-0.5, S - 0.5]^2, i.e. homogeneous pixels p' = A p with

    A = [[s, 0, -s (c_x - g/2) - 0.5], [0, s, -s (c_y - g/2) - 0.5], [0, 0, 1]],  s = S / g.

The image is warped with ``cv2.warpAffine`` (bilinear, black outside the image; Gaussian
pre-blur when shrinking by more than 2x), the mask likewise (then cut at 0.5), keypoints_2d
are mapped by A and the intrinsics become A K, so projecting keypoints_3d with the crop's K
gives the crop's keypoints_2d; keypoints_3d and hand-model params are unchanged (the crop does
not move the camera).

Left hands: the DHPE network and its hand model are right-handed, so by default a left hand
is mirrored into a right hand (``mirror.py`` conventions): the crop is flipped left-right
(A <- F A, F: u -> S - 1 - u), keypoints_3d x -> -x, K <- A K M (M = diag(-1, 1, 1)), params
moved to the right model, ``flipped = True`` and ``side`` keeps the person's original hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import cv2
import numpy as np
import torch

from hand_mesh_ros.camera import CROP_SIZE
from hand_mesh_ros.datasets.mirror import REFLECT_X, flip_matrix, mirror_params
from hand_mesh_ros.datasets.sample import HandSample
from hand_mesh_ros.topology import NUM_KEYPOINTS, NUM_POSE, NUM_SHAPE
from hand_mesh_ros.training.losses import BOX_SCALE

MIN_BOX_SIDE = 1.0  # pixels; a smaller keypoint box cannot be cropped
MIN_BOX_KEYPOINTS = 2  # visible keypoints needed to place the box
ANTIALIAS_BELOW = 0.5  # crop/image scale under which the image is blurred before warping
MASK_CUT = 0.5  # warped (bilinear) mask values >= this are hand


@dataclass(frozen=True, kw_only=True)
class CropJitter:
    """Training-time box jitter: side x U(scale_range), centre + U(-max_shift, max_shift) x
    side per axis."""

    scale_range: tuple[float, float] = (0.9, 1.1)
    max_shift: float = 0.1

    def __post_init__(self) -> None:
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < min <= max, got {self.scale_range}")
        if not 0 <= self.max_shift < 0.5:
            raise ValueError("max_shift must be in [0, 0.5)")


@dataclass(frozen=True, eq=False)
class CropSample:
    """One hand crop, torch-ready numpy arrays (S = crop size).

    image (3, S, S) float32 RGB in [0, 1]; mask (S, S) float32 in {0, 1} or None;
    keypoints_2d (21, 2) float32 crop pixels; visibility (21,) float32; keypoints_3d (21, 3)
    float32 metres in the (possibly mirrored) camera frame, or None; K (3, 3) float32 crop
    intrinsics; pose (45,), shape (10,), global_orient (3,), transl (3,) float32 for the
    right-hand model, or None; side: the person's hand; flipped: True when a left hand was
    mirrored; crop_from_image (3, 3) float64 A (flip included) mapping original pixels to
    crop pixels; source as in the HandSample.
    """

    image: np.ndarray
    mask: np.ndarray | None
    keypoints_2d: np.ndarray
    visibility: np.ndarray
    keypoints_3d: np.ndarray | None
    K: np.ndarray
    pose: np.ndarray | None
    shape: np.ndarray | None
    global_orient: np.ndarray | None
    transl: np.ndarray | None
    side: str
    flipped: bool
    crop_from_image: np.ndarray
    source: str


def crop_box(
    keypoints_2d: np.ndarray, visibility: np.ndarray, *, box_scale: float = BOX_SCALE
) -> tuple[np.ndarray, float]:
    """(21, 2) pixels, (21,) weights -> box centre (2,) and side (pixels) from the visible
    keypoints (visibility > 0)."""
    visible = np.asarray(keypoints_2d, dtype=np.float64)[np.asarray(visibility) > 0]
    if len(visible) < MIN_BOX_KEYPOINTS:
        raise ValueError(f"need at least {MIN_BOX_KEYPOINTS} visible keypoints to crop")
    low, high = visible.min(axis=0), visible.max(axis=0)
    side = box_scale * float((high - low).max())
    if side < MIN_BOX_SIDE:
        raise ValueError(f"keypoint box side {side:.3g} px is too small to crop")
    return (low + high) / 2.0, side


def crop_transform(centre: np.ndarray, side: float, crop_size: int) -> np.ndarray:
    """(3, 3) A mapping homogeneous image pixels into the crop (module docstring)."""
    s = crop_size / side
    return np.array(
        [
            [s, 0.0, -s * (centre[0] - side / 2.0) - 0.5],
            [0.0, s, -s * (centre[1] - side / 2.0) - 0.5],
            [0.0, 0.0, 1.0],
        ]
    )


def _jittered(centre, side, jitter: CropJitter, rng: np.random.Generator):
    side = side * rng.uniform(*jitter.scale_range)
    shift = rng.uniform(-jitter.max_shift, jitter.max_shift, size=2) * side
    return centre + shift, side


def _warp(image: np.ndarray, A: np.ndarray, crop_size: int) -> np.ndarray:
    scale = abs(A[0, 0])
    if scale < ANTIALIAS_BELOW:
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=0.5 / scale)
    return cv2.warpAffine(
        image,
        A[:2],
        (crop_size, crop_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def crop_sample(
    sample: HandSample,
    *,
    crop_size: int = CROP_SIZE,
    box_scale: float = BOX_SCALE,
    jitter: CropJitter | None = None,
    rng: np.random.Generator | None = None,
    flip_left: bool = True,
) -> CropSample:
    """Crop ``sample`` around its hand (module docstring); ``jitter`` needs ``rng``."""
    centre, side = crop_box(sample.keypoints_2d, sample.visibility, box_scale=box_scale)
    if jitter is not None:
        if rng is None:
            raise ValueError("crop jitter needs an rng (numpy.random.Generator)")
        centre, side = _jittered(centre, side, jitter, rng)
    A = crop_transform(centre, side, crop_size)
    flipped = flip_left and sample.side == "left"
    reflect = np.eye(3)
    if flipped:
        A = flip_matrix(crop_size) @ A
        reflect = REFLECT_X
    image = _warp(sample.image, A, crop_size)
    mask = None
    if sample.mask is not None:
        warped = _warp(sample.mask.astype(np.float32), A, crop_size)
        mask = (warped >= MASK_CUT).astype(np.float32)
    kp2d = np.c_[sample.keypoints_2d, np.ones(NUM_KEYPOINTS)] @ A.T
    kp3d = None if sample.keypoints_3d is None else sample.keypoints_3d @ reflect
    params = {
        "pose": sample.pose,
        "shape": sample.shape,
        "global_orient": sample.global_orient,
        "transl": sample.transl,
    }
    if flipped:
        params = mirror_params(**params)

    def f32(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a, dtype=np.float32)

    return CropSample(
        image=np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0,
        mask=mask,
        keypoints_2d=f32(kp2d[:, :2]),
        visibility=f32(sample.visibility),
        keypoints_3d=f32(kp3d),
        K=f32(A @ sample.K @ reflect),
        **{name: f32(value) for name, value in params.items()},
        side=sample.side,
        flipped=flipped,
        crop_from_image=A,
        source=sample.source,
    )


@dataclass(frozen=True)
class CropBatch:
    """A batch of crops as torch tensors (B samples, S crop size); zeros where missing.

    image (B, 3, S, S); mask (B, S, S), has_mask (B,) bool; keypoints_2d (B, 21, 2);
    visibility (B, 21); keypoints_3d (B, 21, 3), has_3d (B,) bool; K (B, 3, 3); pose (B, 45),
    shape (B, 10), global_orient (B, 3), transl (B, 3), has_params (B,) bool; flipped (B,)
    bool; crop_from_image (B, 3, 3) float64; sides, sources: tuples of B strings.
    """

    image: torch.Tensor
    mask: torch.Tensor
    has_mask: torch.Tensor
    keypoints_2d: torch.Tensor
    visibility: torch.Tensor
    keypoints_3d: torch.Tensor
    has_3d: torch.Tensor
    K: torch.Tensor
    pose: torch.Tensor
    shape: torch.Tensor
    global_orient: torch.Tensor
    transl: torch.Tensor
    has_params: torch.Tensor
    flipped: torch.Tensor
    crop_from_image: torch.Tensor
    sides: tuple[str, ...]
    sources: tuple[str, ...]

    def to(self, device: torch.device | str) -> CropBatch:
        """A copy with every tensor on ``device``."""
        moved = {}
        for field in fields(self):
            value = getattr(self, field.name)
            moved[field.name] = value.to(device) if isinstance(value, torch.Tensor) else value
        return CropBatch(**moved)


def _stack(values: Sequence[np.ndarray | None], shape: tuple[int, ...]) -> torch.Tensor:
    """Stack float32 arrays, zeros (of ``shape``) where an entry is None."""
    filled = [np.zeros(shape, np.float32) if v is None else v for v in values]
    return torch.from_numpy(np.stack(filled).astype(np.float32, copy=False))


def collate(samples: Sequence[CropSample]) -> CropBatch:
    """Batch crops of one crop size (use as a DataLoader's ``collate_fn``)."""
    if not samples:
        raise ValueError("cannot collate an empty list of crops")
    size = samples[0].image.shape[1:]
    if any(s.image.shape[1:] != size for s in samples):
        raise ValueError("all crops in a batch must have the same size")

    def flags(name: str) -> torch.Tensor:
        return torch.tensor([getattr(s, name) is not None for s in samples])

    return CropBatch(
        image=torch.from_numpy(np.stack([s.image for s in samples])),
        mask=_stack([s.mask for s in samples], size),
        has_mask=flags("mask"),
        keypoints_2d=_stack([s.keypoints_2d for s in samples], (NUM_KEYPOINTS, 2)),
        visibility=_stack([s.visibility for s in samples], (NUM_KEYPOINTS,)),
        keypoints_3d=_stack([s.keypoints_3d for s in samples], (NUM_KEYPOINTS, 3)),
        has_3d=flags("keypoints_3d"),
        K=_stack([s.K for s in samples], (3, 3)),
        pose=_stack([s.pose for s in samples], (NUM_POSE,)),
        shape=_stack([s.shape for s in samples], (NUM_SHAPE,)),
        global_orient=_stack([s.global_orient for s in samples], (3,)),
        transl=_stack([s.transl for s in samples], (3,)),
        has_params=flags("pose"),
        flipped=torch.tensor([s.flipped for s in samples]),
        crop_from_image=torch.from_numpy(np.stack([s.crop_from_image for s in samples])),
        sides=tuple(s.side for s in samples),
        sources=tuple(s.source for s in samples),
    )
