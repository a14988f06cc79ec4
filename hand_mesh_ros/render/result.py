"""What a hard rasterization returns, and the tail every hard backend shares.

A backend finds, per pixel, the visible face and the perspective-correct barycentrics and
depth of the visible point; ``assemble`` then interpolates the vertex colors and scatters
everything into images (``RasterResult``), so that tail is written once.

Conventions: faces are flattened over the batch, item = b * F + f; the N covered pixels are
listed in the order of the True entries of a flattened (B*H*W,) ``covered`` mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
            empty; None when no colors were given.
    """

    mask: torch.Tensor
    depth: torch.Tensor
    face_index: torch.Tensor
    bary: torch.Tensor
    color: torch.Tensor | None


def batched_vertex_colors(
    vertex_colors: torch.Tensor, batch: int, num_vertices: int
) -> torch.Tensor:
    """(V, C) or (B, V, C) per-vertex attributes -> (B, V, C) (a view when expanded)."""
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
    """Colors at N visible points: (B, V, C), (F, 3), (N,) items b * F + f, (N, 3) -> (N, C)."""
    batch = torch.div(item, num_faces, rounding_mode="floor")
    corner = faces[item % num_faces]  # (N, 3)
    colors = vertex_colors[batch[:, None], corner]  # (N, 3, C)
    return (bary[..., None] * colors).sum(dim=1)


def assemble(
    covered: torch.Tensor,
    item: torch.Tensor,
    depth: torch.Tensor,
    bary: torch.Tensor,
    shape: tuple[int, int, int],
    *,
    faces: torch.Tensor,
    vertex_colors: torch.Tensor | None,
    num_vertices: int,
) -> RasterResult:
    """Per-covered-pixel values -> a ``RasterResult`` of images of ``shape`` = (B, H, W).

    covered: (B*H*W,) bool; item: (N,) long visible face b * F + f; depth: (N,) metres;
    bary: (N, 3) perspective-correct; faces: (F, 3); vertex_colors: (V, C), (B, V, C) or
    None, with V = ``num_vertices``, interpolated with ``bary`` (cast to their dtype).
    """
    device, num_faces = bary.device, faces.shape[0]
    color = None
    if vertex_colors is not None:
        colors = batched_vertex_colors(vertex_colors.to(device), shape[0], num_vertices)
        faces_long = faces.to(device=device, dtype=torch.long)
        color = interpolate_colors(colors, faces_long, item, bary.to(colors.dtype), num_faces)
    index = torch.nonzero(covered, as_tuple=False).squeeze(1)

    def image(values: torch.Tensor, fill: float) -> torch.Tensor:
        flat = values.new_full((covered.numel(), *values.shape[1:]), fill)
        flat = flat.index_put((index,), values)
        return flat.view(*shape, *values.shape[1:])

    return RasterResult(
        mask=covered.view(shape),
        depth=image(depth, 0.0),
        face_index=image(item % num_faces, -1),
        bary=image(bary, 0.0),
        color=None if color is None else image(color, 0.0),
    )
