"""Torch backend of ``render_silhouette``: a SoftRas-style soft silhouette, memory bounded.

Method (Liu et al. 2019, "Soft Rasterizer", ICCV, Eqs. for the silhouette): every face j
covers pixel p with probability

    D_j(p) = sigmoid(delta_j(p) * d_j(p)^2 / sigma),  delta = +1 inside, -1 outside,

where d_j(p) is the 2D Euclidean distance, in pixels, from the pixel centre to the
projected triangle's boundary, and the silhouette aggregates all faces (front and back):

    S(p) = 1 - prod_j (1 - D_j(p)) = 1 - exp(sum_j log(1 - D_j(p))).

``log(1 - D) = logsigmoid(-delta * d^2 / sigma)`` is evaluated directly, so deep inside
a face the sum goes to -inf smoothly instead of hitting log(0).

``sigma`` is in px^2: at sigma = 1 the coverage of a single edge falls from 0.5 on the
edge to 0.27 one pixel outside and 0.018 two pixels outside. Faces farther than
sqrt(SOFT_CUTOFF * sigma) pixels from a pixel are skipped (D < 2.1e-9).

Memory: the per-pixel log-sum is accumulated chunk by chunk over the candidate pairs
(``pairs.py``) with ``index_add_``; the backward pass re-enumerates each chunk and applies
the analytic gradient (``_SoftPlan.backward``) instead of keeping a graph over all pairs,
so peak memory is O(max_pairs + B*H*W + B*F) in both passes, and time O(total box area).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from hand_mesh_ros.render.geometry import front_facing
from hand_mesh_ros.render.pairs import (
    CandidateBoxes,
    candidate_boxes,
    iter_pair_chunks,
    pixel_centres,
    screen_faces,
    soft_margin,
)

MIN_EDGE_LENGTH2 = 1e-12  # px^2; guards the projection onto zero-length (degenerate) edges


@dataclass(frozen=True)
class FaceEdges:
    """Per-face edge data for N faces, packed for a single gather per chunk.

    ``packed``: (N, 5, 3); for edge k (vertex k -> vertex (k + 1) % 3) the rows hold the
    start x, start y, edge x, edge y (pixels) and 1 / |edge|^2 (1/px^2, guarded).
    """

    packed: torch.Tensor

    @staticmethod
    def of(tri: torch.Tensor) -> FaceEdges:
        edge = tri[:, (1, 2, 0)] - tri  # (N, 3, 2)
        length2 = edge[..., 0] * edge[..., 0] + edge[..., 1] * edge[..., 1]
        inv_length2 = 1.0 / length2.clamp_min(MIN_EDGE_LENGTH2)
        rows = (tri[..., 0], tri[..., 1], edge[..., 0], edge[..., 1], inv_length2)
        return FaceEdges(torch.stack(rows, dim=1))

    def gather(self, index: torch.Tensor) -> FaceEdges:
        return FaceEdges(self.packed[index])


@dataclass(frozen=True)
class PairGeometry:
    """Nearest boundary point of P (pixel, face) pairs.

    signed: (P,) squared distance to the boundary in px^2, + inside (edges inclusive, either
    winding), - outside. nearest: (P,) long, the nearest edge k. t: (P,) position on it in
    [0, 1]. offset: (P, 2) pixel centre minus the nearest boundary point.
    """

    signed: torch.Tensor
    nearest: torch.Tensor
    t: torch.Tensor
    offset: torch.Tensor


def pair_geometry(point: torch.Tensor, faces: FaceEdges) -> PairGeometry:
    """point: (P, 2) pixels; faces: P gathered ``FaceEdges``. Degenerate faces stay finite.

    Works on (P, 3) component tensors: reductions over size-2 axes are slow on CPU.
    """
    start_x, start_y, edge_x, edge_y, inv_length2 = faces.packed.unbind(dim=1)
    rel_x = point[:, 0:1] - start_x
    rel_y = point[:, 1:2] - start_y
    t = ((rel_x * edge_x + rel_y * edge_y) * inv_length2).clamp(0.0, 1.0)
    off_x = rel_x - t * edge_x
    off_y = rel_y - t * edge_y
    dist2, nearest = (off_x * off_x + off_y * off_y).min(dim=1)
    side = edge_x * rel_y - edge_y * rel_x
    inside = (side >= 0).all(dim=1) | (side <= 0).all(dim=1)
    pick = nearest[:, None]
    offset = torch.cat((off_x.gather(1, pick), off_y.gather(1, pick)), dim=1)
    return PairGeometry(
        signed=torch.where(inside, dist2, -dist2),
        nearest=nearest,
        t=t.gather(1, pick).squeeze(1),
        offset=offset,
    )


@dataclass(frozen=True)
class _SoftPlan:
    """Everything but the triangles needed to (re)compute the per-pixel log-sum."""

    boxes: CandidateBoxes
    num_faces: int
    batch: int
    height: int
    width: int
    sigma: float
    max_pairs: int

    def chunks(self, tri_uv: torch.Tensor):
        """Yield (chunk, pixel index, PairGeometry) over all candidate pairs."""
        faces = FaceEdges.of(tri_uv)
        for chunk in iter_pair_chunks(self.boxes, self.max_pairs):
            pixel = chunk.pixel_index(self.num_faces, self.height, self.width)
            point = pixel_centres(chunk, tri_uv.dtype)
            yield chunk, pixel, pair_geometry(point, faces.gather(chunk.item))

    def forward(self, tri_uv: torch.Tensor) -> torch.Tensor:
        """(B*F, 3, 2) -> (B*H*W,) sum over faces of log(1 - D) = logsigmoid(-signed / sigma)."""
        out = tri_uv.new_zeros(self.batch * self.height * self.width)
        for _, pixel, geo in self.chunks(tri_uv):
            out.index_add_(0, pixel, F.logsigmoid(-geo.signed / self.sigma))
        return out

    def backward(self, tri_uv: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
        """Analytic gradient w.r.t. (B*F, 3, 2) triangles.

        With q = offset to the nearest boundary point a + t (b - a) of edge (a, b), the
        envelope theorem gives d(d^2)/da = -2 q (1 - t), d(d^2)/db = -2 q t (t is either
        stationary or clamped), and d logsigmoid(-s / sigma)/ds = -sigmoid(s / sigma) / sigma.
        """
        grad_tri = tri_uv.new_zeros(tri_uv.shape[0] * 3, 2)
        for chunk, pixel, geo in self.chunks(tri_uv):
            sign = torch.where(geo.signed >= 0, 1.0, -1.0).to(tri_uv.dtype)
            slope = torch.sigmoid(geo.signed / self.sigma) * (2.0 / self.sigma)
            coef = (grad_out[pixel] * slope * sign)[:, None] * geo.offset
            corner = chunk.item * 3 + geo.nearest
            grad_tri.index_add_(0, corner, coef * (1.0 - geo.t)[:, None])
            grad_tri.index_add_(
                0, corner - geo.nearest + (geo.nearest + 1) % 3, coef * geo.t[:, None]
            )
        return grad_tri.view(tri_uv.shape)


class _LogBackground(torch.autograd.Function):
    """(B*F, 3, 2) triangles -> (B*H*W,) sum_j log(1 - D_j), with a chunked backward."""

    @staticmethod
    def forward(ctx, tri_uv: torch.Tensor, plan: _SoftPlan) -> torch.Tensor:
        ctx.plan = plan
        ctx.save_for_backward(tri_uv)
        return plan.forward(tri_uv)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        (tri_uv,) = ctx.saved_tensors
        return ctx.plan.backward(tri_uv.detach(), grad_out.contiguous()), None


def silhouette_torch(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    image_size,
    sigma: float,
    *,
    max_pairs: int,
    cull_backfaces: bool,
) -> torch.Tensor:
    """(B, V, 3) vertices -> (B, H, W) soft silhouette in [0, 1]; the contract of
    ``front.render_silhouette`` (arguments validated in ``pairs.check_inputs``).

    cull_backfaces: drop faces turned away from the camera (``geometry.front_facing``)
    before enumerating pairs; only for closed, outward-oriented meshes.
    """
    screen = screen_faces(vertices, faces, K, image_size)
    if cull_backfaces:
        front = front_facing(vertices.detach(), faces).reshape(-1)
        screen = replace(screen, valid=screen.valid & front)
    plan = _SoftPlan(
        boxes=candidate_boxes(screen, soft_margin(sigma)),
        num_faces=screen.num_faces,
        batch=screen.batch,
        height=screen.height,
        width=screen.width,
        sigma=float(sigma),
        max_pairs=max_pairs,
    )
    log_background = _LogBackground.apply(screen.tri_uv, plan)
    return (-torch.expm1(log_background)).view(screen.batch, screen.height, screen.width)
