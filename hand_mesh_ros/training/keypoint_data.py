"""Synthetic training samples for the keypoint -> mesh regressor (``nets/keypoint_regressor``).

Each sample mimics what the pipeline feeds the regressor at inference:

1. a right hand: pose from the pose prior (``PosePrior.sample``), shape ~ N(0, 1) clipped to
   +-``shape_clip``; a random viewpoint as in ``synthetic/scenes.py`` (any roll, tilt up to
   ``max_tilt_deg``, palm or back towards the camera) on the model's canonical frame (the open
   model's identity shows the palm, fingers up);
2. a real pinhole camera (focal ``focal_range`` px, ``image_size``, principal point at the
   centre); the middle MCP at a random depth and a random pixel; clean 2D keypoints p;
3. detector-like noise, in units of the hand's 2D box size b (max of width and height of p):
   Gaussian jitter with a per-sample std drawn from ``jitter_range`` (1.5-3 % of b), plus
   with probability ``tip_outlier_probability`` per fingertip an outlier of magnitude
   ``tip_outlier_range`` x b in a random direction;
4. per-keypoint confidence: with probability ``no_confidence_probability`` all ones (what a
   detector without per-keypoint scores gives; the pipeline passes None = ones), otherwise
   U(``confidence_range``) for inliers and U(``outlier_confidence_range``) for outliers;
5. the pipeline's crop: ``hand_roi(noisy, crop_size)`` (1.5 x the NOISY keypoint box) and
   both keypoint sets in crop pixels;
6. targets in the virtual crop camera (``camera.crop_intrinsics``), whose optical axis is the
   real camera's ray through the crop centre (``crop_view_rotation``, R_view): the hand's
   rotation there is R_view^T R, its crop scale 1, and the anchor (middle MCP) position is
   the least-squares fit of the crop-camera projection to the clean crop keypoints. The fit is
   exact up to the perspective difference between the real affine crop and the rotated
   virtual camera (measured: mean 1.4 px at 224 px over this distribution, larger only for
   hands far off-axis with short focal lengths).

Sides: only right hands are generated; the pipeline mirrors left-hand keypoints to the right
(u -> W - 1 - u in the image) before calling the regressor and mirrors the result back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hand_mesh_ros.camera import (
    CROP_REF_DEPTH,
    CROP_SIZE,
    backproject,
    crop_intrinsics,
    intrinsics_matrix,
    project,
)
from hand_mesh_ros.fitting.roi import hand_roi
from hand_mesh_ros.nets.keypoint_regressor import crop_view_rotation
from hand_mesh_ros.rotations import matrix_to_quaternion
from hand_mesh_ros.synthetic.scenes import SceneConfig, random_rotations
from hand_mesh_ros.topology import MIDDLE_MCP_KEYPOINT, NUM_KEYPOINTS, NUM_SHAPE, TIP_KEYPOINTS

MIN_FIT_DEPTH = 0.05  # metres; guards the least-squares anchor depth


@dataclass(frozen=True, kw_only=True)
class KeypointDataConfig:
    """Distribution of the synthetic samples (see the module docstring; px = image pixels).

    noise_scale multiplies every noise term (0 = clean keypoints, for evaluation).
    """

    image_size: tuple[int, int] = (480, 640)  # (H, W) px
    focal_range: tuple[float, float] = (450.0, 1100.0)  # px
    depth_range: tuple[float, float] = (0.25, 1.0)  # metres, of the middle MCP
    centre_margin: float = 0.15  # fraction of the image kept free at each border (anchor)
    max_tilt_deg: float = 80.0
    back_view_probability: float = 0.5
    shape_clip: float = 2.0
    jitter_range: tuple[float, float] = (0.015, 0.03)  # std, fraction of the 2D box size
    tip_outlier_probability: float = 0.05  # per fingertip
    tip_outlier_range: tuple[float, float] = (0.05, 0.15)  # fraction of the 2D box size
    no_confidence_probability: float = 0.5
    confidence_range: tuple[float, float] = (0.6, 1.0)
    outlier_confidence_range: tuple[float, float] = (0.1, 0.6)
    noise_scale: float = 1.0
    crop_size: int = CROP_SIZE


@dataclass(frozen=True)
class KeypointBatch:
    """One batch of samples.

    keypoints_2d: (B, 21, 2) noisy keypoints, crop px (the regressor's input).
    confidence: (B, 21) in [0, 1].
    clean_keypoints_2d: (B, 21, 2) true keypoints, crop px (refiner / reprojection target).
    keypoints_3d: (B, 21, 3) metres, crop camera frame (projects to ~clean_keypoints_2d
        through ``crop_intrinsics``).
    theta: (B, 63) target [pose 45 rad | shape 10 | crop camera 8].
    """

    keypoints_2d: torch.Tensor
    confidence: torch.Tensor
    clean_keypoints_2d: torch.Tensor
    keypoints_3d: torch.Tensor
    theta: torch.Tensor


def _uniform(n, bounds, generator, *shape) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, *shape, generator=generator)


def _place_in_image(local: torch.Tensor, cfg: KeypointDataConfig, generator):
    """local (B, 21, 3) rotated skeleton centred on the middle MCP -> (B, 21, 2) image px and
    the intrinsics (B, 3, 3)."""
    n = local.shape[0]
    h, w = cfg.image_size
    focal = _uniform(n, cfg.focal_range, generator)
    k = torch.zeros(n, 3, 3)
    k[:] = intrinsics_matrix(1.0, 1.0, (w - 1) / 2.0, (h - 1) / 2.0)
    k[:, 0, 0], k[:, 1, 1] = focal, focal
    depth = _uniform(n, cfg.depth_range, generator)
    frac = cfg.centre_margin + (1 - 2 * cfg.centre_margin) * torch.rand(n, 2, generator=generator)
    anchor_px = frac * torch.tensor([w - 1.0, h - 1.0])
    anchor = backproject(anchor_px[:, None], depth[:, None], k)  # (B, 1, 3)
    return project(local + anchor, k), k


def _add_noise(clean: torch.Tensor, cfg: KeypointDataConfig, generator):
    """clean (B, 21, 2) px -> noisy (B, 21, 2) px and the outlier mask (B, 21)."""
    n = clean.shape[0]
    box = (clean.amax(1) - clean.amin(1)).amax(-1)[:, None, None]  # (B, 1, 1)
    sigma = _uniform(n, cfg.jitter_range, generator)[:, None, None]
    noise = sigma * torch.randn(n, NUM_KEYPOINTS, 2, generator=generator)
    outlier = torch.zeros(n, NUM_KEYPOINTS, dtype=torch.bool)
    tips = list(TIP_KEYPOINTS)
    outlier[:, tips] = torch.rand(n, len(tips), generator=generator) < cfg.tip_outlier_probability
    angle = 2 * math.pi * torch.rand(n, NUM_KEYPOINTS, generator=generator)
    size = _uniform(n, cfg.tip_outlier_range, generator, NUM_KEYPOINTS)
    jump = torch.stack((angle.cos(), angle.sin()), -1) * size[..., None]
    noise = noise + jump * outlier[..., None]
    return clean + cfg.noise_scale * box * noise, outlier & (cfg.noise_scale > 0)


def _confidence(outlier: torch.Tensor, cfg: KeypointDataConfig, generator) -> torch.Tensor:
    n = outlier.shape[0]
    conf = _uniform(n, cfg.confidence_range, generator, NUM_KEYPOINTS)
    low = _uniform(n, cfg.outlier_confidence_range, generator, NUM_KEYPOINTS)
    conf = torch.where(outlier, low, conf)
    none = torch.rand(n, 1, generator=generator) < cfg.no_confidence_probability
    return torch.where(none, torch.ones_like(conf), conf)


def fit_crop_anchor(local: torch.Tensor, target2d: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Least-squares translation t (B, 3) metres so that project(local + t, crop K) ~ target2d.

    local (B, 21, 3) metres; target2d (B, 21, 2) crop px. Linear in t after multiplying the
    projection equations by the depth: f t_x + (c - u) t_z = (u - c) z - f x (same for y).
    """
    k = crop_intrinsics(crop_size, dtype=local.dtype)
    f, c = k[0, 0], k[0, 2]
    rows, rhs = [], []
    for axis in (0, 1):
        r = target2d[..., axis] - c  # (B, 21)
        coeff = torch.zeros(*r.shape, 3, dtype=local.dtype)
        coeff[..., axis] = f
        coeff[..., 2] = -r
        rows.append(coeff)
        rhs.append(r * local[..., 2] - f * local[..., axis])
    a, b = torch.cat(rows, 1), torch.cat(rhs, 1)  # (B, 42, 3), (B, 42)
    t = torch.linalg.lstsq(a, b[..., None]).solution[..., 0]
    t[:, 2] = t[:, 2].clamp_min(MIN_FIT_DEPTH)
    return t


def crop_camera_params(rotation: torch.Tensor, anchor: torch.Tensor, crop_size: int):
    """Rotation (B, 3, 3) and middle-MCP position (B, 3) in the crop camera -> (B, 8) crop
    camera parameters with unit scale (the inverse of ``camera.crop_camera_parts``)."""
    q = matrix_to_quaternion(rotation)
    q = torch.where(q[:, :1] < 0, -q, q)  # the w >= 0 hemisphere, nearest to theta_0
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=q.dtype)
    focal = crop_intrinsics(crop_size, dtype=q.dtype)[0, 0]
    depth = anchor[:, 2]
    offset = anchor[:, :2] * focal / (depth[:, None] * (crop_size / 2.0))
    cam = torch.cat(
        (
            q - identity,
            torch.zeros_like(depth[:, None]),
            offset,
            torch.log(depth / CROP_REF_DEPTH)[:, None],
        ),
        dim=1,
    )
    return cam


def sample_keypoint_batch(
    skeleton,
    prior,
    n: int,
    *,
    generator: torch.Generator,
    config: KeypointDataConfig | None = None,
) -> KeypointBatch:
    """n samples (float32, CPU). skeleton: ``KeypointSkeleton`` of the right-hand model
    (pose (B, 45), shape (B, 10) -> keypoints (B, 21, 3)); prior: its ``PosePrior``."""
    cfg = config or KeypointDataConfig()
    pose = prior.sample(n, generator=generator).float()
    shape = torch.randn(n, NUM_SHAPE, generator=generator).clamp(-cfg.shape_clip, cfg.shape_clip)
    scene = SceneConfig(
        max_tilt_deg=cfg.max_tilt_deg, back_view_probability=cfg.back_view_probability
    )
    rotation = random_rotations(n, scene, generator, torch.float32)
    with torch.no_grad():
        model_kp = skeleton(pose, shape).float()
    centred = model_kp - model_kp[:, MIDDLE_MCP_KEYPOINT : MIDDLE_MCP_KEYPOINT + 1]
    local = centred @ rotation.transpose(1, 2)  # (B, 21, 3) camera axes, MCP at the origin
    clean_image, k = _place_in_image(local, cfg, generator)
    noisy_image, outlier = _add_noise(clean_image, cfg, generator)
    confidence = _confidence(outlier, cfg, generator)
    roi = hand_roi(noisy_image, cfg.crop_size)
    keypoints_2d = roi.to_roi_pixels(noisy_image)
    clean_keypoints_2d = roi.to_roi_pixels(clean_image)
    view = crop_view_rotation(roi.centre, k)  # (B, 3, 3): camera -> crop camera is view^T
    local = local @ view
    anchor = fit_crop_anchor(local, clean_keypoints_2d, cfg.crop_size)
    keypoints_3d = local + anchor[:, None]
    cam = crop_camera_params(view.transpose(1, 2) @ rotation, anchor, cfg.crop_size)
    theta = torch.cat((pose, shape, cam), dim=1)
    return KeypointBatch(keypoints_2d, confidence, clean_keypoints_2d, keypoints_3d, theta)
