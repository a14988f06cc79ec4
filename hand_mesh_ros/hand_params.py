"""MANO-style hand parameters in a metric camera frame, and the DHPE 63-d conversion.

``HandParams`` is what fitting, the pipeline and the ROS messages exchange: pose (B,45)
axis-angle radians relative to each parent, shape (B,10), global_orient (B,3) axis-angle
about the root joint, transl (B,3) metres -- evaluated by ``HandModel.forward`` they give the
hand in the camera frame (OpenCV: x right, y down, z forward).

DHPE regresses theta = [pose 45 | shape 10 | crop camera 8] (63, paper Sec. 3.2). The crop
camera also has a scale s; for a pinhole camera, scaling a hand by s about the camera centre
does not change its image, so ``crop_params_to_hand_params`` folds s into the depth and the
hand keeps the metric size that its shape gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hand_mesh_ros.camera import CROP_CAMERA_DIM, crop_camera_parts
from hand_mesh_ros.rotations import matrix_to_axis_angle
from hand_mesh_ros.topology import MIDDLE_MCP_KEYPOINT, NUM_POSE, NUM_SHAPE

THETA_DIM = NUM_POSE + NUM_SHAPE + CROP_CAMERA_DIM  # 63


@dataclass(frozen=True)
class HandParams:
    """pose (B,45) rad, shape (B,10), global_orient (B,3) rad, transl (B,3) m."""

    pose: torch.Tensor
    shape: torch.Tensor
    global_orient: torch.Tensor
    transl: torch.Tensor

    def __post_init__(self) -> None:
        b = self.pose.shape[0]
        expected = {"pose": NUM_POSE, "shape": NUM_SHAPE, "global_orient": 3, "transl": 3}
        for name, dim in expected.items():
            value = getattr(self, name)
            if value.dim() != 2 or value.shape != (b, dim):
                raise ValueError(
                    f"HandParams.{name} must be ({b}, {dim}), got {tuple(value.shape)}"
                )

    @property
    def batch_size(self) -> int:
        return int(self.pose.shape[0])

    def as_kwargs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for ``HandModel.forward``."""
        return {
            "pose": self.pose,
            "shape": self.shape,
            "global_orient": self.global_orient,
            "transl": self.transl,
        }

    def detach(self) -> HandParams:
        return HandParams(*(t.detach().clone() for t in self._fields()))

    def select(self, index) -> HandParams:
        """Rows of the batch (index: int, slice, list or bool/long tensor); keeps 2-D shapes."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return HandParams(*(t[index] for t in self._fields()))

    def _fields(self) -> tuple[torch.Tensor, ...]:
        return (self.pose, self.shape, self.global_orient, self.transl)

    @staticmethod
    def cat(items: list[HandParams]) -> HandParams:
        return HandParams(
            *(torch.cat(parts, dim=0) for parts in zip(*(p._fields() for p in items), strict=True))
        )

    @staticmethod
    def zeros(batch: int, *, dtype=torch.float32, device=None) -> HandParams:
        def z(dim: int) -> torch.Tensor:
            return torch.zeros(batch, dim, dtype=dtype, device=device)

        return HandParams(z(NUM_POSE), z(NUM_SHAPE), z(3), z(3))


def split_theta(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B,63) -> pose (B,45), shape (B,10), crop camera (B,8)."""
    if theta.dim() != 2 or theta.shape[1] != THETA_DIM:
        raise ValueError(f"theta must be (B, {THETA_DIM}), got {tuple(theta.shape)}")
    return (
        theta[:, :NUM_POSE],
        theta[:, NUM_POSE : NUM_POSE + NUM_SHAPE],
        theta[:, -CROP_CAMERA_DIM:],
    )


def crop_params_to_hand_params(theta: torch.Tensor, model, crop_size: int) -> HandParams:
    """Convert DHPE parameters to ``HandParams`` in the crop camera's frame.

    theta: (B,63); model: a HandModel (its rest root and posed middle MCP are needed).
    The returned params, evaluated by ``model``, project through ``crop_intrinsics(crop_size)``
    exactly as the crop-camera mesh does (scale folded into depth).
    """
    pose, shape, cam = split_theta(theta)
    local = model(pose=pose, shape=shape)
    anchor = local.keypoints[:, MIDDLE_MCP_KEYPOINT]  # (B,3)
    root = local.joints[:, 0]  # (B,3) root joint, unaffected by pose
    rotation, scale, anchor_cam = crop_camera_parts(cam, crop_size)
    # s*R(X - a) + a_cam projects like R(X - a) + a_cam / s; express it as R(X - J0) + J0 + t.
    transl = ((root - anchor)[:, None, :] @ rotation.transpose(1, 2))[:, 0]
    transl = transl + anchor_cam / scale[:, None] - root
    return HandParams(pose, shape, matrix_to_axis_angle(rotation), transl)
