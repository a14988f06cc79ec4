"""Iterative 3D mesh estimator and 2D pose refiner (DHPE Sec. 3.2, Eqs. 4-6).

theta = [pose 45 | shape 10 | crop camera 8] (63; ``hand_params.split_theta``). Starting from
theta_0 = [mean pose | zeros | zeros] (zero crop camera = identity rotation, unit scale, hand
centred at the reference depth; ``camera.py``), each iteration t = 0 .. T-1 does

    theta_{t+1} = theta_t + M([f, n(j_t), theta_t])                    (Eq. 5, one FC layer)
    X_{t+1}     = skeleton of the mesh of theta_{t+1} (projection operator, injected)
    j_{t+1}     = j_t + R([f, n(j_t), theta_{t+1}, s(X_{t+1})])        (2D pose refiner)

with f the 2D feature (feature_dim, may be 0), j the 21 2D joints in crop pixels and

    n(j) = (j + 0.5) * 2 / crop_size - 1   the crop normalised to [-1, 1] (pixel-centre rule),
    s(X) = per keypoint (n(project(X)), (z - z_9) * f_crop / (z_9 * crop_size / 2)): its
           projection in the same [-1, 1] units plus its depth relative to the middle MCP in
           those units (the paper's Eq. 8 normalisation with the crop as the box).

M is (feature_dim + 42 + 63 -> 63) and R is (feature_dim + 42 + 63 + 63 -> 42): for
feature_dim = 2048 their weights are 63 x 2153 and 42 x 2216 as in the paper. The refiner
predicts an offset in [-1, 1] units (so an untrained refiner leaves the joints unchanged).
Both layers start with small weights (Xavier, gain ``init_gain``; HMR does the same) so
the first iterations stay near theta_0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from hand_mesh_ros.camera import CROP_SIZE, crop_intrinsics, project
from hand_mesh_ros.hand_params import THETA_DIM
from hand_mesh_ros.topology import MIDDLE_MCP_KEYPOINT, NUM_KEYPOINTS, NUM_POSE

KEYPOINTS_2D_DIM = NUM_KEYPOINTS * 2  # 42
SKELETON_DIM = NUM_KEYPOINTS * 3  # 63
DEFAULT_ITERATIONS = 3  # the paper's fixed iteration count (Sec. 3.2)
DEFAULT_INIT_GAIN = 0.01  # Xavier gain of both FC layers


@dataclass(frozen=True, kw_only=True)
class MeshEstimatorConfig:
    """feature_dim: 2048 (ResNet-50), 512 (ResNet-18) or 0 (keypoints only)."""

    feature_dim: int = 2048
    num_iterations: int = DEFAULT_ITERATIONS
    crop_size: int = CROP_SIZE
    init_gain: float = DEFAULT_INIT_GAIN

    def __post_init__(self) -> None:
        if self.feature_dim < 0 or self.num_iterations < 1 or self.crop_size < 1:
            raise ValueError(f"invalid MeshEstimatorConfig {self}")


class SkeletonProjection(Protocol):
    """What the injected projection returns: at least the 3D skeleton."""

    keypoints_3d: torch.Tensor  # (B, 21, 3) metres, crop camera frame


@dataclass(frozen=True)
class EstimatorStep:
    """One iteration's results.

    Attributes:
        params: (B, 63) theta_{t+1}.
        keypoints_2d: (B, 21, 2) crop px, the 2D joints j_t this iteration regressed from.
        refined_keypoints_2d: (B, 21, 2) crop px, the refiner's j_{t+1}.
        projection: whatever ``project_fn(params)`` returned (has ``keypoints_3d``).
    """

    params: torch.Tensor
    keypoints_2d: torch.Tensor
    refined_keypoints_2d: torch.Tensor
    projection: Any


def normalise_keypoints_2d(
    keypoints_2d: torch.Tensor, crop_size: int = CROP_SIZE
) -> torch.Tensor:
    """(B, 21, 2) crop pixels -> (B, 42) in [-1, 1] over the crop's extent."""
    return ((keypoints_2d + 0.5) * (2.0 / crop_size) - 1.0).flatten(1)


def denormalise_keypoints_2d(
    normalised: torch.Tensor, crop_size: int = CROP_SIZE
) -> torch.Tensor:
    """Inverse of ``normalise_keypoints_2d``: (B, 42) -> (B, 21, 2) crop pixels."""
    return ((normalised + 1.0) * (crop_size / 2.0) - 0.5).reshape(-1, NUM_KEYPOINTS, 2)


def encode_skeleton(keypoints_3d: torch.Tensor, crop_size: int = CROP_SIZE) -> torch.Tensor:
    """(B, 21, 3) crop-camera metres -> (B, 63) refiner input s(X) (see module docstring)."""
    k = crop_intrinsics(crop_size, dtype=keypoints_3d.dtype, device=keypoints_3d.device)
    uv = normalise_keypoints_2d(project(keypoints_3d, k), crop_size)
    uv = uv.reshape(-1, NUM_KEYPOINTS, 2)
    z = keypoints_3d[..., 2]
    z_ref = z[:, MIDDLE_MCP_KEYPOINT : MIDDLE_MCP_KEYPOINT + 1]
    depth = (z - z_ref) * k[0, 0] / (z_ref * (crop_size / 2.0))
    return torch.cat((uv, depth[..., None]), dim=-1).flatten(1)


class MeshEstimator(nn.Module):
    """The regressor M and refiner R, run for ``num_iterations`` (see module docstring).

    Args:
        config: sizes.
        mean_pose: (45,) the pose of theta_0 (e.g. the pose prior's mean), radians.
    """

    def __init__(self, config: MeshEstimatorConfig, mean_pose: torch.Tensor) -> None:
        super().__init__()
        if mean_pose.shape != (NUM_POSE,):
            raise ValueError(f"mean_pose must be ({NUM_POSE},), got {tuple(mean_pose.shape)}")
        self.config = config
        d = config.feature_dim
        self.regressor = nn.Linear(d + KEYPOINTS_2D_DIM + THETA_DIM, THETA_DIM)
        refiner_in = d + KEYPOINTS_2D_DIM + THETA_DIM + SKELETON_DIM
        self.refiner = nn.Linear(refiner_in, KEYPOINTS_2D_DIM)
        for layer in (self.regressor, self.refiner):
            nn.init.xavier_uniform_(layer.weight, gain=config.init_gain)
            nn.init.zeros_(layer.bias)
        theta0 = torch.zeros(THETA_DIM)
        theta0[:NUM_POSE] = mean_pose.detach().to(theta0.dtype)
        self.register_buffer("theta0", theta0)

    def initial_params(self, batch: int) -> torch.Tensor:
        """(B, 63) theta_0 = [mean pose | zero shape | zero crop camera]."""
        return self.theta0.expand(batch, THETA_DIM)

    def _feature(self, feature: torch.Tensor | None, batch: int) -> torch.Tensor:
        d = self.config.feature_dim
        if feature is None:
            if d != 0:
                raise ValueError(f"feature (B, {d}) required (feature_dim={d})")
            return self.theta0.new_zeros(batch, 0)
        if feature.shape != (batch, d):
            raise ValueError(f"feature must be ({batch}, {d}), got {tuple(feature.shape)}")
        return feature

    def forward(
        self,
        feature: torch.Tensor | None,
        keypoints_2d: torch.Tensor,
        project_fn: Callable[[torch.Tensor], SkeletonProjection],
    ) -> tuple[EstimatorStep, ...]:
        """Run the iterations.

        Args:
            feature: (B, feature_dim) 2D feature, or None when feature_dim == 0.
            keypoints_2d: (B, 21, 2) initial 2D joints j_0, crop pixels.
            project_fn: theta (B, 63) -> object with ``keypoints_3d`` (B, 21, 3) crop-camera
                metres (the projection operator: hand model + crop camera).
        Returns:
            one ``EstimatorStep`` per iteration.
        """
        if keypoints_2d.dim() != 3 or keypoints_2d.shape[1:] != (NUM_KEYPOINTS, 2):
            shape = tuple(keypoints_2d.shape)
            raise ValueError(f"keypoints_2d must be (B, 21, 2), got {shape}")
        batch, crop = keypoints_2d.shape[0], self.config.crop_size
        f = self._feature(feature, batch)
        theta = self.initial_params(batch).to(keypoints_2d.dtype)
        joints = normalise_keypoints_2d(keypoints_2d, crop)
        steps = []
        for _ in range(self.config.num_iterations):
            theta = theta + self.regressor(torch.cat((f, joints, theta), dim=1))
            projection = project_fn(theta)
            skeleton = encode_skeleton(projection.keypoints_3d, crop)
            refined = joints + self.refiner(torch.cat((f, joints, theta, skeleton), dim=1))
            steps.append(
                EstimatorStep(
                    params=theta,
                    keypoints_2d=denormalise_keypoints_2d(joints, crop),
                    refined_keypoints_2d=denormalise_keypoints_2d(refined, crop),
                    projection=projection,
                )
            )
            joints = refined
        return tuple(steps)
