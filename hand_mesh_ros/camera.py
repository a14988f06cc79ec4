"""Cameras: a pinhole camera with intrinsics K, and the paper's 8-d crop camera.

Frames: the OpenCV camera frame -- x right, y down, z forward (optical axis), metres.
Pixels: (u, v) with u along image columns, v along rows; pixel centres at integer
coordinates, so the image covers [-0.5, W - 0.5] x [-0.5, H - 0.5].

The crop camera (DHPE Sec. 3.2, "rotation (quaternion), scale and translation", 8 numbers)
places a hand mesh given in the model's frame in front of a fixed virtual pinhole camera
``crop_intrinsics()`` that looks at a CROP_SIZE x CROP_SIZE hand crop. Its 8 parameters are
chosen so that all-zeros is a sensible start (the paper starts regression from zeros):

    cam[0:4]  quaternion offset: q = (1, 0, 0, 0) + cam[0:4], normalised -> rotation R
    cam[4]    log scale: s = exp(cam[4]), multiplies the hand about its anchor
    cam[5:7]  (a, b): the anchor projects to pixel centre + (a, b) * CROP_SIZE / 2
    cam[7]    log depth: the anchor's depth is CROP_REF_DEPTH * exp(cam[7])

    X_cam = s * R @ (X - anchor) + anchor_cam

The anchor is the hand's middle-finger MCP keypoint (the centre of the paper's Eq. 8
normalisation), so zeros put the hand's centre in the middle of the crop.
"""

from __future__ import annotations

import numpy as np
import torch

from hand_mesh_ros.rotations import quaternion_to_matrix

CROP_SIZE = 224  # pixels, the paper's input size
CROP_FOCAL = 500.0  # pixels, focal length of the virtual crop camera
# A ~0.19 m hand spans about CROP_SIZE / 1.5 pixels at this depth with CROP_FOCAL (metres).
CROP_REF_DEPTH = 0.6
CROP_CAMERA_DIM = 8
MIN_DEPTH = 1e-3  # metres; points closer than this are clamped when projecting


def intrinsics_matrix(
    fx: float, fy: float, cx: float, cy: float, *, dtype=torch.float32, device=None
) -> torch.Tensor:
    """(3, 3) pinhole intrinsics."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def crop_intrinsics(
    crop_size: int = CROP_SIZE, *, dtype=torch.float32, device=None
) -> torch.Tensor:
    """(3, 3) intrinsics of the virtual crop camera (principal point at the crop centre)."""
    centre = (crop_size - 1) / 2.0
    focal = CROP_FOCAL * crop_size / CROP_SIZE
    return intrinsics_matrix(focal, focal, centre, centre, dtype=dtype, device=device)


def batched_intrinsics(K: torch.Tensor, batch: int) -> torch.Tensor:
    """(3, 3) or (B, 3, 3) K -> (B, 3, 3) (a view when expanded); a wrong batch is an error."""
    if K.dim() == 2:
        return K.unsqueeze(0).expand(batch, 3, 3)
    if K.shape[0] != batch:
        raise ValueError(f"K has batch {K.shape[0]}, points have batch {batch}")
    return K


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Perspective projection to pixels.

    points: (B, N, 3) metres, camera frame; K: (3, 3) or (B, 3, 3). Returns (B, N, 2) pixels.
    Depths below MIN_DEPTH are clamped (points behind the camera do not flip sign).
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
    k = batched_intrinsics(K.to(points.dtype), points.shape[0])
    z = points[..., 2:3].clamp_min(MIN_DEPTH)
    xy = points[..., :2] / z
    fx, fy = k[:, 0, 0, None], k[:, 1, 1, None]
    cx, cy = k[:, 0, 2, None], k[:, 1, 2, None]
    skew = k[:, 0, 1, None]
    u = fx * xy[..., 0] + skew * xy[..., 1] + cx
    v = fy * xy[..., 1] + cy
    return torch.stack((u, v), dim=-1)


def backproject(pixels: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Inverse of ``project`` for zero skew. pixels: (B, N, 2), depth: (B, N) -> (B, N, 3)."""
    k = batched_intrinsics(K.to(pixels.dtype), pixels.shape[0])
    x = (pixels[..., 0] - k[:, 0, 2, None]) / k[:, 0, 0, None]
    y = (pixels[..., 1] - k[:, 1, 2, None]) / k[:, 1, 1, None]
    return torch.stack((x * depth, y * depth, depth), dim=-1)


def pixel_rays(pixels: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N,2) pixels, (3,3) pinhole K (upper triangular: fx, skew, cx / fy, cy / 0 0 1) ->
    (N,3) their rays scaled to z = 1, by back-substitution. Not ``np.linalg.solve``: after
    each LAPACK call numpy's OpenBLAS workers spin, and at 30 calls per second that kept a
    whole core busy (2.0 CPU-s per wall-s against 0.1; in the node that core was the fit's
    and mediapipe's on a 2-core machine: docs/ros.md). NumPy, for the per-frame CPU steps
    (``pipeline/depth_side.py``); ``backproject`` is the batched torch inverse of ``project``."""
    y = (pixels[:, 1] - K[1, 2]) / K[1, 1]
    x = (pixels[:, 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return np.stack((x, y, np.ones_like(x)), axis=1)


def crop_camera_parts(cam: torch.Tensor, crop_size: int = CROP_SIZE):
    """Split (B, 8) crop-camera parameters into rotation (B, 3, 3), scale (B,) and the
    anchor's position in the crop camera frame (B, 3, metres)."""
    if cam.dim() != 2 or cam.shape[-1] != CROP_CAMERA_DIM:
        raise ValueError(f"crop camera must be (B, 8), got {tuple(cam.shape)}")
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=cam.dtype, device=cam.device)
    rotation = quaternion_to_matrix(identity + cam[:, 0:4])
    scale = torch.exp(cam[:, 4])
    depth = CROP_REF_DEPTH * torch.exp(cam[:, 7])
    focal = CROP_FOCAL * crop_size / CROP_SIZE
    offset_px = cam[:, 5:7] * (crop_size / 2.0)
    anchor_xy = offset_px / focal * depth[:, None]
    anchor_cam = torch.cat((anchor_xy, depth[:, None]), dim=-1)
    return rotation, scale, anchor_cam


def apply_crop_camera(
    points: torch.Tensor, anchor: torch.Tensor, cam: torch.Tensor, crop_size: int = CROP_SIZE
) -> torch.Tensor:
    """Place model-frame points in the crop camera frame.

    points: (B, N, 3) metres, model frame; anchor: (B, 3) the model-frame point that the
    camera centres (middle MCP); cam: (B, 8). Returns (B, N, 3) metres, crop camera frame.
    """
    rotation, scale, anchor_cam = crop_camera_parts(cam, crop_size)
    local = (points - anchor[:, None, :]) @ rotation.transpose(1, 2)
    return scale[:, None, None] * local + anchor_cam[:, None, :]
