"""A square region of interest around a hand, and the camera that renders only that region.

Refinement renders silhouettes at a small fixed size (e.g. 64 px) of the hand's region rather
than of the whole image, so its cost does not grow with the camera resolution. The region is
the paper's normalisation box: centred on the keypoints' 2D bounding box, side
ROI_SCALE * max(width, height) (DHPE Sec. 3.3: "1.5 times the maximum of height and width of
the tight 2D hand bounding box").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hand_mesh_ros.camera import batched_intrinsics

ROI_SCALE = 1.5
MIN_ROI_SIDE = 8.0  # pixels; guards against collapsed keypoints
MAX_SUPERSAMPLING = 4  # samples per render pixel and axis when downsampling masks


@dataclass(frozen=True)
class HandRoi:
    """centre (B,2) pixels, side (B,) pixels, size: the render size in pixels (square)."""

    centre: torch.Tensor
    side: torch.Tensor
    size: int

    @property
    def scale(self) -> torch.Tensor:
        """(B,) render pixels per image pixel."""
        return self.size / self.side

    def intrinsics(self, K: torch.Tensor) -> torch.Tensor:
        """(B,3,3) intrinsics that map the region onto a size x size image.

        The region spans image coordinates [left, left + side] (pixel centres at integers);
        render pixel c covers [left + c / scale, left + (c + 1) / scale], so image u maps to
        (u - left) * scale - 0.5 -- the same map as ``to_roi_pixels`` and ``crop_mask``.
        """
        b = self.centre.shape[0]
        k = batched_intrinsics(K, b)
        left_top = self.centre - self.side[:, None] / 2.0
        s = self.scale
        out = k.clone()
        out[:, 0, :] = k[:, 0, :] * s[:, None]
        out[:, 1, :] = k[:, 1, :] * s[:, None]
        shift = -left_top * s[:, None] - 0.5  # (B,2)
        out[:, 0, 2] = out[:, 0, 2] + shift[:, 0]
        out[:, 1, 2] = out[:, 1, 2] + shift[:, 1]
        return out

    def to_roi_pixels(self, points: torch.Tensor) -> torch.Tensor:
        """(B,N,2) image pixels -> (B,N,2) render pixels."""
        left_top = self.centre - self.side[:, None] / 2.0
        s = self.scale[:, None, None]
        return (points - left_top[:, None, :]) * s - 0.5

    def crop_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Resample full-image masks (B,H,W) in [0,1] onto the region -> (B,size,size).

        Each render pixel averages an s x s grid of bilinear samples spread over its area
        (s = image pixels per render pixel, rounded up, at most MAX_SUPERSAMPLING), so
        downsampling gives area coverage instead of aliasing. Outside the image reads 0.
        """
        b, h, w = mask.shape
        n = self.size
        ss = int(min(MAX_SUPERSAMPLING, max(1, math.ceil(float((1.0 / self.scale).max())))))
        m = n * ss
        grid_1d = (torch.arange(m, dtype=mask.dtype, device=mask.device) + 0.5) / m - 0.5
        left = self.centre[:, 0:1] + grid_1d[None, :] * self.side[:, None]  # (B,m) image u
        top = self.centre[:, 1:2] + grid_1d[None, :] * self.side[:, None]  # (B,m) image v
        gx = (2.0 * left + 1.0) / w - 1.0  # align_corners=False normalisation
        gy = (2.0 * top + 1.0) / h - 1.0
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
        sampled = F.grid_sample(
            mask[:, None].to(grid.dtype),
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        return F.avg_pool2d(sampled, ss)[:, 0]


def hand_roi(keypoints_2d: torch.Tensor, size: int, weights: torch.Tensor | None = None) -> HandRoi:
    """Region around keypoints (B,K,2) pixels; weights (B,K) > 0 marks the points to use."""
    if weights is None:
        weights = torch.ones_like(keypoints_2d[..., 0])
    valid = weights > 0
    big = torch.finfo(keypoints_2d.dtype).max
    lo = torch.where(valid[..., None], keypoints_2d, torch.full_like(keypoints_2d, big)).amin(1)
    hi = torch.where(valid[..., None], keypoints_2d, torch.full_like(keypoints_2d, -big)).amax(1)
    centre = (lo + hi) / 2.0
    side = ((hi - lo).amax(-1) * ROI_SCALE).clamp_min(MIN_ROI_SIDE)
    return HandRoi(centre=centre, side=side, size=size)
