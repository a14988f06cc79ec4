"""Screen-space faces and their (face, pixel) candidate pairs, enumerated in bounded chunks.

Both torch rasterizers (``soft.py``, ``hard.py``) work on candidate pairs instead of a dense
pixels x faces grid: each face contributes the pixels whose centres lie in its projected
bounding box (widened by a margin for the soft rasterizer, clipped to the image). The pairs
are never materialised all at once: ``iter_pair_chunks`` walks the global pair index range in
chunks of at most ``max_pairs`` and decodes each index into (face, row, col) with a
``searchsorted`` over the cumulative box areas. Cost: O(total box area) time,
O(max_pairs + B*F) memory per chunk.

Conventions: pixels (u, v) = (column, row), pixel centres at integer coordinates (see
``hand_mesh_ros.camera``). Faces are flattened over the batch: item = b * F + f.
Near plane: a face with any vertex at depth z <= NEAR_PLANE (or a non-finite coordinate) is
culled -- dropped whole, not clipped. The near plane sits above ``camera.MIN_DEPTH`` so kept
faces are never affected by the projection's depth clamp.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from hand_mesh_ros.camera import project

NEAR_PLANE = 1e-2  # metres; faces with a vertex at z <= this are culled (not clipped)
DEFAULT_MAX_PAIRS = 1 << 18  # (face, pixel) pairs per chunk; ~150 MiB peak on CPU (docs)
# Soft rasterizer cutoff: a pixel outside a face with d^2 / sigma > SOFT_CUTOFF gets
# D = sigmoid(-d^2 / sigma) < 2.1e-9 from it and is not enumerated for that face.
SOFT_CUTOFF = 20.0


@dataclass(frozen=True)
class ScreenFaces:
    """Projected faces, flattened over the batch (item = b * F + f).

    Attributes:
        tri_uv: (B*F, 3, 2) vertex pixel coordinates (u, v), differentiable.
        tri_z: (B*F, 3) vertex depths, metres, differentiable.
        valid: (B*F,) bool, False for culled faces (near plane, non-finite).
        batch: B.  num_faces: F.  height, width: image size in pixels.
    """

    tri_uv: torch.Tensor
    tri_z: torch.Tensor
    valid: torch.Tensor
    batch: int
    num_faces: int
    height: int
    width: int


@dataclass(frozen=True)
class CandidateBoxes:
    """Per-face pixel boxes with at least one pixel; N such faces.

    Attributes:
        item: (N,) long, flattened face index b * F + f.
        row0, col0: (N,) long, first row / column of the box (inside the image).
        box_width: (N,) long, columns in the box (>= 1).
        end: (N,) long, inclusive cumulative pair count: face i owns pairs
            [end[i] - count[i], end[i]).
        count: (N,) long, pairs of each face (box area).
        total: total number of pairs (Python int).
    """

    item: torch.Tensor
    row0: torch.Tensor
    col0: torch.Tensor
    box_width: torch.Tensor
    end: torch.Tensor
    count: torch.Tensor
    total: int


@dataclass(frozen=True)
class PairChunk:
    """A chunk of P candidate pairs: face ``item`` (P,), pixel ``row``, ``col`` (P,), long."""

    item: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor

    def pixel_index(self, num_faces: int, height: int, width: int) -> torch.Tensor:
        """(P,) long index into a flattened (B, H, W) image."""
        batch = torch.div(self.item, num_faces, rounding_mode="floor")
        return (batch * height + self.row) * width + self.col


@dataclass(frozen=True)
class PairStats:
    """How much work a render does (see ``pair_stats``).

    Attributes:
        total_pairs: candidate (face, pixel) pairs evaluated.
        dense_pairs: B * H * W * F, what a dense pixels x faces grid would evaluate.
        faces_with_pairs: faces (over the batch) whose box holds at least one pixel.
        culled_faces: faces dropped by the near plane / non-finite test.
        num_chunks: chunks of at most ``max_pairs`` pairs.
    """

    total_pairs: int
    dense_pairs: int
    faces_with_pairs: int
    culled_faces: int
    num_chunks: int


def check_image_size(image_size) -> tuple[int, int]:
    """Validate ``(H, W)`` and return it as two ints."""
    if len(image_size) != 2 or min(int(image_size[0]), int(image_size[1])) < 1:
        raise ValueError(f"image_size must be (H, W) with H, W >= 1, got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


def check_inputs(
    vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, image_size
) -> tuple[int, int]:
    """Validate a render's arguments (every backend) and return ``(H, W)``.

    vertices: (B, V, 3); faces: (F, 3) integer; K: (3, 3) or (B, 3, 3); image_size: (H, W).
    """
    height, width = check_image_size(image_size)
    if vertices.dim() != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must be (B, V, 3), got {tuple(vertices.shape)}")
    if faces.dim() != 2 or faces.shape[-1] != 3 or faces.dtype.is_floating_point:
        raise ValueError(f"faces must be (F, 3) integer, got {tuple(faces.shape)} {faces.dtype}")
    if K.shape[-2:] != (3, 3) or K.dim() not in (2, 3):
        raise ValueError(f"K must be (3, 3) or (B, 3, 3), got {tuple(K.shape)}")
    return height, width


def screen_faces(
    vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, image_size
) -> ScreenFaces:
    """Project a batch of meshes and gather per-face screen triangles.

    vertices: (B, V, 3) metres, OpenCV camera frame; faces: (F, 3) long;
    K: (3, 3) or (B, 3, 3) pixels; image_size: (H, W).
    """
    height, width = check_inputs(vertices, faces, K, image_size)
    faces = faces.to(device=vertices.device, dtype=torch.long)
    batch, num_faces = vertices.shape[0], faces.shape[0]
    uv = project(vertices, K.to(device=vertices.device))
    tri_uv = uv[:, faces].reshape(batch * num_faces, 3, 2)
    tri_z = vertices[..., 2][:, faces].reshape(batch * num_faces, 3)
    finite = torch.isfinite(tri_uv).flatten(1).all(dim=1) & torch.isfinite(tri_z).all(dim=1)
    valid = finite & (tri_z > NEAR_PLANE).all(dim=1)
    return ScreenFaces(tri_uv, tri_z, valid, batch, num_faces, height, width)


def candidate_boxes(screen: ScreenFaces, margin: float) -> CandidateBoxes:
    """Pixel boxes of the valid faces, widened by ``margin`` pixels and clipped to the image.

    A pixel (row r, col c) is a candidate of a face when its centre (c, r) lies in the face's
    [u_min - margin, u_max + margin] x [v_min - margin, v_max + margin] box (inclusive).
    """
    tri = screen.tri_uv.detach()
    tri = torch.where(screen.valid[:, None, None], tri, torch.zeros_like(tri))
    size = torch.tensor([screen.width, screen.height], device=tri.device, dtype=tri.dtype)
    # Clamp before rounding so that huge projected coordinates cannot overflow a long.
    low = (tri.amin(dim=1) - margin).clamp(min=-1.0).minimum(size)
    high = (tri.amax(dim=1) + margin).clamp(min=-1.0).minimum(size)
    first = torch.ceil(low).long().clamp(min=0)
    last = torch.minimum(torch.floor(high).long(), size.long() - 1)
    extent = (last - first + 1).clamp(min=0)
    count = extent[:, 0] * extent[:, 1] * screen.valid.long()
    item = torch.nonzero(count, as_tuple=False).squeeze(1)
    count = count[item]
    end = torch.cumsum(count, dim=0)
    total = int(end[-1]) if end.numel() else 0
    return CandidateBoxes(
        item=item,
        row0=first[item, 1],
        col0=first[item, 0],
        box_width=extent[item, 0],
        end=end,
        count=count,
        total=total,
    )


def iter_pair_chunks(boxes: CandidateBoxes, max_pairs: int) -> Iterator[PairChunk]:
    """Yield the candidate pairs in chunks of at most ``max_pairs`` (a face may span chunks)."""
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
    device = boxes.end.device
    # one gather per chunk: first pair index, box width, first row, first column, face item
    table = torch.stack(
        (boxes.end - boxes.count, boxes.box_width, boxes.row0, boxes.col0, boxes.item), dim=1
    )
    for start in range(0, boxes.total, max_pairs):
        index = torch.arange(start, min(start + max_pairs, boxes.total), device=device)
        owner = torch.searchsorted(boxes.end, index, right=True)
        first, box_width, row0, col0, item = table[owner].unbind(dim=1)
        local = index - first
        row = row0 + torch.div(local, box_width, rounding_mode="floor")
        yield PairChunk(item=item, row=row, col=col0 + (local - (row - row0) * box_width))


def num_chunks(total: int, max_pairs: int) -> int:
    """Chunks needed for ``total`` pairs."""
    return math.ceil(total / max_pairs) if total else 0


def pixel_centres(chunk: PairChunk, dtype: torch.dtype) -> torch.Tensor:
    """(P, 2) pixel-centre coordinates (u, v) = (col, row) of a chunk's pairs."""
    return torch.stack((chunk.col, chunk.row), dim=-1).to(dtype)


def soft_margin(sigma: float) -> float:
    """Box margin in pixels beyond which a face's soft coverage is below the cutoff."""
    return math.sqrt(SOFT_CUTOFF * sigma)


def pair_stats(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    image_size,
    *,
    sigma: float | None = None,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> PairStats:
    """Count the candidate pairs a render would evaluate (soft when ``sigma`` is given, in
    px^2 as in ``render_silhouette``; hard -- margin 0 -- when None). Same arguments as
    ``render_silhouette``; nothing is rendered."""
    with torch.no_grad():
        screen = screen_faces(vertices, faces, K, image_size)
        boxes = candidate_boxes(screen, 0.0 if sigma is None else soft_margin(sigma))
    return PairStats(
        total_pairs=boxes.total,
        dense_pairs=screen.batch * screen.height * screen.width * screen.num_faces,
        faces_with_pairs=int(boxes.item.numel()),
        culled_faces=int((~screen.valid).sum()),
        num_chunks=num_chunks(boxes.total, max_pairs),
    )
