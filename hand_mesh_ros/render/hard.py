"""Torch backend of ``rasterize``: a z-buffer giving mask, depth, face index, barycentrics.

A pixel is covered by a face when its centre lies inside the projected triangle (edges
inclusive, either winding, so back faces count); the nearest covering face at the pixel
centre wins. Degenerate faces (|twice signed area| <= DEGENERATE_AREA px^2) cover nothing.

Two passes, memory bounded like the soft rasterizer (``pairs.py``):
1. no grad, chunked over the candidate pairs (unwidened face boxes): per covering pair a
   64-bit key = (float32 bits of the depth) << 32 | face item; ``scatter_reduce_("amin")``
   keeps the nearest face per pixel (ties broken by the lower face index). Positive float32
   bit patterns order like the floats they encode, so no second pass over pairs is needed.
2. with grad, one (pixel, winning face) pair per covered pixel: barycentrics and depth are
   recomputed there (colors follow in ``result.assemble``), so they are differentiable
   w.r.t. the vertices (not w.r.t. which face wins or whether a pixel is covered).

Interpolation is perspective correct: with screen-space barycentrics l_i and vertex depths
z_i, depth = 1 / sum_i(l_i / z_i) and bary_i = (l_i / z_i) * depth, the barycentrics of the
3D point on the triangle that projects to the pixel centre.
"""

from __future__ import annotations

import torch

from hand_mesh_ros.render.geometry import cross2
from hand_mesh_ros.render.pairs import (
    ScreenFaces,
    candidate_boxes,
    iter_pair_chunks,
    pixel_centres,
    screen_faces,
)
from hand_mesh_ros.render.result import RasterResult, assemble
from hand_mesh_ros.render.zkey import EMPTY_KEY, depth_keys, key_items

DEGENERATE_AREA = 1e-9  # px^2 (twice the signed area); thinner faces cover no pixel


def screen_barycentrics(point: torch.Tensor, tri: torch.Tensor):
    """Screen-space barycentrics of points w.r.t. triangles, either winding.

    point: (P, 2); tri: (P, 3, 2) pixels. Returns ((P, 3) barycentrics, (P,) bool
    non-degenerate). Degenerate triangles get finite (meaningless) barycentrics.
    """
    a, b, c = tri.unbind(dim=1)
    area = cross2(b - a, c - a)
    ok = area.abs() > DEGENERATE_AREA
    weights = torch.stack(
        (cross2(b - point, c - point), cross2(c - point, a - point), cross2(a - point, b - point)),
        dim=-1,
    )
    safe_area = torch.where(ok, area, torch.ones_like(area))
    return weights / safe_area[:, None], ok


def perspective_correct(screen_bary: torch.Tensor, tri_z: torch.Tensor):
    """(P, 3) screen barycentrics, (P, 3) vertex depths -> ((P, 3) 3D barycentrics, (P,) z)."""
    weighted = screen_bary / tri_z
    inverse_depth = weighted.sum(dim=-1)
    depth = 1.0 / inverse_depth
    return weighted * depth[:, None], depth


def _zbuffer(screen: ScreenFaces, max_pairs: int) -> torch.Tensor:
    """(B*H*W,) int64 keys (``zkey.py``; items: the flattened face b * F + f) of the nearest
    covering face per pixel (EMPTY_KEY if none)."""
    num_pixels = screen.batch * screen.height * screen.width
    key = torch.full((num_pixels,), EMPTY_KEY, dtype=torch.long, device=screen.tri_uv.device)
    tri_uv, tri_z = screen.tri_uv.detach(), screen.tri_z.detach()
    for chunk in iter_pair_chunks(candidate_boxes(screen, 0.0), max_pairs):
        bary, ok = screen_barycentrics(pixel_centres(chunk, tri_uv.dtype), tri_uv[chunk.item])
        covered = ok & (bary >= 0).all(dim=-1)
        _, depth = perspective_correct(bary, tri_z[chunk.item])
        pair_key = depth_keys(depth, chunk.item)
        pixel = chunk.pixel_index(screen.num_faces, screen.height, screen.width)
        key.scatter_reduce_(0, pixel[covered], pair_key[covered], reduce="amin")
    return key


def rasterize_torch(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    image_size,
    *,
    vertex_colors: torch.Tensor | None,
    max_pairs: int,
) -> RasterResult:
    """Hard rasterization with a z-buffer (module docstring); the contract of
    ``front.rasterize``. Faces with a vertex at z <= ``pairs.NEAR_PLANE`` are culled."""
    screen = screen_faces(vertices, faces, K, image_size)
    key = _zbuffer(screen, max_pairs)
    covered = key != EMPTY_KEY
    item = key_items(key[covered])
    pixel = torch.nonzero(covered, as_tuple=False).squeeze(1)
    col = pixel % screen.width
    row = torch.div(pixel, screen.width, rounding_mode="floor") % screen.height
    point = torch.stack((col, row), dim=-1).to(screen.tri_uv.dtype)
    screen_bary, _ = screen_barycentrics(point, screen.tri_uv[item])
    bary, depth = perspective_correct(screen_bary, screen.tri_z[item])
    shape = (screen.batch, screen.height, screen.width)
    return assemble(
        covered,
        item,
        depth,
        bary,
        shape,
        faces=faces,
        vertex_colors=vertex_colors,
        num_vertices=vertices.shape[1],
    )
