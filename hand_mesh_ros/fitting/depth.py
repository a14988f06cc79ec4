"""Aligned depth in the fit: observe it over the hand, place the hand by it, and the depth term.

Observation (``observe_depth``): the initial hand's front-facing vertices are z-buffered on a
coarse grid over its render region (``OBSERVATION_GRID`` cells a side: per cell the nearest
vertex, ``render/vertices.py``); the observed depth is read at the cell centres (nearest image
pixel). Read at each cell vertex's own pixel instead, single frames were as accurate (15.5
mm) but the tracked right clip 14.0 mm instead of 11.4 (a vertex at the silhouette's edge reads
the edge's holes and the misregistered background); on exact depth the cell-centre reading
leaves a few mm of placement error (the vertex sits anywhere in its cell; test: < 5 mm).
Over the cells covered by the hand with a valid observation:
1. placement -- scaling the hand by s about the camera centre leaves its image unchanged and
   multiplies its depth by s, so s = median(observed / rendered), robust to holes, background
   at the edges and occluders (a second median over the cells within the gate of the
   first); the hand is then scaled by s (shape: ``handmodel/size.py``, distance: log depth);
2. the depth term's targets -- up to ``MAX_POINTS`` of those inlier cells, each its vertex
   (a fixed point of the surface) and its observed depth.
Measured on the benchmark (``benchmarks/bench_depth.py``) against the hard-rasterized mesh at
64 px with each pixel's nearest face vertex as its point: camera-frame error 16.3 -> 15.7 mm
(single frames), occluded 30.0 -> 28.9 mm, tracked right clip 12.6 -> 11.4 mm, at ~2 ms less
per frame (the rasterizer's fixed cost); without the front-facing test (back vertices win
the cells that no front vertex falls in) 16.3 mm. Points on a face's nearest vertex instead
of the face (barycentrics) were as accurate at 1/3 of the skinning in the Jacobian.
Refinement residual per point: sqrt(w_depth / N) * (z_point - z_observed) / DEPTH_UNIT_M, a
point-to-surface distance along the viewing ray, differentiable w.r.t. pose, shape, rotation
and position and smooth (the points are fixed on the mesh), so the Levenberg-Marquardt
Jacobian covers it. It is truncated by construction, one-sided: cells whose observation is
more than ``GATE_NEAR_M`` nearer than the placed hand (an object in the hand, the other hand,
a finger in front) or ``GATE_FAR_M`` farther (background seen past an edge) are not points.

Validity per hand: too few valid cells (< ``MIN_VALID_FRACTION`` of the hand's, or fewer than
``MIN_POINTS`` inliers) -> ``DEPTH_TOO_FEW``; a size change outside ``SCALE_RANGE`` (real adult
and child hands differ from the mean hand by far less) unless the observed hand stands out in
front of its surroundings (then up to ``WIDE_SCALE_RANGE``: the RGB estimate of a
foreshortened hand can be that far off), or too few cells agreeing with the placed surface
(``MIN_INLIER_FRACTION``) -> ``DEPTH_DISAGREES`` (not aligned, or not the hand).
Either way the hand is fitted from RGB alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from hand_mesh_ros.fitting.roi import HandRoi
from hand_mesh_ros.render.vertices import VertexZBuffer, vertex_zbuffer

DEPTH_USED = "used"
DEPTH_NONE = "no depth given"
DEPTH_IGNORED = "depth ignored (depth_weight is 0)"
DEPTH_TOO_FEW = "too few valid depth pixels on the hand"
DEPTH_DISAGREES = "depth disagrees with the image (not aligned, or not the hand)"

DEPTH_UNIT_M = 0.005  # residual unit: ~ one render pixel of a hand region at arm's length
# observations nearer than the placed surface by more than GATE_NEAR_M (an occluder) or
# farther by more than GATE_FAR_M (background past an edge) are not points; the far side is
# wider because a mesh in front of the observed surface is where the camera sees through it
# (9 synthetic RGB-D hands: gates 2/2 cm -> 2/5 cm, camera-frame error 20.6 -> 20.7 mm mean,
# 16.9 -> 15.8 mm median, wrist 13.1 -> 12.4 mm)
GATE_NEAR_M = 0.02
GATE_FAR_M = 0.05
# cells a side of the vertex z-buffer over the hand's render region (48: single frames 15.4
# instead of 15.7 mm, the tracked right clip 14.6 instead of 11.4; docs/depth.md)
OBSERVATION_GRID = 32
MAX_POINTS = 64  # surface points per hand in the depth term (256: ~2x the Jacobian cost)
MIN_POINTS = 20
MIN_VALID_FRACTION = 0.2  # of the hand's observation cells with a valid observed depth
MIN_INLIER_FRACTION = 0.25  # of those, within the gate of the placed surface
SCALE_RANGE = (0.7, 1.4)  # plausible size corrections of the mean-sized RGB estimate ...
# ... or, where the observed hand stands out from its surroundings (``_stands_out``), any in
# this range: a foreshortened view can put the RGB estimate 1.4-2x too far (benchmark: 4 of
# 166 hands, 86-490 mm off, 3 of 96 occluded ones ~600 mm), while a depth image that is not
# aligned (a wall where the image has the hand) has no depth step around the hand
WIDE_SCALE_RANGE = (0.33, 3.0)
RING_PX = (1, 4)  # the ring around the hand's silhouette: from 1 to 4 grid cells out
RING_STEP_M = 0.03  # a ring cell is behind the hand when this much farther than its median
# of the ring's valid cells (measured with the 64 px raster before the grid): the hands of the
# benchmark that need the wide range have 0.15 of theirs behind (a wrong RGB silhouette),
# those in front of a wall 0.8-0.99, a wall where the image has the hand 0
MIN_RING_FRACTION = 0.1


def as_depth_tensor(depth, shape: tuple[int, int], device) -> torch.Tensor:
    """An (H, W) depth map in metres -> float32 tensor (no copy for a float32 array on the
    CPU); 0, negative, NaN and inf stay as they are and mean no data (``crop_depth`` reads
    them as NaN: a pass over the whole image cost ~1 ms alone, and the benchmark's RGB-D frames
    4.8 ms outside every stage before it went).
    Raises ValueError when its size is not the image's ``shape``."""
    d = torch.as_tensor(depth, device=device)
    if d.dim() != 2 or tuple(d.shape) != tuple(shape):
        raise ValueError(
            f"depth must be (H, W) = {tuple(shape)} metres aligned to the image, "
            f"got shape {tuple(d.shape)}"
        )
    return d.to(torch.float32)


def crop_depth(depth: torch.Tensor, roi: HandRoi) -> torch.Tensor:
    """Observed depth at the region's render pixel centres (nearest image pixel).

    depth: (B, H, W) metres (0, negative, NaN or inf = none), in the processing frame; ->
    (B, S, S), NaN where there is none or outside the image."""
    b, h, w = depth.shape
    n = roi.size
    grid = (torch.arange(n, dtype=roi.centre.dtype, device=depth.device) + 0.5) / n - 0.5
    u = (roi.centre[:, 0:1] + grid[None] * roi.side[:, None]).round().long()  # (B,S)
    v = (roi.centre[:, 1:2] + grid[None] * roi.side[:, None]).round().long()
    inside = ((v >= 0) & (v < h))[:, :, None] & ((u >= 0) & (u < w))[:, None, :]
    flat = (v.clamp(0, h - 1)[:, :, None] * w + u.clamp(0, w - 1)[:, None, :]).flatten(1)
    values = torch.gather(depth.flatten(1), 1, flat).view(b, n, n)
    valid = inside & torch.isfinite(values) & (values > 0)
    return torch.where(valid, values, torch.full_like(values, math.nan))


@dataclass(frozen=True)
class DepthTargets:
    """The depth term's fixed surface points, N per hand (padding has zero weight).

    vertex_ids (B, N) long: each point's mesh vertex (or (G, N) after ``repeat``); observed
    (B, N) metres; scale (B, N) = sqrt(1 / n_valid) for the hand's valid points, 0 otherwise
    (the weight and DEPTH_UNIT_M are applied in the objective)."""

    vertex_ids: torch.Tensor
    observed: torch.Tensor
    scale: torch.Tensor

    def repeat(self, k: int) -> DepthTargets:
        """Every hand repeated k times (hand-major), for the perturbed Jacobian copies; the
        vertex ids stay one row per hand (the skeleton skins each hand's points for all its
        copies at once: ``KeypointSkeleton.forward``)."""
        return DepthTargets(self.vertex_ids, *(t.repeat_interleave(k, dim=0) for t in (
            self.observed, self.scale)))


@dataclass(frozen=True)
class DepthObservation:
    """What the depth says about B initial hands.

    scale (B,): size factor to apply (1 where unused); used (B,) bool; status: per hand
    ``DEPTH_USED`` or why not; valid_fraction (B,); targets: the depth term (all hands)."""

    scale: torch.Tensor
    used: torch.Tensor
    status: tuple[str, ...]
    valid_fraction: torch.Tensor
    targets: DepthTargets


def _nanmedian_ratio(ratio: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(B,P) ratios, (B,P) bool -> (B,) median over kept entries (1 where none)."""
    values = torch.where(keep, ratio, torch.full_like(ratio, math.nan))
    median = values.nanmedian(dim=1).values
    return torch.where(torch.isfinite(median), median, torch.ones_like(median))


def _within_gate(difference: torch.Tensor) -> torch.Tensor:
    """observed - surface depth (m) -> bool: the pixel is a point of the depth term."""
    return (difference > -GATE_NEAR_M) & (difference < GATE_FAR_M)


def observe_depth(model, vertices: torch.Tensor, K: torch.Tensor, roi: HandRoi,
                  depth: torch.Tensor) -> DepthObservation:
    """Placement and depth-term targets for B initial hands (module docstring).

    vertices: (B, V, 3) initial meshes, processing frame; K: (3,3) or (B,3,3) the image's
    intrinsics; roi: the hands' render regions; depth: (B, H, W) metres in the processing
    frame (0, negative, NaN or inf = none)."""
    b = vertices.shape[0]
    grid = replace(roi, size=OBSERVATION_GRID)
    with torch.no_grad():
        zbuffer = vertex_zbuffer(vertices, model.faces, grid.intrinsics(K.to(vertices.dtype)),
                                 grid.size)
    observed_grid = crop_depth(depth, grid)
    observed = observed_grid.flatten(1)  # (B,P)
    rendered = zbuffer.depth.flatten(1).to(observed.dtype)
    covered = zbuffer.mask.flatten(1)
    paired = covered & torch.isfinite(observed)
    ratio = observed / rendered.clamp_min(1e-6)
    first = _nanmedian_ratio(ratio, paired)
    near_first = paired & _within_gate(observed - first[:, None] * rendered)
    scale = _nanmedian_ratio(ratio, near_first)
    inliers = paired & _within_gate(observed - scale[:, None] * rendered)
    n_covered = covered.sum(1).clamp_min(1)
    valid_fraction = paired.sum(1) / n_covered
    inlier_fraction = inliers.sum(1) / paired.sum(1).clamp_min(1)
    outside_range = (scale < SCALE_RANGE[0]) | (scale > SCALE_RANGE[1])
    stands_out = (_stands_out(zbuffer.mask, observed_grid, observed, inliers)
                  if bool(outside_range.any()) else torch.zeros_like(outside_range))
    status = []
    for i in range(b):
        if valid_fraction[i] < MIN_VALID_FRACTION or inliers[i].sum() < MIN_POINTS:
            status.append(DEPTH_TOO_FEW)
        elif inlier_fraction[i] < MIN_INLIER_FRACTION or not (
            SCALE_RANGE[0] <= scale[i] <= SCALE_RANGE[1]
            or (stands_out[i] and WIDE_SCALE_RANGE[0] <= scale[i] <= WIDE_SCALE_RANGE[1])
        ):
            status.append(DEPTH_DISAGREES)
        else:
            status.append(DEPTH_USED)
    used = torch.tensor([st == DEPTH_USED for st in status], device=vertices.device)
    scale = torch.where(used, scale, torch.ones_like(scale))
    targets = _points(zbuffer, observed, inliers & used[:, None])
    return DepthObservation(scale, used, tuple(status), valid_fraction, targets)


def _stands_out(mask: torch.Tensor, observed_roi: torch.Tensor, observed: torch.Tensor,
                inliers: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the observed surface under the hand is in front of what surrounds it -- over
    a ring of grid cells just outside the hand's silhouette (mask (B,S,S)), at least
    MIN_RING_FRACTION of the valid observations are more than RING_STEP_M farther than the
    median of the hand's inliers (observed (B,P), inliers (B,P)). A depth image that is not
    aligned (a wall or another object where the image has the hand) has no such step."""
    m = mask[:, None].float()
    inner, outer = (torch.nn.functional.max_pool2d(m, 2 * r + 1, 1, r) for r in RING_PX)
    ring = ((outer > 0) & ~(inner > 0))[:, 0].flatten(1)
    hand = _nanmedian_ratio(observed, inliers)  # the median inlier depth (1 where none)
    around = observed_roi.flatten(1)
    valid = ring & torch.isfinite(around)
    behind = valid & (around > hand[:, None] + RING_STEP_M)
    fraction = behind.sum(1) / valid.sum(1).clamp_min(1)
    return (valid.sum(1) >= MIN_POINTS) & (fraction >= MIN_RING_FRACTION)


def _points(zbuffer: VertexZBuffer, observed: torch.Tensor, keep: torch.Tensor) -> DepthTargets:
    """Up to MAX_POINTS kept cells per hand, evenly spread over them: their vertices."""
    b = keep.shape[0]
    count = keep.sum(1)
    n = int(min(MAX_POINTS, max(int(count.max()), 1)))
    ids = torch.zeros(b, n, dtype=torch.long, device=keep.device)
    valid = torch.zeros(b, n, dtype=torch.bool, device=keep.device)
    for i in range(b):
        cells = torch.nonzero(keep[i], as_tuple=False)[:, 0]
        if len(cells) > n:
            cells = cells[torch.linspace(0, len(cells) - 1, n, device=keep.device).long()]
        ids[i, : len(cells)] = cells
        valid[i, : len(cells)] = True
    vertex_ids = torch.gather(zbuffer.vertex.flatten(1), 1, ids)
    obs = torch.gather(observed, 1, ids)
    scale = valid / valid.sum(1, keepdim=True).clamp_min(1).sqrt()
    obs = torch.where(valid, obs, torch.zeros_like(obs))
    return DepthTargets(vertex_ids, obs, scale.to(obs.dtype))


def point_depths(points: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) camera-frame surface points -> (B, N) their z."""
    return points[..., 2]


def residual_mm(points: torch.Tensor, targets: DepthTargets) -> torch.Tensor:
    """(B,) median |z_point - z_observed| over each hand's points, mm (nan without points)."""
    error = (point_depths(points) - targets.observed).abs() * 1e3
    error = torch.where(targets.scale > 0, error, torch.full_like(error, math.nan))
    return error.nanmedian(dim=1).values


def size_ratio(points: torch.Tensor, targets: DepthTargets) -> torch.Tensor:
    """(B,) median(observed / fitted point depth) over each hand's points: the factor by which
    the fitted hand, scaled about the camera centre (same image), would meet the depth -- the
    size correction it still implies (1 where unused)."""
    ratio = targets.observed / point_depths(points).clamp_min(1e-6)
    return _nanmedian_ratio(ratio, targets.scale > 0)
