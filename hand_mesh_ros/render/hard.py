"""Hard rasterizer with a z-buffer: mask, depth, face index, barycentrics, colours.

A pixel is covered by a face when its centre lies inside the projected triangle (edges
inclusive, either winding, so back faces count); the nearest covering face at the pixel
centre wins. Degenerate faces (|twice signed area| <= DEGENERATE_AREA px^2) cover nothing.

Two passes, memory bounded like the soft rasterizer (``pairs.py``):
1. no grad, chunked over the candidate pairs (unwidened face boxes): per covering pair a
   64-bit key = (float32 bits of the depth) << 32 | face item; ``scatter_reduce_("amin")``
   keeps the nearest face per pixel (ties broken by the lower face index). Positive float32
   bit patterns order like the floats they encode, so no second pass over pairs is needed.
2. with grad, one (pixel, winning face) pair per covered pixel: barycentrics, depth and
   colours are recomputed there, so they are differentiable w.r.t. the vertices (not
   w.r.t. which face wins or whether a pixel is covered).

Interpolation is perspective correct: with screen-space barycentrics l_i and vertex depths
z_i, depth = 1 / sum_i(l_i / z_i) and bary_i = (l_i / z_i) * depth, the barycentrics of the
3D point on the triangle that projects to the pixel centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hand_mesh_ros.render.pairs import (
    DEFAULT_MAX_PAIRS,
    ScreenFaces,
    candidate_boxes,
    iter_pair_chunks,
    pixel_centres,
    screen_faces,
)
from hand_mesh_ros.render.soft import cross2

DEGENERATE_AREA = 1e-9  # px^2 (twice the signed area); thinner faces cover no pixel
_EMPTY_KEY = torch.iinfo(torch.int64).max
_ITEM_BITS = 32  # low bits of the z-buffer key hold the flattened face item b * F + f


@dataclass(frozen=True)
class RasterResult:
    """Hard rasterization of a batch of meshes (empty pixels hold the stated fill values).

    Attributes:
        mask: (B, H, W) bool, pixel centre covered by some face.
        depth: (B, H, W) metres, camera-frame z of the visible surface; 0 where empty.
        face_index: (B, H, W) long, index into ``faces`` of the visible face; -1 where empty.
        bary: (B, H, W, 3) perspective-correct barycentrics of the visible point w.r.t. the
            visible face's vertices (sum 1); 0 where empty.
        color: (B, H, W, C) perspective-correct interpolation of ``vertex_colors``; 0 where
            empty; None when no colours were given.
    """

    mask: torch.Tensor
    depth: torch.Tensor
    face_index: torch.Tensor
    bary: torch.Tensor
    color: torch.Tensor | None


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
    """(B*H*W,) int64 keys of the nearest covering face per pixel (_EMPTY_KEY if none)."""
    num_pixels = screen.batch * screen.height * screen.width
    key = torch.full((num_pixels,), _EMPTY_KEY, dtype=torch.long, device=screen.tri_uv.device)
    tri_uv, tri_z = screen.tri_uv.detach(), screen.tri_z.detach()
    for chunk in iter_pair_chunks(candidate_boxes(screen, 0.0), max_pairs):
        bary, ok = screen_barycentrics(pixel_centres(chunk, tri_uv.dtype), tri_uv[chunk.item])
        covered = ok & (bary >= 0).all(dim=-1)
        _, depth = perspective_correct(bary, tri_z[chunk.item])
        bits = depth.float().view(torch.int32).long()
        pair_key = (bits << _ITEM_BITS) | chunk.item
        pixel = chunk.pixel_index(screen.num_faces, screen.height, screen.width)
        key.scatter_reduce_(0, pixel[covered], pair_key[covered], reduce="amin")
    return key


def _batched_colors(vertex_colors: torch.Tensor, batch: int, num_vertices: int) -> torch.Tensor:
    if vertex_colors.dim() == 2:
        vertex_colors = vertex_colors.unsqueeze(0).expand(batch, -1, -1)
    if vertex_colors.dim() != 3 or vertex_colors.shape[:2] != (batch, num_vertices):
        raise ValueError(
            f"vertex_colors must be (V, C) or (B, V, C) with B={batch}, V={num_vertices}, "
            f"got {tuple(vertex_colors.shape)}"
        )
    return vertex_colors


def interpolate_colors(
    vertex_colors: torch.Tensor,
    faces: torch.Tensor,
    item: torch.Tensor,
    bary: torch.Tensor,
    num_faces: int,
) -> torch.Tensor:
    """Colours at N visible points: (B, V, C), (F, 3), (N,) items b * F + f, (N, 3) -> (N, C)."""
    batch = torch.div(item, num_faces, rounding_mode="floor")
    corner = faces[item % num_faces]  # (N, 3)
    colors = vertex_colors[batch[:, None], corner]  # (N, 3, C)
    return (bary[..., None] * colors).sum(dim=1)


def assemble(
    covered: torch.Tensor, depth, face_index, bary, color, shape: tuple[int, int, int]
) -> RasterResult:
    """Scatter per-covered-pixel values (N,), (N,), (N, 3), (N, C) | None into images.

    covered: (B*H*W,) bool; the N values are in the order of its True entries.
    """
    index = torch.nonzero(covered, as_tuple=False).squeeze(1)

    def image(values: torch.Tensor, fill: float) -> torch.Tensor:
        flat = values.new_full((covered.numel(), *values.shape[1:]), fill)
        flat = flat.index_put((index,), values)
        return flat.view(*shape, *values.shape[1:])

    return RasterResult(
        mask=covered.view(shape),
        depth=image(depth, 0.0),
        face_index=image(face_index, -1),
        bary=image(bary, 0.0),
        color=None if color is None else image(color, 0.0),
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
    """Hard-rasterize a batch of meshes with a z-buffer (see the module docstring).

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
    from hand_mesh_ros.render.pytorch3d_backend import resolve_backend

    if resolve_backend(backend, vertices.device) == "pytorch3d":
        from hand_mesh_ros.render.pytorch3d_backend import rasterize_pytorch3d

        return rasterize_pytorch3d(vertices, faces, K, image_size, vertex_colors=vertex_colors)
    screen = screen_faces(vertices, faces, K, image_size)
    key = _zbuffer(screen, max_pairs)
    covered = key != _EMPTY_KEY
    item = key[covered] & ((1 << _ITEM_BITS) - 1)
    pixel = torch.nonzero(covered, as_tuple=False).squeeze(1)
    col = pixel % screen.width
    row = torch.div(pixel, screen.width, rounding_mode="floor") % screen.height
    point = torch.stack((col, row), dim=-1).to(screen.tri_uv.dtype)
    screen_bary, _ = screen_barycentrics(point, screen.tri_uv[item])
    bary, depth = perspective_correct(screen_bary, screen.tri_z[item])
    color = None
    if vertex_colors is not None:
        colors = _batched_colors(vertex_colors.to(vertices.device), screen.batch, vertices.shape[1])
        faces_long = faces.to(device=vertices.device, dtype=torch.long)
        bary_c = bary.to(colors.dtype)
        color = interpolate_colors(colors, faces_long, item, bary_c, screen.num_faces)
    shape = (screen.batch, screen.height, screen.width)
    return assemble(covered, depth, item % screen.num_faces, bary, color, shape)
