"""Random hands in front of a pinhole camera: pose from the prior, shape, viewpoint, position.

The hand's canonical frame is the model's own; the viewpoint is a random rotation applied on
top of an orientation that shows the hand upright to the camera. For the open model's frame
(fingers along -y, palm towards -z) that base orientation is the identity; other models
(MANO) provide their own via ``base_orient``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hand_mesh_ros.camera import backproject
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hand_mesh_ros.topology import MIDDLE_MCP_KEYPOINT, NUM_SHAPE


@dataclass(frozen=True, kw_only=True)
class SceneConfig:
    depth_range: tuple[float, float] = (0.35, 0.8)  # metres, of the hand's centre
    max_tilt_deg: float = 70.0  # tilt away from facing the camera
    back_view_probability: float = 0.5  # show the back of the hand instead of the palm
    shape_sigma_clip: float = 2.0  # shape coefficients ~ N(0,1) clipped to +-this
    centre_margin: float = 0.25  # fraction of the image kept free at each border


def random_rotations(n: int, cfg: SceneConfig, generator: torch.Generator, dtype) -> torch.Tensor:
    """(n,3,3): roll about the optical axis, tilt about an in-plane axis, optional flip."""
    roll = (torch.rand(n, generator=generator, dtype=dtype) * 2 - 1) * math.pi
    tilt = torch.rand(n, generator=generator, dtype=dtype) * math.radians(cfg.max_tilt_deg)
    phi = torch.rand(n, generator=generator, dtype=dtype) * 2 * math.pi
    zeros = torch.zeros(n, dtype=dtype)
    roll_r = axis_angle_to_matrix(torch.stack((zeros, zeros, roll), -1))
    tilt_axis = torch.stack((phi.cos(), phi.sin(), zeros), -1)
    tilt_r = axis_angle_to_matrix(tilt_axis * tilt[:, None])
    flip = torch.rand(n, generator=generator, dtype=dtype) < cfg.back_view_probability
    flip_r = axis_angle_to_matrix(torch.stack((zeros, flip.to(dtype) * math.pi, zeros), -1))
    return tilt_r @ roll_r @ flip_r


def sample_scene_params(
    model,
    prior,
    n: int,
    K: torch.Tensor,
    image_size: tuple[int, int],
    *,
    generator: torch.Generator,
    config: SceneConfig | None = None,
    base_orient: torch.Tensor | None = None,
) -> HandParams:
    """n random hands (HandParams, camera frame) whose centres project inside the image.

    K: (3,3) pixels; image_size (H, W); prior: PosePrior (``sample(n, generator=...)``).
    """
    cfg = config or SceneConfig()
    dtype = K.dtype
    h, w = image_size
    pose = prior.sample(n, generator=generator).to(dtype)
    shape = torch.randn(n, NUM_SHAPE, generator=generator, dtype=dtype)
    shape = shape.clamp(-cfg.shape_sigma_clip, cfg.shape_sigma_clip)
    rot = random_rotations(n, cfg, generator, dtype)
    if base_orient is not None:
        rot = rot @ axis_angle_to_matrix(base_orient.to(dtype))
    orient = matrix_to_axis_angle(rot)
    lo, hi = cfg.depth_range
    depth = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=dtype)
    frac = cfg.centre_margin + (1 - 2 * cfg.centre_margin) * torch.rand(
        n, 2, generator=generator, dtype=dtype
    )
    centre_px = frac * torch.tensor([w - 1.0, h - 1.0], dtype=dtype)
    centre_cam = backproject(centre_px[:, None], depth[:, None], K)[:, 0]  # (n,3)
    with torch.no_grad():
        placed = model(pose=pose, shape=shape, global_orient=orient)
    transl = centre_cam - placed.keypoints[:, MIDDLE_MCP_KEYPOINT]
    return HandParams(pose, shape, orient, transl)


def perturb_params(
    params: HandParams,
    *,
    generator: torch.Generator,
    pose_step: float = 0.05,
    orient_step: float = 0.03,
    transl_step: float = 0.005,
) -> HandParams:
    """A small random move of every hand: the next frame of a smooth sequence.

    Steps are standard deviations in radians (pose, orientation) and metres (translation).
    """
    dtype = params.pose.dtype

    def noise(t: torch.Tensor, step: float) -> torch.Tensor:
        return step * torch.randn(t.shape, generator=generator, dtype=dtype)

    rot = axis_angle_to_matrix(noise(params.global_orient, orient_step))
    orient = matrix_to_axis_angle(rot @ axis_angle_to_matrix(params.global_orient))
    return HandParams(
        params.pose + noise(params.pose, pose_step),
        params.shape,
        orient,
        params.transl + noise(params.transl, transl_step),
    )
