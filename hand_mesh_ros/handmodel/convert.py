"""Moving hand parameters between hand models (the open model and a user's MANO, either way).

Two tools, both for models of the same side:

- ``transfer_pose``: a finger pose of one model -> the same joint angles on another, through
  the anatomical joint frames of each model's pose prior (``prior.py``: flexion, abduction,
  twist of every joint, built from that model's own rest skeleton). Instant and exact in
  angles; approximate in positions, since the models' bones differ. The pipeline uses it to
  hand the open-model regressor's articulation to MANO.
- ``fit_parameters``: fits the target model's pose, shape, orientation and translation to the
  source model's posed hand -- its 21 keypoints and, with ``surface_weight`` > 0, its surface
  (symmetric nearest-vertex distances, which need no shared topology) -- starting from
  ``transfer_pose`` and a rigid (Kabsch) alignment, and reports the remaining keypoint error.
  For converting recorded ``HandMano`` messages (bags) from one model to the other.

Both models take pose (B, 45) axis-angle radians as their ``forward`` expects it (the pipeline
loads MANO with ``flat_hand_mean=True``, so poses are the full articulation).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.rotations import matrix_to_axis_angle
from hand_mesh_ros.topology import NUM_POSE, NUM_SHAPE

M_TO_MM = 1000.0
DEFAULT_ITERATIONS = 60  # L-BFGS iterations (each up to 20 evaluations): converged by ~40
PRIOR_WEIGHT = 1.0  # joint-limit violations, rad^2, next to mm^2 keypoint errors
SHAPE_WEIGHT = 0.1  # keeps shape coefficients near the mean where the keypoints allow


def transfer_pose(source_prior: PosePrior, target_prior: PosePrior, pose: torch.Tensor):
    """(B, 45) pose of the source prior's model -> (B, 45) pose of the target's with the same
    anatomical joint angles. Sides may differ: a pose and its mirror image on the mirrored
    model have the same angles, so a right-hand pose becomes its left-hand mirror."""
    angles = source_prior.to_anatomical(pose.to(source_prior.frames.dtype))
    return target_prior.from_anatomical(angles).to(pose.dtype)


def _kabsch(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per batch (B, N, 3) -> rotation R (B, 3, 3) and translation t (B, 3) minimising
    |R source + t - target|."""
    mu_s, mu_t = source.mean(1, keepdim=True), target.mean(1, keepdim=True)
    cov = (source - mu_s).mT @ (target - mu_t)
    u, _, vt = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(vt.mT @ u.mT))
    fix = torch.diag_embed(torch.stack((torch.ones_like(d), torch.ones_like(d), d), -1))
    rot = vt.mT @ fix @ u.mT
    return rot, (mu_t - mu_s @ rot.mT)[:, 0]


def _chamfer_mm2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) symmetric mean squared nearest-vertex distance, mm^2, of (B,N,3) and (B,M,3) m."""
    d = torch.cdist(a * M_TO_MM, b * M_TO_MM).square()
    return d.min(2).values.mean(1) + d.min(1).values.mean(1)


def _initial_params(source_prior, target_prior, target_model, params, source_keypoints):
    pose = transfer_pose(source_prior, target_prior, params.pose)
    shape = torch.zeros_like(params.shape)
    local = target_model(pose=pose, shape=shape)
    rot, t = _kabsch(local.keypoints, source_keypoints)
    root = local.joints[:, 0]
    transl = t + (rot @ root[..., None])[..., 0] - root  # the model rotates about its root
    return torch.cat((pose, shape, matrix_to_axis_angle(rot), transl), 1)


def fit_parameters(
    source_model,
    source_params: HandParams,
    target_model,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    surface_weight: float = 0.0,
) -> tuple[HandParams, np.ndarray]:
    """Parameters of ``target_model`` whose hand matches ``source_model``'s posed hand.

    source_params: (B, ...) HandParams of the source model (any frame, metres).
    iterations: L-BFGS iterations. surface_weight: weight of the symmetric nearest-vertex
        distance (mm^2) next to the keypoint error (mm^2); 0 fits the 21 keypoints only.
    Returns (target HandParams in the source's frame, float64 on the target's device;
    error_mm (B,) the mean 21-keypoint distance that remains). The pose prior of the target
    keeps joints within their limits and a light shape prior keeps the shape near the mean,
    so the error is what the target model cannot reproduce (different bone proportions).
    """
    if source_model.side != target_model.side:
        raise ValueError(f"sides differ: {source_model.side} -> {target_model.side}")
    device, dtype = target_model.device, torch.float64
    # float64 copies (Module.double() works in place: the caller's models stay as they are)
    source_model = copy.deepcopy(source_model).to(device, dtype)
    target_model = copy.deepcopy(target_model).to(device, dtype)
    fields = (source_params.pose, source_params.shape, source_params.global_orient,
              source_params.transl)
    params = HandParams(*(t.detach().to(device, dtype) for t in fields))
    source_prior = PosePrior.from_model(source_model).to(device)
    target_prior = PosePrior.from_model(target_model).to(device)
    with torch.no_grad():
        source = source_model(**params.as_kwargs())
        x = _initial_params(source_prior, target_prior, target_model, params, source.keypoints)
    x = x.clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS(
        [x], max_iter=iterations, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
        tolerance_change=1e-14,
    )

    def loss_of(x: torch.Tensor) -> torch.Tensor:
        pose, shape = x[:, :NUM_POSE], x[:, NUM_POSE : NUM_POSE + NUM_SHAPE]
        out = target_model(pose=pose, shape=shape, global_orient=x[:, -6:-3], transl=x[:, -3:])
        error = ((out.keypoints - source.keypoints) * M_TO_MM).square().sum(-1).mean(1)
        error = error + PRIOR_WEIGHT * target_prior.penalty(pose)
        error = error + SHAPE_WEIGHT * shape.square().mean(1)
        if surface_weight > 0:
            error = error + surface_weight * _chamfer_mm2(out.vertices, source.vertices)
        return error.sum()

    def closure():
        optimiser.zero_grad()
        loss = loss_of(x)
        loss.backward()
        return loss

    optimiser.step(closure)
    x = x.detach()
    fitted = HandParams(x[:, :NUM_POSE], x[:, NUM_POSE : NUM_POSE + NUM_SHAPE], x[:, -6:-3],
                        x[:, -3:])
    with torch.no_grad():
        keypoints = target_model(**fitted.as_kwargs()).keypoints
    error_mm = (keypoints - source.keypoints).norm(dim=-1).mean(1) * M_TO_MM
    return fitted, error_mm.cpu().numpy()


__all__ = ["fit_parameters", "transfer_pose"]
