"""The Eq. 13 objective: residuals and silhouette term over a packed parameter vector.

Parameters per hand are packed into x (B, 61):
    [pose 45 | shape 10 | global_orient 3 | root x/z, y/z 2 | log root depth 1]
The root position (the root joint in the camera frame) is reparameterised so that moves in
the image plane and in depth have similar scales; ``unpack`` turns x back into HandParams.

Loss per hand = sum(residuals^2) + silhouette term, with residuals
    keypoints: sqrt(w_kp * c_j / sum c) * (projected - target), render pixels of the hand region
    pose prior: sqrt(w_prior) * joint-limit violations, radians
    shape prior: sqrt(w_shape / 10) * shape coefficients
    temporal (optional, tracking): sqrt(w_t) * (x - x_previous) over pose, orientation and
        position in the packed units (radians, normalised image coordinates, log metres)
    depth (optional, an aligned depth image; ``depth.py``): sqrt(w_depth / N) * (z_point -
        z_observed) / DEPTH_UNIT_M over N fixed surface points of the hand
    3D shape of the skeleton (optional, e.g. mediapipe's metric "world" landmarks):
        sqrt(w_3d) * 10 * (d_ij / s - d'_ij / s') over all keypoint pairs i < j, the
        pairwise distances normalised by the skeleton's RMS radius s (the root mean square
        distance of its 21 keypoints from their centroid) -- invariant to the landmarks'
        rotation, position and scale. Not by one bone: normalised by the wrist -> middle MCP
        distance, whose length differs between skeleton conventions, the term pulled the
        fitted hand's palm longer and its size smaller (docs/evaluation.md)
and silhouette term w_sil * mean over region pixels of (soft silhouette - target mask)^2.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from hand_mesh_ros.camera import project
from hand_mesh_ros.fitting.depth import DEPTH_UNIT_M, DepthTargets, point_depths
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.render import render_silhouette
from hand_mesh_ros.rotations import axis_angle_to_matrix
from hand_mesh_ros.topology import NUM_POSE, NUM_SHAPE

PACKED_DIM = NUM_POSE + NUM_SHAPE + 3 + 3  # 61
_SHAPE = slice(NUM_POSE, NUM_POSE + NUM_SHAPE)
_ORIENT = slice(NUM_POSE + NUM_SHAPE, NUM_POSE + NUM_SHAPE + 3)
_XY = slice(PACKED_DIM - 3, PACKED_DIM - 1)
MIN_DEPTH = 1e-3  # metres
# central-difference steps in packed units (radians, shape SDs, normalised image coordinates,
# log metres): small enough for the curvature, large enough for the rounding of each dtype
FD_STEP_FLOAT32 = 1e-3
FD_STEP_FLOAT64 = 1e-6
# the temporal term covers pose, orientation and position (shape is fixed when tracking)
_MOVING = torch.cat((torch.arange(NUM_POSE), torch.arange(NUM_POSE + NUM_SHAPE, PACKED_DIM)))


def rest_root(model, pose: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """(B,3) root joint of the unplaced hand (independent of pose and orientation)."""
    return model(pose=pose, shape=shape).joints[:, 0]


def pack(model, params: HandParams) -> torch.Tensor:
    """HandParams -> x (B, 61)."""
    with torch.no_grad():
        root = rest_root(model, params.pose, params.shape) + params.transl
    depth = root[:, 2:3].clamp_min(MIN_DEPTH)
    return torch.cat(
        (params.pose, params.shape, params.global_orient, root[:, :2] / depth, depth.log()), dim=1
    ).detach()


def root_position(x: torch.Tensor) -> torch.Tensor:
    depth = x[:, -1:].exp()
    return torch.cat((x[:, _XY] * depth, depth), dim=-1)


def evaluate(model, x: torch.Tensor):
    """Model output placed in the camera frame: (vertices (B,V,3), keypoints (B,21,3), root)."""
    local = model(pose=x[:, :NUM_POSE], shape=x[:, _SHAPE], global_orient=x[:, _ORIENT])
    shift = (root_position(x) - local.joints[:, 0])[:, None, :]
    return local.vertices + shift, local.keypoints + shift, local.joints[:, 0]


def evaluate_keypoints(skeleton, x: torch.Tensor) -> torch.Tensor:
    """(B,21,3) camera-frame keypoints from a ``KeypointSkeleton`` -- the same values as
    ``evaluate(model, x)[1]`` without skinning the mesh."""
    return evaluate_points(skeleton, x)[0]


def evaluate_points(skeleton, x: torch.Tensor, vertex_ids: torch.Tensor | None = None):
    """Camera-frame (B,21,3) keypoints and, with vertex_ids (B,N) -- or (G,N), a row per G
    consecutive groups of hands (``KeypointSkeleton.forward``) -- (B,N,3) those vertices
    (None without), skinning only them."""
    if vertex_ids is None:
        local, vertices = skeleton(x[:, :NUM_POSE], x[:, _SHAPE]), None
    else:
        local, vertices = skeleton(x[:, :NUM_POSE], x[:, _SHAPE], vertex_ids)
    rotation = axis_angle_to_matrix(x[:, _ORIENT]).transpose(1, 2)
    root = local[:, :1]  # root (wrist) keypoint = joint 0
    shift = root_position(x)[:, None, :]
    keypoints = (local - root) @ rotation + shift
    if vertices is not None:
        vertices = (vertices - root) @ rotation + shift
    return keypoints, vertices


def unpack(model, x: torch.Tensor) -> HandParams:
    """x (B, 61) -> HandParams (detached)."""
    with torch.no_grad():
        root = rest_root(model, x[:, :NUM_POSE], x[:, _SHAPE])
        transl = root_position(x) - root
    return HandParams(
        x[:, :NUM_POSE].detach().clone(),
        x[:, _SHAPE].detach().clone(),
        x[:, _ORIENT].detach().clone(),
        transl.detach(),
    )


@dataclass(frozen=True)
class Targets:
    """What the hand is compared with, all in the hand region's render pixels.

    k_roi (B,3,3); keypoints (B,21,2); keypoint_scale (B,21) = sqrt(w_kp * c_j / sum c);
    mask (B,S,S) or None; size S; skeleton_shape: (B,210) normalised pairwise keypoint
    distances of a 3D skeleton (``normalised_distances``) or None.
    """

    k_roi: torch.Tensor
    keypoints: torch.Tensor
    keypoint_scale: torch.Tensor
    mask: torch.Tensor | None
    size: int
    skeleton_shape: torch.Tensor | None = None
    anchor: torch.Tensor | None = None  # (B,61) packed parameters to stay near (tracking)
    depth: DepthTargets | None = None  # surface points and their observed depth


@dataclass(frozen=True, kw_only=True)
class Weights:
    pose_prior: float
    shape_prior: float
    silhouette: float
    sigma: float
    cull_backfaces: bool
    skeleton: float = 0.0
    temporal: float = 0.0
    depth: float = 0.0


_PAIRS = torch.triu_indices(21, 21, offset=1)  # (2, 210) keypoint pairs i < j
# (210, 21) +1 at i, -1 at j per pair: the pairs' differences as one matrix product (cheaper
# than two gathers for the Jacobian's 123-hand batches)
_PAIR_DIFFERENCE = torch.zeros(_PAIRS.shape[1], 21).index_put_(
    (torch.arange(_PAIRS.shape[1]), _PAIRS[0]), torch.tensor(1.0)
).index_put_((torch.arange(_PAIRS.shape[1]), _PAIRS[1]), torch.tensor(-1.0))


@functools.lru_cache(maxsize=8)
def _pair_difference(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``_PAIR_DIFFERENCE`` in ``dtype`` on ``device`` (made once, not on every call)."""
    with torch.inference_mode(False):  # a constant, never differentiated
        return _PAIR_DIFFERENCE.to(dtype=dtype, device=device)


SKELETON_SCALE = 10.0  # residual units: 0.1 of the skeleton's RMS radius per unit


def normalised_distances(keypoints_3d: torch.Tensor) -> torch.Tensor:
    """(B,21,3) -> (B,210) pairwise distances / the skeleton's RMS radius (the root mean
    square distance of the keypoints from their centroid: the whole skeleton's size)."""
    diff = _pair_difference(keypoints_3d.dtype, keypoints_3d.device) @ keypoints_3d  # (B,210,3)
    dist = (diff.square().sum(-1) + 1e-12).sqrt()
    centred = keypoints_3d - keypoints_3d.mean(1, keepdim=True)
    radius = centred.square().sum(-1).mean(-1, keepdim=True).sqrt().clamp_min(1e-6)
    return dist / radius


def residuals(skeleton, x: torch.Tensor, targets: Targets, weights: Weights, prior):
    """(B, R) residual vector: keypoints 42, then the depth term N if given, the 3D skeleton
    term 210 if given, the temporal term 58 if given, the prior 45 if a prior is given,
    shape 10. skeleton: the model's ``KeypointSkeleton``."""
    depth = targets.depth if weights.depth > 0 else None
    keypoints, points = evaluate_points(skeleton, x, None if depth is None else depth.vertex_ids)
    proj = project(keypoints, targets.k_roi)
    parts = [((proj - targets.keypoints) * targets.keypoint_scale[..., None]).flatten(1)]
    if depth is not None:
        error = point_depths(points) - depth.observed
        parts.append(weights.depth**0.5 / DEPTH_UNIT_M * depth.scale * error)
    if targets.skeleton_shape is not None and weights.skeleton > 0:
        shape_error = normalised_distances(keypoints) - targets.skeleton_shape
        parts.append(weights.skeleton**0.5 * SKELETON_SCALE * shape_error)
    if targets.anchor is not None and weights.temporal > 0:
        moved = (x - targets.anchor)[:, _MOVING]
        parts.append(weights.temporal**0.5 * moved)
    if prior is not None and weights.pose_prior > 0:
        parts.append(weights.pose_prior**0.5 * prior.violations(x[:, :NUM_POSE]).flatten(1))
    parts.append((weights.shape_prior / NUM_SHAPE) ** 0.5 * x[:, _SHAPE])
    return torch.cat(parts, dim=1)


def silhouette_term(model, x: torch.Tensor, targets: Targets, weights: Weights) -> torch.Tensor:
    """(B,) weighted mean squared silhouette difference; zeros when there is no mask term."""
    if targets.mask is None or weights.silhouette <= 0:
        return x.new_zeros(x.shape[0])
    vertices, _, _ = evaluate(model, x)
    sil = render_silhouette(
        vertices,
        model.faces,
        targets.k_roi,
        (targets.size, targets.size),
        sigma=weights.sigma,
        cull_backfaces=weights.cull_backfaces,
    )
    return weights.silhouette * (sil - targets.mask).square().mean((1, 2))


def total_loss(model, skeleton, x, targets: Targets, weights: Weights, prior) -> torch.Tensor:
    """(B,) the full objective."""
    r = residuals(skeleton, x, targets, weights, prior)
    return r.square().sum(-1) + silhouette_term(model, x, targets, weights)


def residual_jacobian(skeleton, x: torch.Tensor, targets: Targets, weights: Weights, prior):
    """(B, R, 61) Jacobian of ``residuals`` by batched central differences."""
    return residuals_and_jacobian(skeleton, x, targets, weights, prior)[1]


def residuals_and_jacobian(
    skeleton, x: torch.Tensor, targets: Targets, weights: Weights, prior, columns=None
):
    """``residuals`` at x (B, R) and their (B, R, 61) Jacobian by batched central differences;
    columns: (61,) bool, the parameters to differentiate (others' columns are 0; all when None:
    a tracked hand's frozen shape costs no probes).

    x and all 2 x 61 perturbed copies of every hand go through ``residuals`` as one batch of
    plain tensor ops -- several times faster on a CPU than forward-mode autodiff under vmap
    (``residual_jacobian_autodiff``, the reference a test compares with), and than one
    reverse-mode pass for the gradient alone (the graph of a few hundred tiny ops costs more
    than 123 hands' worth of arithmetic).
    """
    b, n = x.shape
    step = FD_STEP_FLOAT64 if x.dtype == torch.float64 else FD_STEP_FLOAT32
    eye = torch.eye(n, dtype=x.dtype, device=x.device) * step
    if columns is not None:
        eye = eye[columns]
    k = eye.shape[0]  # probed parameters
    x = x.detach()
    probes = torch.cat((x[:, None, :], x[:, None, :] + eye, x[:, None, :] - eye), dim=1)
    with torch.no_grad():
        r = residuals(skeleton, probes.reshape(b * (2 * k + 1), n),
                      _repeat(targets, 2 * k + 1), weights, prior)
    r = r.view(b, 2 * k + 1, -1)
    derivative = ((r[:, 1 : k + 1] - r[:, k + 1 :]) / (2 * step)).transpose(1, 2)  # (B, R, k)
    if columns is None:
        return r[:, 0], derivative
    jac = derivative.new_zeros(b, r.shape[-1], n)
    jac[..., columns] = derivative
    return r[:, 0], jac


def silhouette_and_gradient(model, x: torch.Tensor, targets: Targets, weights: Weights):
    """``silhouette_term`` (B,) and its (B, 61) gradient (autograd through the soft renderer);
    None when there is no silhouette term."""
    if targets.mask is None or weights.silhouette <= 0:
        return None
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        term = silhouette_term(model, x, targets, weights)
        (grad,) = torch.autograd.grad(term.sum(), x)
    return term.detach(), grad


def _repeat(targets: Targets, k: int) -> Targets:
    """Every per-hand target repeated k times (hand-major), for the perturbed copies."""

    def rep(t):
        return None if t is None else t.repeat_interleave(k, dim=0)

    return Targets(
        rep(targets.k_roi),
        rep(targets.keypoints),
        rep(targets.keypoint_scale),
        None,
        targets.size,
        rep(targets.skeleton_shape),
        rep(targets.anchor),
        None if targets.depth is None else targets.depth.repeat(k),
    )


def residual_jacobian_autodiff(skeleton, x, targets: Targets, weights: Weights, prior):
    """(B, R, 61) exact Jacobian by forward-mode autodiff (one pass per parameter); slow on
    CPU, kept as the reference for ``residual_jacobian``."""

    def one(x1, k1, kp1, sc1, sk1, an1, d1):
        sk = None if targets.skeleton_shape is None else sk1[None]
        an = None if targets.anchor is None else an1[None]
        d = None if targets.depth is None else DepthTargets(*(t[None] for t in d1))
        t = Targets(k1[None], kp1[None], sc1[None], None, targets.size, sk, an, d)
        return residuals(skeleton, x1[None], t, weights, prior)[0]

    placeholder = x.new_zeros(x.shape[0], 1)  # vmap needs a batch even for absent targets
    shape_target = targets.skeleton_shape if targets.skeleton_shape is not None else placeholder
    anchor = targets.anchor if targets.anchor is not None else placeholder
    d = targets.depth
    depth = (placeholder,) * 3 if d is None else (d.vertex_ids, d.observed, d.scale)
    jac = torch.func.vmap(torch.func.jacfwd(one))
    return jac(
        x.detach(), targets.k_roi, targets.keypoints, targets.keypoint_scale, shape_target,
        anchor, depth,
    )
