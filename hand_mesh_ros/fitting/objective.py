"""The Eq. 13 objective: residuals and silhouette term over a packed parameter vector.

Parameters per hand are packed into x (B, 61):
    [pose 45 | shape 10 | global_orient 3 | root x/z, y/z 2 | log root depth 1]
The root position (the root joint in the camera frame) is reparameterised so that moves in
the image plane and in depth have similar scales; ``unpack`` turns x back into HandParams.

Loss per hand = sum(residuals^2) + silhouette term, with residuals
    keypoints: sqrt(w_kp * c_j / sum c) * (projected - target), render pixels of the hand region
    pose prior: sqrt(w_prior) * joint-limit violations, radians
    shape prior: sqrt(w_shape / 10) * shape coefficients
and silhouette term w_sil * mean over region pixels of (soft silhouette - target mask)^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hand_mesh_ros.camera import project
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.render import render_silhouette
from hand_mesh_ros.topology import NUM_POSE, NUM_SHAPE

PACKED_DIM = NUM_POSE + NUM_SHAPE + 3 + 3  # 61
_SHAPE = slice(NUM_POSE, NUM_POSE + NUM_SHAPE)
_ORIENT = slice(NUM_POSE + NUM_SHAPE, NUM_POSE + NUM_SHAPE + 3)
_XY = slice(PACKED_DIM - 3, PACKED_DIM - 1)
MIN_DEPTH = 1e-3  # metres


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
    mask (B,S,S) or None; size S.
    """

    k_roi: torch.Tensor
    keypoints: torch.Tensor
    keypoint_scale: torch.Tensor
    mask: torch.Tensor | None
    size: int


@dataclass(frozen=True, kw_only=True)
class Weights:
    pose_prior: float
    shape_prior: float
    silhouette: float
    sigma: float
    cull_backfaces: bool


def residuals(model, x: torch.Tensor, targets: Targets, weights: Weights, prior) -> torch.Tensor:
    """(B, R) residual vector (keypoints 42, then prior 45 if a prior is given, shape 10)."""
    _, keypoints, _ = evaluate(model, x)
    proj = project(keypoints, targets.k_roi)
    parts = [((proj - targets.keypoints) * targets.keypoint_scale[..., None]).flatten(1)]
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


def total_loss(model, x, targets: Targets, weights: Weights, prior) -> torch.Tensor:
    """(B,) the full objective."""
    r = residuals(model, x, targets, weights, prior)
    return r.square().sum(-1) + silhouette_term(model, x, targets, weights)


def residual_jacobian(model, x: torch.Tensor, targets: Targets, weights: Weights, prior):
    """(B, R, 61) Jacobian of ``residuals`` by forward-mode autodiff (one pass per parameter)."""

    def one(x1, k1, kp1, sc1):
        t = Targets(k1[None], kp1[None], sc1[None], None, targets.size)
        return residuals(model, x1[None], t, weights, prior)[0]

    jac = torch.func.vmap(torch.func.jacfwd(one))
    return jac(x.detach(), targets.k_roi, targets.keypoints, targets.keypoint_scale)
