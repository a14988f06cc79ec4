"""Evaluate a trained DHPE checkpoint on hand crops: 3D joint errors, PCK/AUC, 2D errors,
mask overlap, with or without the test-time refinement (Eq. 13).

Per batch (``TrainBatch`` at the checkpoint's crop size S): the network's final estimate
(theta, its 3D skeleton in the virtual crop camera ``crop_intrinsics(S)``), optionally refined
by ``fitting.refine`` against the 2D pose refiner's final joints and the silhouette rendered
from the initial estimate (the paper's Eq. 13, which uses no ground truth); then the metrics
of ``eval_metrics`` against the ground truth (its 3D skeleton in the camera of the crop's K,
its mask over the crop). The predicted mask is the hard render of the (refined) mesh at S px.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from hand_mesh_ros.camera import crop_intrinsics, project
from hand_mesh_ros.fitting import RefineConfig, refine
from hand_mesh_ros.hand_params import crop_params_to_hand_params
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.nets.dhpe import DHPE
from hand_mesh_ros.render import rasterize
from hand_mesh_ros.training.batches import TrainBatch
from hand_mesh_ros.training.checkpoint import load_checkpoint
from hand_mesh_ros.training.config import config_from_mapping
from hand_mesh_ros.training.eval_metrics import (
    joint_errors_mm,
    mask_scores,
    summarise_errors,
)
from hand_mesh_ros.training.trainer import build_model

PROTOCOLS = ("aligned", "root_relative", "pa")


def load_trained_model(path, device: torch.device | str = "cpu") -> tuple[DHPE, object]:
    """(DHPE in eval mode, its TrainConfig) from a ``hand-mesh train`` checkpoint."""
    state = load_checkpoint(path)
    cfg = config_from_mapping(state["config"], source=str(path))
    model = build_model(cfg, torch.device(device))
    model.load_state_dict(state["model"])
    return model.eval(), cfg


@dataclass(frozen=True)
class ModelOutputs:
    """The DHPE's (optionally refined) outputs for a batch of B crops of S px.

    keypoints_3d (B, 21, 3) metres in the crop camera K (3, 3); keypoints_2d (B, 21, 2) crop
    px (projection of keypoints_3d); heatmap_joints (B, 21, 2) the CPM's 2D joints; mask
    (B, S, S) bool hard render of the mesh."""

    keypoints_3d: torch.Tensor
    keypoints_2d: torch.Tensor
    heatmap_joints: torch.Tensor
    mask: torch.Tensor
    K: torch.Tensor


def predict(
    model: DHPE, image: torch.Tensor, *, refine_iterations: int = 0, prior=None
) -> ModelOutputs:
    """image (B, 3, S, S) RGB in [0, 1] -> ModelOutputs; refine_iterations > 0 applies Eq. 13."""
    size = model.config.crop_size
    hand_model = model.hand_model
    with torch.no_grad():
        output = model(image, silhouette=False)
    final = output.final
    K = crop_intrinsics(size, dtype=final.params.dtype, device=final.params.device)
    vertices, keypoints_3d = final.vertices, final.keypoints_3d
    if refine_iterations > 0:
        init = crop_params_to_hand_params(final.params, hand_model, size)
        result = refine(
            hand_model,
            init,
            K,
            final.refined_keypoints_2d,
            prior=prior or PosePrior.from_model(hand_model).to(final.params.device),
            config=RefineConfig(iterations=refine_iterations),
        )
        with torch.no_grad():
            hand = hand_model(**result.params.as_kwargs())
        vertices, keypoints_3d = hand.vertices, hand.keypoints
    with torch.no_grad():
        mask = rasterize(vertices, hand_model.faces, K, (size, size)).mask
    return ModelOutputs(keypoints_3d, project(keypoints_3d, K), output.keypoints_2d, mask, K)


@dataclass(frozen=True)
class EvaluationResult:
    """Per-sample values of a whole evaluation set (N samples; N3 with 3D; Nm with masks).

    errors: protocol -> (N3, 21) mm; visibility (N3, 21); heatmap_px / skeleton_px: (N,)
    mean 2D errors (crop px, visible keypoints) of the CPM joints and of the projected 3D
    skeleton; masks: name -> (Nm,) IoU, precision, recall.
    """

    errors: dict[str, torch.Tensor]
    visibility: torch.Tensor
    heatmap_px: torch.Tensor
    skeleton_px: torch.Tensor
    masks: dict[str, torch.Tensor]
    crop_size: int

    def summary(self) -> dict:
        out = {
            "samples": int(self.heatmap_px.shape[0]),
            "samples_3d": int(self.visibility.shape[0]),
            "samples_mask": int(next(iter(self.masks.values())).shape[0]) if self.masks else 0,
            "crop_size": self.crop_size,
            "heatmap_2d_error_px": float(self.heatmap_px.mean())
            if self.heatmap_px.numel()
            else None,
            "skeleton_2d_error_px": float(self.skeleton_px.mean())
            if self.skeleton_px.numel()
            else None,
        }
        for name, errors in self.errors.items():
            if errors.numel():
                out[name] = summarise_errors(errors, self.visibility).to_dict()
        for name, values in self.masks.items():
            out[f"mask_{name}"] = float(values.mean()) if values.numel() else None
        return out


def _pixel_errors(points: torch.Tensor, batch: TrainBatch) -> torch.Tensor:
    error = (points.float().cpu() - batch.keypoints_2d.cpu()).norm(dim=-1)
    return torch.where(batch.visibility.cpu() > 0, error, torch.nan)


def evaluate_batches(
    model: DHPE, batches: Iterable[TrainBatch], *, refine_iterations: int = 0, progress=None
) -> EvaluationResult:
    """Run ``predict`` over the batches (moved to the model's device) and collect errors."""
    device = next(model.parameters()).device
    prior = PosePrior.from_model(model.hand_model).to(device) if refine_iterations else None
    errors = {name: [] for name in PROTOCOLS}
    vis, heat, skel, masks = [], [], [], {"iou": [], "precision": [], "recall": []}
    for i, batch in enumerate(batches):
        batch = batch.to(device)
        pred = predict(model, batch.image, refine_iterations=refine_iterations, prior=prior)
        heat.append(_pixel_errors(pred.heatmap_joints, batch))
        skel.append(_pixel_errors(pred.keypoints_2d, batch))
        has_3d = batch.has_3d
        if has_3d.any():
            per = joint_errors_mm(
                pred.keypoints_3d[has_3d], pred.K, batch.keypoints_3d[has_3d], batch.K[has_3d]
            )
            for name in PROTOCOLS:
                errors[name].append(per[name].cpu())
            vis.append(batch.visibility[has_3d].cpu())
        if batch.has_mask.any():
            scores = mask_scores(pred.mask[batch.has_mask], batch.mask[batch.has_mask])
            for name, value in scores.items():
                masks[name].append(value.cpu())
        if progress is not None:
            progress(i + 1)
    cat = _cat_or_empty
    return EvaluationResult(
        errors={name: cat(values, (0, 21)) for name, values in errors.items()},
        visibility=cat(vis, (0, 21)),
        heatmap_px=_nan_mean_rows(cat(heat, (0, 21))),
        skeleton_px=_nan_mean_rows(cat(skel, (0, 21))),
        masks={name: cat(values, (0,)) for name, values in masks.items()},
        crop_size=model.config.crop_size,
    )


def _cat_or_empty(values: list[torch.Tensor], empty_shape: tuple[int, ...]) -> torch.Tensor:
    return torch.cat(values) if values else torch.zeros(empty_shape)


def _nan_mean_rows(errors: torch.Tensor) -> torch.Tensor:
    """(N, 21) with NaN for invisible keypoints -> (N,) mean over the visible ones (rows
    without any are dropped)."""
    valid = ~torch.isnan(errors)
    means = torch.where(valid, errors, 0.0).sum(1) / valid.sum(1).clamp_min(1)
    return means[valid.any(1)]
