"""The renderer's front: ``render_silhouette`` and ``rasterize`` pick a backend and call it.

    render_silhouette(vertices, faces, K, image_size, sigma=1.0) -> (B, H, W) in [0, 1]
    rasterize(vertices, faces, K, image_size, *, vertex_colors=None) -> RasterResult

Backends (each imports only the low modules ``pairs``, ``geometry``, ``result``):
torch soft silhouette (``soft.py``), torch z-buffer (``hard.py``), pytorch3d
(``pytorch3d_backend.py``). ``backends.resolve_backend`` holds the choice rule.
"""

from __future__ import annotations

import torch

from hand_mesh_ros.render.backends import resolve_backend
from hand_mesh_ros.render.hard import rasterize_torch
from hand_mesh_ros.render.pairs import DEFAULT_MAX_PAIRS
from hand_mesh_ros.render.pytorch3d_backend import rasterize_pytorch3d, silhouette_pytorch3d
from hand_mesh_ros.render.result import RasterResult
from hand_mesh_ros.render.soft import silhouette_torch

DEFAULT_SIGMA = 1.0  # px^2, soft edge width for fitting at 64-224 px


def render_silhouette(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    image_size,
    sigma: float = DEFAULT_SIGMA,
    *,
    backend: str = "auto",
    max_pairs: int = DEFAULT_MAX_PAIRS,
    cull_backfaces: bool = False,
) -> torch.Tensor:
    """Soft silhouette of a batch of meshes, differentiable w.r.t. the vertices.

    Args:
        vertices: (B, V, 3) metres, OpenCV camera frame (x right, y down, z forward).
        faces: (F, 3) long vertex indices; winding does not matter (back faces count).
        K: (3, 3) or (B, 3, 3) pinhole intrinsics in pixels (``camera.project``).
        image_size: (H, W) pixels; pixel (r, c) has its centre at u = c, v = r.
        sigma: soft edge width in px^2 (see ``soft.py``); must be > 0.
        backend: "auto" (torch, or pytorch3d when importable and on CUDA), "torch",
            "pytorch3d".
        max_pairs: (face, pixel) pairs evaluated per chunk (torch backend); bounds memory.
        cull_backfaces: skip faces turned away from the camera (torch backend). Only for
            closed meshes with outward normals (faces counter-clockwise seen from outside,
            as the hand models): their front faces alone cover the silhouette, so the
            result is the same up to the soft edge of contour faces, at about half the cost.

    Returns:
        (B, H, W) silhouette in [0, 1], dtype of ``vertices``. Faces with a vertex at
        z <= ``pairs.NEAR_PLANE`` are culled (contribute nothing).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (px^2), got {sigma}")
    if resolve_backend(backend, vertices.device) == "pytorch3d":
        return silhouette_pytorch3d(vertices, faces, K, image_size, sigma)
    return silhouette_torch(
        vertices, faces, K, image_size, sigma, max_pairs=max_pairs, cull_backfaces=cull_backfaces
    )


def rasterize(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    image_size,
    *,
    vertex_colors: torch.Tensor | None = None,
    backend: str = "auto",
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> RasterResult:
    """Hard-rasterize a batch of meshes with a z-buffer (see ``hard.py``).

    Args:
        vertices: (B, V, 3) metres, OpenCV camera frame (x right, y down, z forward).
        faces: (F, 3) long vertex indices, either winding.
        K: (3, 3) or (B, 3, 3) pinhole intrinsics in pixels.
        image_size: (H, W) pixels; pixel (r, c) has its centre at u = c, v = r.
        vertex_colors: optional (V, C) or (B, V, C) per-vertex attributes to interpolate.
        backend: "auto" (torch, or pytorch3d when importable and on CUDA), "torch",
            "pytorch3d".
        max_pairs: (face, pixel) pairs per chunk in the z-buffer pass (torch backend).

    Faces with a vertex at z <= ``pairs.NEAR_PLANE`` are culled (torch backend).
    """
    if resolve_backend(backend, vertices.device) == "pytorch3d":
        return rasterize_pytorch3d(vertices, faces, K, image_size, vertex_colors=vertex_colors)
    return rasterize_torch(
        vertices, faces, K, image_size, vertex_colors=vertex_colors, max_pairs=max_pairs
    )
