"""Test-time refinement, DHPE Eq. 13: gradient steps on the hand parameters.

The loss compares the hand with 2D evidence only -- what exists at test time:
  * keypoints: squared distance between projected model keypoints and the (refined) 2D
    joints, in render pixels of the hand's region (so it does not depend on image size);
  * silhouette: mean squared difference between the soft silhouette of the hand and a target
    mask over the hand's region -- a given mask, or (Eq. 13) the hard mask rendered from the
    initial estimate ("self-rendered"), which keeps the surface from drifting;
  * pose prior: squared violation of anatomical joint limits (radians^2);
  * shape prior: squared shape coefficients (standard deviations^2).
Initial parameters come from the caller, so a video tracker can warm-start each frame from the
last one. Adam is used, with one step size per parameter group (radians, shape sigmas, and a
root position reparameterised as (x/z, y/z, log z) so that image-plane and depth moves are
similarly scaled). Stops early when the loss changes by less than ``rel_tol`` (relative) for
``patience`` consecutive iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hand_mesh_ros.camera import project
from hand_mesh_ros.fitting.roi import HandRoi, hand_roi
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.render import rasterize, render_silhouette


@dataclass(frozen=True, kw_only=True)
class RefineConfig:
    iterations: int = 50  # the paper's fixed count
    render_size: int = 64  # pixels, side of the square silhouette render of the hand region
    sigma: float | None = None  # soft edge of the silhouette; None = the renderer's default
    keypoint_weight: float = 1.0
    silhouette_weight: float = 2.0
    pose_prior_weight: float = 1.0
    shape_prior_weight: float = 0.01
    lr_pose: float = 0.05  # radians per step (Adam)
    lr_shape: float = 0.05  # shape standard deviations per step
    lr_orient: float = 0.03  # radians per step
    lr_position: float = 0.005  # normalised image coordinates (x/z, y/z) per step
    lr_log_depth: float = 0.01  # log metres per step
    rel_tol: float = 1e-3  # early stop: relative loss change below this ...
    patience: int = 3  # ... for this many consecutive iterations
    min_iterations: int = 1
    optimise_shape: bool = True


@dataclass(frozen=True)
class RefineResult:
    """params: refined HandParams (detached); loss_history: (T,) summed batch loss per step,
    T = iterations run + 1 (the first entry is the initial loss); keypoint_error_px: (B,)
    mean keypoint distance in image pixels at the end; final_loss: (B,)."""

    params: HandParams
    loss_history: torch.Tensor
    iterations: int
    keypoint_error_px: torch.Tensor
    final_loss: torch.Tensor


class _Variables(torch.nn.Module):
    """The optimised tensors; the root position is (x/z, y/z, log z)."""

    def __init__(self, init: HandParams, root: torch.Tensor):
        super().__init__()
        position = root + init.transl  # camera-frame root joint (B,3)
        depth = position[:, 2:3].clamp_min(1e-3)
        self.pose = torch.nn.Parameter(init.pose.detach().clone())
        self.shape = torch.nn.Parameter(init.shape.detach().clone())
        self.orient = torch.nn.Parameter(init.global_orient.detach().clone())
        self.xy = torch.nn.Parameter((position[:, :2] / depth).detach().clone())
        self.log_depth = torch.nn.Parameter(depth.log().detach().clone())

    def root_position(self) -> torch.Tensor:
        depth = self.log_depth.exp()
        return torch.cat((self.xy * depth, depth), dim=-1)


def _evaluate(model, v: _Variables):
    """Model output in the camera frame; returns (output, transl)."""
    local = model(pose=v.pose, shape=v.shape, global_orient=v.orient)
    root = local.joints[:, 0]
    shift = (v.root_position() - root)[:, None, :]
    return local, shift


def _self_rendered_mask(model, init: HandParams, faces, k_roi, size) -> torch.Tensor:
    with torch.no_grad():
        out = model(**init.as_kwargs())
        return rasterize(out.vertices, faces, k_roi, image_size=(size, size)).mask.to(
            out.vertices.dtype
        )


def refine(
    model,
    init: HandParams,
    K: torch.Tensor,
    keypoints2d: torch.Tensor,
    *,
    keypoint_weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    prior=None,
    config: RefineConfig | None = None,
    roi: HandRoi | None = None,
) -> RefineResult:
    """Refine ``init`` against 2D keypoints and a silhouette (Eq. 13).

    model: HandModel; init: HandParams (B) in the camera frame; K: (3,3) or (B,3,3) pixels;
    keypoints2d: (B,21,2) image pixels; keypoint_weights: (B,21) >= 0 (confidences, 0 =
    missing); mask: (B,H,W) target mask in [0,1] over the full image, or None for the mask
    self-rendered from ``init``; prior: a PosePrior (``penalty(pose) -> (B,)``) or None.
    roi: the hand region to render; default: around the weighted keypoints.
    Runs with gradients even if called under ``torch.no_grad``; not under inference_mode.
    """
    cfg = config or RefineConfig()
    dtype = init.pose.dtype
    weights = torch.ones_like(keypoints2d[..., 0]) if keypoint_weights is None else keypoint_weights
    roi = roi or hand_roi(keypoints2d, cfg.render_size, weights)
    k_roi = roi.intrinsics(K.to(dtype))
    faces = model.faces
    if cfg.silhouette_weight > 0:
        if mask is None:
            target_mask = _self_rendered_mask(model, init, faces, k_roi, roi.size)
        else:
            target_mask = roi.crop_mask(mask.to(dtype))
    target_kp = roi.to_roi_pixels(keypoints2d.to(dtype))
    weight_sum = weights.sum(-1).clamp_min(1e-6)

    with torch.enable_grad():
        with torch.no_grad():
            root0 = model(pose=init.pose, shape=init.shape).joints[:, 0]
        v = _Variables(init, root0)
        groups = [
            {"params": [v.pose], "lr": cfg.lr_pose},
            {"params": [v.shape], "lr": cfg.lr_shape if cfg.optimise_shape else 0.0},
            {"params": [v.orient], "lr": cfg.lr_orient},
            {"params": [v.xy], "lr": cfg.lr_position},
            {"params": [v.log_depth], "lr": cfg.lr_log_depth},
        ]
        optimiser = torch.optim.Adam(groups)

        def losses() -> torch.Tensor:
            local, shift = _evaluate(model, v)
            keypoints = local.keypoints + shift
            proj = project(keypoints, k_roi)
            per_kp = ((proj - target_kp) ** 2).sum(-1)
            total = cfg.keypoint_weight * (weights * per_kp).sum(-1) / weight_sum
            if cfg.silhouette_weight > 0:
                vertices = local.vertices + shift
                kwargs = {} if cfg.sigma is None else {"sigma": cfg.sigma}
                sil = render_silhouette(vertices, faces, k_roi, (roi.size, roi.size), **kwargs)
                total = total + cfg.silhouette_weight * ((sil - target_mask) ** 2).mean((1, 2))
            if prior is not None and cfg.pose_prior_weight > 0:
                total = total + cfg.pose_prior_weight * prior.penalty(v.pose)
            total = total + cfg.shape_prior_weight * (v.shape**2).mean(-1)
            return total

        history = []
        calm = 0
        iterations = 0
        for step in range(cfg.iterations + 1):
            optimiser.zero_grad(set_to_none=True)
            per_sample = losses()
            loss = per_sample.sum()
            history.append(float(loss.detach()))
            if step == cfg.iterations:
                break
            if step >= 1:
                change = abs(history[-2] - history[-1]) / max(abs(history[-2]), 1e-12)
                calm = calm + 1 if change < cfg.rel_tol else 0
                if calm >= cfg.patience and step >= cfg.min_iterations:
                    break
            loss.backward()
            optimiser.step()
            iterations += 1

    with torch.no_grad():
        local, shift = _evaluate(model, v)
        transl = (v.root_position() - local.joints[:, 0]).detach()
        params = HandParams(
            v.pose.detach().clone(), v.shape.detach().clone(), v.orient.detach().clone(), transl
        )
        proj = project(local.keypoints + shift, K.to(dtype))
        kp_err = (proj - keypoints2d).norm(dim=-1)
        kp_err = (weights * kp_err).sum(-1) / weight_sum
    return RefineResult(
        params=params,
        loss_history=torch.tensor(history, dtype=torch.float64),
        iterations=iterations,
        keypoint_error_px=kp_err,
        final_loss=per_sample.detach(),
    )
