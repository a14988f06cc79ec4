"""Test-time refinement, DHPE Eq. 13: gradient steps on the hand parameters.

The objective (``objective.py``) compares the hand with what exists at test time: the 2D
joints (keypoint residuals in render pixels of the hand's region), a silhouette target (a
given mask, or -- Eq. 13 -- the hard mask rendered from the initial estimate, which keeps the
surface from drifting), the anatomical pose prior and a shape prior; with an aligned depth
image also the observed depth (``depth.py``: the initial hand is first placed and sized by it,
then its surface points are fitted to it). Initial parameters come
from the caller, so a video tracker can warm-start each frame from the last one.

Two step rules, both driven by the objective's full gradient:
  * "lm" (default): the gradient preconditioned by the Gauss-Newton approximation of the
    residuals' Hessian with Levenberg-Marquardt damping, a step accepted only if the (exact)
    loss drops. The residuals' part of the gradient is 2 J^T r from the same batched
    central-difference Jacobian (one batch of plain tensor ops with the point itself; a
    reverse-mode pass cost more: docs/pipeline.md), the silhouette term's comes from
    autograd through the soft renderer. It converges in a few iterations and -- what a
    tracker needs -- does not move a hand that already fits (the step is proportional to the
    gradient).
  * "adam": the paper's plain first-order steps (Adam, one step size per parameter group,
    cosine decay). Adam's normalised first steps move every parameter by about its step
    size even at the optimum, which shows up as jitter when warm-starting.
Both stop early when the loss changes by less than ``rel_tol`` (relative) for ``patience``
consecutive iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from hand_mesh_ros.camera import project
from hand_mesh_ros.fitting import objective
from hand_mesh_ros.fitting.depth import (
    DepthObservation,
    observe_depth,
    residual_mm,
    size_ratio,
)
from hand_mesh_ros.fitting.roi import HandRoi, hand_roi
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.handmodel.size import hand_size_of
from hand_mesh_ros.handmodel.skeleton import KeypointSkeleton
from hand_mesh_ros.render import rasterize
from hand_mesh_ros.topology import NUM_POSE, NUM_SHAPE

METHODS = ("lm", "adam")
DEPTH_PLACEMENTS = ("size", "distance")


@dataclass(frozen=True, kw_only=True)
class RefineConfig:
    method: str = "lm"
    iterations: int = 50  # the paper's fixed count; an upper bound with early stopping
    render_size: int = 64  # pixels, side of the square silhouette render of the hand region
    # soft edge of the silhouette, px^2: at 64 px a hand's fingers are ~3 px wide; larger
    # values cover more than the hard mask and bias the fit towards shrinking the hand
    # (measured: the truth is the loss minimum at 0.05, not at 0.2; docs/refinement.md)
    sigma: float = 0.05
    cull_backfaces: bool = True  # closed hand meshes: front faces cover the silhouette
    keypoint_weight: float = 1.0
    silhouette_weight: float = 20.0  # against a given target mask
    # against the mask self-rendered from the initial estimate (Eq. 13, when no mask is
    # given): it anchors the surface to the initial estimate, so it stays a light regulariser
    self_silhouette_weight: float = 1.0
    pose_prior_weight: float = 1.0
    skeleton_weight: float = 0.0  # 3D skeleton shape term (when a 3D skeleton is given)
    temporal_weight: float = 0.0  # stay near the initial (previous frame's) parameters
    shape_prior_weight: float = 1.0  # 0.01 let the size wander: 3x the depth error (docs)
    # the observed depth's points (when a depth image is given); 1 -> 10 -> 30 on 9 synthetic
    # RGB-D hands: camera-frame error 23.5 -> 20.6 -> 20.2 mm, PA 16.4 -> 14.8 -> 14.5 mm
    depth_weight: float = 10.0
    optimise_shape: bool = True  # False keeps the initial shape (tracking a known hand) ...
    depth_fits_shape: bool = True  # ... except for hands whose depth is used: it sees the size
    # "size": the depth scales the initial hand about the camera centre (its size came from
    # the prior: a cold start); "distance": it only moves it (a warm start from the previous
    # frame, whose depth change is the hand's motion, not its size)
    depth_placement: str = "size"
    rel_tol: float = 1e-3  # early stop: relative loss change below this ...
    abs_tol: float = 1e-3  # ... or mean change per hand below this (render px^2) ...
    patience: int = 3  # ... for this many consecutive iterations
    # Levenberg-Marquardt
    lm_damping: float = 1e-2  # initial damping (relative to the Gauss-Newton diagonal)
    lm_max_step: float = 0.3  # largest change of any packed parameter in one step
    # Adam (method="adam"): step sizes per parameter group
    lr_pose: float = 0.05  # radians
    lr_shape: float = 0.05  # shape standard deviations
    lr_orient: float = 0.03  # radians
    lr_position: float = 0.005  # normalised image coordinates (x/z, y/z)
    lr_log_depth: float = 0.01  # log metres
    lr_final_factor: float = 1.0  # cosine decay of every step size to this fraction

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.depth_placement not in DEPTH_PLACEMENTS:
            raise ValueError(
                f"depth_placement must be one of {DEPTH_PLACEMENTS}, got {self.depth_placement!r}"
            )
        if self.iterations < 0 or self.render_size < 8 or self.sigma <= 0:
            raise ValueError("need iterations >= 0, render_size >= 8 and sigma > 0")


@dataclass(frozen=True)
class RefineResult:
    """params: refined HandParams (detached); loss_history: (T,) summed batch loss, T =
    iterations + 1 (entry 0 is the initial loss); keypoint_error_px: (B,) weighted mean
    keypoint distance in image pixels at the end; final_loss: (B,); depth: what the depth image
    said (None without one); depth_residual_mm: (B,) median |fitted - observed| surface depth
    over each hand's depth points at the end (nan where unused), or None; depth_size_ratio:
    (B,) the size correction the depth still implies after the fit (``depth.size_ratio``; 1
    where unused), or None."""

    params: HandParams
    loss_history: torch.Tensor
    iterations: int
    keypoint_error_px: torch.Tensor
    final_loss: torch.Tensor
    depth: DepthObservation | None = None
    depth_residual_mm: torch.Tensor | None = None
    depth_size_ratio: torch.Tensor | None = None


def _placed(model, x: torch.Tensor, scale: torch.Tensor, placement: str) -> torch.Tensor:
    """Packed parameters (B,61) of the hands placed by the depth's ``scale`` (B,): distance
    times ``scale``, and with placement "size" the size too (scaled about the camera centre:
    the same image; the packed root is the root joint, which moves along its ray)."""
    x = x.clone()
    if placement == "size":
        x[:, objective._SHAPE] = hand_size_of(model).scaled(x[:, objective._SHAPE],
                                                            scale.to(x.dtype))
    x[:, -1] = x[:, -1] + scale.to(x.dtype).log()
    return x


def _targets(model, x_init, K, keypoints_2d, weights, mask, roi, cfg, skeleton3d):
    """The fit's ``objective.Targets``; x_init: (B,61) the packed initial hands."""
    dtype = x_init.dtype
    k_roi = roi.intrinsics(K.to(dtype))
    target_mask = None
    if _silhouette_weight(cfg, mask) > 0:
        if mask is None:  # Eq. 13: self-rendered from the initial estimate
            with torch.no_grad():
                vertices = objective.evaluate(model, x_init)[0]
                target_mask = rasterize(vertices, model.faces, k_roi, (roi.size, roi.size)).mask
            target_mask = target_mask.to(dtype)
        else:
            target_mask = roi.crop_mask(mask.to(dtype))
    norm = weights / weights.sum(-1, keepdim=True).clamp_min(1e-9)
    return objective.Targets(
        k_roi=k_roi,
        keypoints=roi.to_roi_pixels(keypoints_2d.to(dtype)),
        keypoint_scale=(cfg.keypoint_weight * norm).sqrt(),
        mask=target_mask,
        size=roi.size,
        skeleton_shape=None
        if skeleton3d is None
        else objective.normalised_distances(skeleton3d.to(dtype)),
    )


def _silhouette_weight(cfg: RefineConfig, mask) -> float:
    return cfg.self_silhouette_weight if mask is None else cfg.silhouette_weight


class _Stopper:
    """Early stopping on small relative (or, near zero, absolute) loss change. A first LM step
    that every hand rejected (the loss exactly unchanged: an overshoot, e.g. a fast-moving
    tracked hand) is never calm: with patience 1 it would end the fit at its start."""

    def __init__(self, cfg: RefineConfig, batch: int):
        self.cfg, self.batch, self.calm = cfg, batch, 0

    def __call__(self, history: list[float]) -> bool:
        if len(history) == 2 and history[1] == history[0]:
            return False  # retried with more damping
        change = abs(history[-2] - history[-1])
        relative = change / max(abs(history[-2]), 1e-12)
        small = relative < self.cfg.rel_tol or change / self.batch < self.cfg.abs_tol
        self.calm = self.calm + 1 if small else 0
        return self.calm >= self.cfg.patience


def _free_mask(x: torch.Tensor, cfg: RefineConfig, depth_used) -> torch.Tensor:
    """(B, 61) 1 for optimised parameters, 0 for frozen ones; depth_used: (B,) bool or None."""
    free = torch.ones_like(x)
    shape_free = torch.full_like(x[:, 0], float(cfg.optimise_shape))
    if depth_used is not None and cfg.depth_fits_shape:
        shape_free = torch.maximum(shape_free, depth_used.to(x.dtype))
    free[:, NUM_POSE : NUM_POSE + NUM_SHAPE] = shape_free[:, None]
    return free


def _evaluate(model, skeleton, x, targets, weights, prior, free):
    """At x: the loss (B,), the masked Jacobian (B,R,61) of the residuals and the objective's
    masked gradient (B,61) = 2 J^T r, plus the silhouette term's autograd gradient when
    there is one. One batch: x with its central-difference probes."""
    r, jac = objective.residuals_and_jacobian(skeleton, x, targets, weights, prior,
                                              columns=free.bool().any(0))
    loss = r.square().sum(-1)
    grad = 2.0 * (jac.transpose(1, 2) @ r[..., None])[..., 0]
    silhouette = objective.silhouette_and_gradient(model, x, targets, weights)
    if silhouette is not None:
        loss, grad = loss + silhouette[0], grad + silhouette[1]
    return loss, jac * free[:, None], grad * free


def _lm(model, skeleton, x, targets, weights, prior, cfg: RefineConfig, depth_used):
    """Levenberg-Marquardt. Each trial point is evaluated with its Jacobian in one batch
    (accepted steps, the common case, then need nothing more; a rejected one keeps the
    current point's)."""
    damping = torch.full_like(x[:, :1], cfg.lm_damping)
    free = _free_mask(x, cfg, depth_used)
    loss, jac, grad = _evaluate(model, skeleton, x, targets, weights, prior, free)
    history, stop = [float(loss.sum())], _Stopper(cfg, x.shape[0])
    for _ in range(cfg.iterations):
        hessian = 2.0 * jac.transpose(1, 2) @ jac
        diag = hessian.diagonal(dim1=1, dim2=2)
        eps = 1e-6 * diag.mean(-1, keepdim=True).clamp_min(1e-12)
        system = hessian + torch.diag_embed(damping * (diag + eps) + eps)
        step = -torch.linalg.solve(system, grad[..., None])[..., 0]
        step = step * (cfg.lm_max_step / step.abs().amax(-1, keepdim=True).clamp_min(1e-12)).clamp(
            max=1.0
        )
        trial = x + step
        trial_loss, trial_jac, trial_grad = _evaluate(
            model, skeleton, trial, targets, weights, prior, free
        )
        better = (trial_loss < loss)[:, None]
        x = torch.where(better, trial, x)
        jac = torch.where(better[..., None], trial_jac, jac)
        grad = torch.where(better, trial_grad, grad)
        loss = torch.where(better[:, 0], trial_loss, loss)
        damping = torch.where(better, damping / 3.0, damping * 5.0).clamp(1e-7, 1e7)
        history.append(float(loss.sum()))
        if stop(history):
            break
    return x, loss, history


def _adam(model, skeleton, x0, targets, weights, prior, cfg: RefineConfig, depth_used):
    """Adam on z with x = x0 + rates * z, so a unit Adam step moves each group by its rate."""
    rates = torch.cat(
        [
            torch.full((NUM_POSE,), cfg.lr_pose),
            torch.full((NUM_SHAPE,), cfg.lr_shape),
            torch.full((3,), cfg.lr_orient),
            torch.full((2,), cfg.lr_position),
            torch.full((1,), cfg.lr_log_depth),
        ]
    ).to(x0)
    rates = rates * _free_mask(x0, cfg, depth_used)
    z = torch.zeros_like(x0, requires_grad=True)
    optimiser = torch.optim.Adam([z], lr=1.0)
    history, stop = [], _Stopper(cfg, x0.shape[0])
    with torch.enable_grad():
        for step in range(cfg.iterations + 1):
            loss = objective.total_loss(model, skeleton, x0 + rates * z, targets, weights, prior)
            history.append(float(loss.sum()))
            if step == cfg.iterations or (step > 0 and stop(history)):
                break
            optimiser.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimiser.step()
            progress = (step + 1) / max(cfg.iterations, 1)
            cosine = 0.5 * (1 + math.cos(math.pi * progress))
            optimiser.param_groups[0]["lr"] = (
                cfg.lr_final_factor + (1 - cfg.lr_final_factor) * cosine
            )
    return (x0 + rates * z).detach(), loss.detach(), history


def refine(
    model,
    init: HandParams,
    K: torch.Tensor,
    keypoints_2d: torch.Tensor,
    *,
    keypoint_weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    prior=None,
    config: RefineConfig | None = None,
    roi: HandRoi | None = None,
    skeleton3d: torch.Tensor | None = None,
    depth: torch.Tensor | None = None,
    keypoint_skeleton: KeypointSkeleton | None = None,
) -> RefineResult:
    """Refine ``init`` against 2D keypoints and a silhouette (Eq. 13).

    model: HandModel; init: HandParams (B) in the camera frame; K: (3,3) or (B,3,3) pixels;
    keypoints_2d: (B,21,2) image pixels; keypoint_weights: (B,21) >= 0 (confidences, 0 =
    missing); mask: (B,H,W) target mask in [0,1] over the full image, or None for the mask
    self-rendered from ``init``; prior: a PosePrior or None; roi: the hand region to render
    (default: around the weighted keypoints); skeleton3d: (B,21,3) a 3D skeleton in any
    frame and scale (e.g. mediapipe's world landmarks) whose articulation is matched with
    ``skeleton_weight``; depth: (B,H,W) metres (0, NaN or inf = no data) aligned to the
    image the keypoints are in (``depth.as_depth_tensor``): places and sizes each hand, then
    adds the depth term with ``depth_weight``; keypoint_skeleton: ``model``'s
    ``KeypointSkeleton`` when the caller keeps one (a video pipeline: made once, not per
    frame; built here when None). Works under ``torch.no_grad`` (gradients are enabled
    inside), not under ``torch.inference_mode``.
    """
    cfg = config or RefineConfig()
    weights = keypoint_weights
    if weights is None:
        weights = torch.ones_like(keypoints_2d[..., 0])
    weights = weights.to(init.pose.dtype)
    roi = roi or hand_roi(keypoints_2d, cfg.render_size, weights)
    observation = None
    x0 = objective.pack(model, init)
    if depth is not None and cfg.depth_weight > 0:
        with torch.no_grad():
            vertices = objective.evaluate(model, x0)[0]
        observation = observe_depth(model, vertices, K, roi, depth)
        x0 = _placed(model, x0, observation.scale, cfg.depth_placement)
    targets = _targets(model, x0, K, keypoints_2d, weights, mask, roi, cfg, skeleton3d)
    if observation is not None:
        targets = replace(targets, depth=observation.targets)
    loss_weights = objective.Weights(
        pose_prior=cfg.pose_prior_weight,
        shape_prior=cfg.shape_prior_weight,
        silhouette=_silhouette_weight(cfg, mask),
        sigma=cfg.sigma,
        cull_backfaces=cfg.cull_backfaces,
        skeleton=cfg.skeleton_weight,
        temporal=cfg.temporal_weight,
        depth=cfg.depth_weight if observation is not None else 0.0,
    )
    if cfg.temporal_weight > 0:
        targets = replace(targets, anchor=x0)
    run = _lm if cfg.method == "lm" else _adam
    skeleton = keypoint_skeleton if keypoint_skeleton is not None else KeypointSkeleton(model)
    depth_used = None if observation is None else observation.used
    x, final_loss, history = run(model, skeleton, x0, targets, loss_weights, prior, cfg,
                                 depth_used)
    params = objective.unpack(model, x)
    with torch.no_grad():
        vertices, keypoints, _ = objective.evaluate(model, x)
        distance = (project(keypoints, K.to(x.dtype)) - keypoints_2d).norm(dim=-1)
        kp_err = (weights * distance).sum(-1) / weights.sum(-1).clamp_min(1e-9)
        depth_residual = depth_size = None
        if observation is not None:  # the depth points of the fitted mesh
            ids = observation.targets.vertex_ids
            points = torch.gather(vertices, 1, ids[..., None].expand(-1, -1, 3))
            depth_residual = residual_mm(points, observation.targets)
            depth_size = size_ratio(points, observation.targets)
    return RefineResult(
        params=params,
        loss_history=torch.tensor(history, dtype=torch.float64),
        iterations=len(history) - 1,
        keypoint_error_px=kp_err,
        final_loss=final_loss,
        depth=observation,
        depth_residual_mm=depth_residual,
        depth_size_ratio=depth_size,
    )
