"""Keypoint heatmaps: cell <-> crop-pixel coordinates, Gaussian targets, (soft-)argmax.

Conventions (see ``camera.py``): pixel centres sit at integer coordinates, so a crop of size
C covers [-0.5, C - 0.5]. A heatmap of size M over a crop of size C has cells of
``stride = C / M`` pixels (7 for the paper's 32 x 32 maps over a 224 x 224 crop); cell i covers
crop pixels [i * stride - 0.5, (i + 1) * stride - 0.5), so its centre (cell coordinate i) is
at crop pixel (i + 0.5) * stride - 0.5. Coordinates are (u, v) = (column, row) throughout.

Shapes: heatmaps (B, K, M, M); keypoints (B, K, 2).
"""

from __future__ import annotations

import torch

from hand_mesh_ros.camera import CROP_SIZE

HEATMAP_SIZE = 32  # cells, the paper's 21 x 32 x 32 heat maps (Sec. 3.1)
DEFAULT_SIGMA_CELLS = 1.0  # Gaussian target standard deviation, heatmap cells
LOG_FLOOR = 1e-6  # values are clamped to this before taking logs for sub-cell refinement
DEFAULT_SOFT_POWER = 1.0  # soft-argmax weights: rectified heat map to this power
DEFAULT_SOFT_WINDOW = 3  # cells each side of the maximum used by the soft-argmax
TINY_WEIGHT = 1e-12  # soft-argmax mass on the maximum (defines all-negative maps)


def cells_to_pixels(
    cells: torch.Tensor, heatmap_size: int = HEATMAP_SIZE, crop_size: int = CROP_SIZE
) -> torch.Tensor:
    """Heatmap cell coordinates (cell centres at integers) -> crop pixels. Any shape."""
    stride = crop_size / heatmap_size
    return (cells + 0.5) * stride - 0.5


def pixels_to_cells(
    pixels: torch.Tensor, heatmap_size: int = HEATMAP_SIZE, crop_size: int = CROP_SIZE
) -> torch.Tensor:
    """Inverse of ``cells_to_pixels``."""
    stride = crop_size / heatmap_size
    return (pixels + 0.5) / stride - 0.5


def gaussian_heatmaps(
    keypoints: torch.Tensor,
    *,
    heatmap_size: int = HEATMAP_SIZE,
    crop_size: int = CROP_SIZE,
    sigma: float = DEFAULT_SIGMA_CELLS,
) -> torch.Tensor:
    """Unnormalised Gaussian targets exp(-d^2 / (2 sigma^2)), peak 1 at the keypoint.

    keypoints: (B, K, 2) crop pixels; sigma in heatmap cells. Returns (B, K, M, M).
    """
    if keypoints.dim() != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be (B, K, 2), got {tuple(keypoints.shape)}")
    centre = pixels_to_cells(keypoints, heatmap_size, crop_size)
    grid = torch.arange(heatmap_size, dtype=keypoints.dtype, device=keypoints.device)
    du = (grid[None, None, :] - centre[..., 0:1]) ** 2  # (B, K, M) along columns
    dv = (grid[None, None, :] - centre[..., 1:2]) ** 2  # (B, K, M) along rows
    d2 = dv[..., :, None] + du[..., None, :]
    return torch.exp(-d2 / (2.0 * sigma**2))


def _parabola_offset(left: torch.Tensor, mid: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Vertex of the parabola through (-1, left), (0, mid), (1, right), clamped to [-0.5, 0.5];
    0 where the three values are not a strict maximum shape."""
    curvature = left - 2.0 * mid + right
    safe = torch.where(curvature < 0, curvature, -torch.ones_like(curvature))
    offset = 0.5 * (left - right) / safe
    return torch.where(curvature < 0, offset, torch.zeros_like(offset)).clamp(-0.5, 0.5)


def heatmap_argmax(heatmaps: torch.Tensor, *, crop_size: int = CROP_SIZE):
    """Per-map maximum with sub-cell refinement -> (keypoints (B, K, 2) crop px, peak (B, K)).

    Refinement: a parabola through the log-values at the maximum and its two neighbours along
    each axis (exact for a separable Gaussian peak; Gaussian targets have that form). Cells at
    the border are not refined along the axis that leaves the map. Not differentiable.
    """
    if heatmaps.dim() != 4 or heatmaps.shape[-1] != heatmaps.shape[-2]:
        raise ValueError(f"heatmaps must be (B, K, M, M), got {tuple(heatmaps.shape)}")
    b, k, m, _ = heatmaps.shape
    flat = heatmaps.detach().reshape(b, k, m * m)
    peak, index = flat.max(dim=-1)
    row, col = index // m, index % m
    logs = flat.clamp_min(LOG_FLOOR).log()

    def value(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return logs.gather(-1, (r.clamp(0, m - 1) * m + c.clamp(0, m - 1))[..., None])[..., 0]

    mid = value(row, col)
    du = _parabola_offset(value(row, col - 1), mid, value(row, col + 1))
    dv = _parabola_offset(value(row - 1, col), mid, value(row + 1, col))
    du = torch.where((col > 0) & (col < m - 1), du, torch.zeros_like(du))
    dv = torch.where((row > 0) & (row < m - 1), dv, torch.zeros_like(dv))
    cells = torch.stack((col.to(heatmaps.dtype) + du, row.to(heatmaps.dtype) + dv), dim=-1)
    return cells_to_pixels(cells, m, crop_size), peak


def soft_argmax(
    heatmaps: torch.Tensor,
    *,
    power: float = DEFAULT_SOFT_POWER,
    window: int | None = DEFAULT_SOFT_WINDOW,
    crop_size: int = CROP_SIZE,
) -> torch.Tensor:
    """Differentiable keypoints: the expected cell under p ∝ max(h, 0)^power, restricted to the
    (2 window + 1)^2 cells around each map's maximum (None: the whole map) -> (B, K, 2) px.

    Why not a global softmax(beta h): for maps trained towards peak-1 Gaussians, a large beta
    snaps to the nearest cell and a small one is pulled towards the map centre by the
    background. The rectified map itself is an unbiased weight for a Gaussian peak, and the
    window keeps background noise out. The window's position is piecewise constant (no
    gradient); the result is differentiable in the heat-map values inside it.
    """
    if heatmaps.dim() != 4 or heatmaps.shape[-1] != heatmaps.shape[-2]:
        raise ValueError(f"heatmaps must be (B, K, M, M), got {tuple(heatmaps.shape)}")
    b, k, m, _ = heatmaps.shape
    flat = heatmaps.reshape(b, k, m * m)
    weights = flat.clamp_min(0.0) ** power
    index = flat.detach().argmax(dim=-1, keepdim=True)  # (B, K, 1)
    cell = torch.arange(m * m, device=heatmaps.device)
    if window is not None:
        near = ((cell // m - index // m).abs() <= window) & ((cell % m - index % m).abs() <= window)
        weights = weights * near
    # A tiny mass on the maximum keeps all-negative maps (no positive weight) defined.
    weights = weights + TINY_WEIGHT * (cell == index)
    prob = (weights / weights.sum(dim=-1, keepdim=True)).reshape(b, k, m, m)
    grid = torch.arange(m, dtype=heatmaps.dtype, device=heatmaps.device)
    u = (prob.sum(dim=-2) * grid).sum(dim=-1)
    v = (prob.sum(dim=-1) * grid).sum(dim=-1)
    return cells_to_pixels(torch.stack((u, v), dim=-1), m, crop_size)
