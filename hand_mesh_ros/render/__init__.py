"""Renderers for hand meshes: a differentiable soft silhouette and a hard z-buffer rasterizer.

Plain PyTorch, batched, CPU and CUDA, memory bounded by enumerating (face, pixel) candidate
pairs in chunks (``pairs.py``); an optional pytorch3d backend serves the same functions.
Method, module layout, costs and measured timings: ``docs/renderer.md``.

    render_silhouette(vertices, faces, K, image_size, sigma=1.0) -> (B, H, W) in [0, 1]
    rasterize(vertices, faces, K, image_size, *, vertex_colors=None) -> RasterResult
    pair_stats(vertices, faces, K, image_size, *, sigma=None) -> PairStats

Layout (each module imports only those below it): ``front`` (the two functions, backend
choice) -> backends ``soft`` (torch silhouette), ``hard`` (torch z-buffer),
``pytorch3d_backend`` -> low modules ``backends`` (names, choice rule), ``result``
(RasterResult, colors, assembly), ``geometry`` (cross2, front_facing, vertex_normals),
``pairs`` (screen faces, candidate pairs, validation), ``zkey`` (the z-buffer key). Beside
them ``vertices``: a z-buffer of a mesh's front-facing vertices on a coarse grid.
"""

from hand_mesh_ros.render.front import DEFAULT_SIGMA, rasterize, render_silhouette
from hand_mesh_ros.render.pairs import NEAR_PLANE, PairStats, pair_stats
from hand_mesh_ros.render.result import RasterResult

__all__ = [
    "DEFAULT_SIGMA",
    "NEAR_PLANE",
    "PairStats",
    "RasterResult",
    "pair_stats",
    "rasterize",
    "render_silhouette",
]
