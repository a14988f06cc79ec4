"""Renderers for hand meshes: a differentiable soft silhouette and a hard z-buffer rasterizer.

Plain PyTorch, batched, CPU and CUDA, memory bounded by enumerating (face, pixel) candidate
pairs in chunks (``pairs.py``); an optional pytorch3d backend serves the same functions.
Method, costs and measured timings: ``docs/renderer.md``.

    render_silhouette(vertices, faces, K, image_size, sigma=1.0) -> (B, H, W) in [0, 1]
    rasterize(vertices, faces, K, image_size, *, vertex_colors=None) -> RasterResult
    pair_stats(vertices, faces, K, image_size, *, sigma=None) -> PairStats
"""

from hand_mesh_ros.render.hard import RasterResult, rasterize
from hand_mesh_ros.render.pairs import NEAR_PLANE, PairStats, pair_stats
from hand_mesh_ros.render.soft import DEFAULT_SIGMA, render_silhouette

__all__ = [
    "DEFAULT_SIGMA",
    "NEAR_PLANE",
    "PairStats",
    "RasterResult",
    "pair_stats",
    "rasterize",
    "render_silhouette",
]
