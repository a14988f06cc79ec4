"""Metrics of ``hand-mesh evaluate-model``: 3D joint errors under the paper's alignment and
root-relative, PCK curves and AUC, and mask overlap.

3D errors need the predicted skeleton in metres in the ground truth's camera. The DHPE
predicts it in its virtual crop camera, whose metric depth is arbitrary (the crop camera's
scale and depth trade off); the protocols below remove that ambiguity from the ground truth,
as the paper's test-time inverse normalisation does (Sec. 3.3, Eq. 8):

* ``aligned`` (the paper's protocol, the one the PCK/AUC use): the prediction is normalised
  with Eq. 8 (centred on its middle MCP, x/y in its own box units, z relative to its MCP
  depth) and denormalised with the ground truth's frame (MCP pixel, MCP depth, box size g and
  focal length): 2D position, scale and the MCP depth come from the ground truth, the
  articulation and relative depths from the prediction.
* ``root_relative``: wrist-relative skeletons, the prediction scaled so that its summed bone
  length equals the ground truth's (the common RHD/STB protocol up to the bone used).
* ``pa``: after a Procrustes similarity alignment (PA-MPJPE).

Errors are per keypoint in millimetres, (N, 21).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hand_mesh_ros.metrics import auc, pck_curve, procrustes_align
from hand_mesh_ros.topology import NUM_KEYPOINTS, WRIST_KEYPOINT
from hand_mesh_ros.training.losses import denormalise_skeleton, normalise_skeleton, skeleton_frame

MM_PER_M = 1000.0
PAPER_AUC_RANGE = (20.0, 50.0)  # mm, the paper's PCK range for RHD/STB
FULL_AUC_RANGE = (0.0, 50.0)  # mm
PCK_STEPS = 51  # thresholds of the reported curves: 0, 1, ..., 50 mm


def bone_parents() -> tuple[int, ...]:
    """Parent keypoint of each keypoint in the core order (wrist: itself): every finger is a
    chain wrist -> base -> ... -> tip of four keypoints."""
    parents = [WRIST_KEYPOINT]
    for finger in range(5):
        base = 1 + 4 * finger
        parents += [WRIST_KEYPOINT, base, base + 1, base + 2]
    return tuple(parents)


def total_bone_length(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, 21, 3) -> (B,) summed length of the 20 bones."""
    parents = torch.tensor(bone_parents(), device=keypoints.device)
    return (keypoints - keypoints[:, parents]).norm(dim=-1).sum(dim=1)


def aligned_prediction(
    pred: torch.Tensor, pred_K: torch.Tensor, target: torch.Tensor, target_K: torch.Tensor
) -> torch.Tensor:
    """The paper's inverse normalisation: pred (B, 21, 3) metres in the camera of pred_K ->
    (B, 21, 3) metres in the camera of target_K, with the ground truth's Eq. 8 frame."""
    normalised = normalise_skeleton(pred, pred_K)
    return denormalise_skeleton(normalised, skeleton_frame(target, target_K), target_K)


def root_relative_prediction(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Wrist-relative, scaled to the target's summed bone length, wrist on the target's."""
    scale = total_bone_length(target) / total_bone_length(pred).clamp_min(1e-9)
    relative = (pred - pred[:, WRIST_KEYPOINT : WRIST_KEYPOINT + 1]) * scale[:, None, None]
    return relative + target[:, WRIST_KEYPOINT : WRIST_KEYPOINT + 1]


def joint_errors_mm(
    pred: torch.Tensor, pred_K: torch.Tensor, target: torch.Tensor, target_K: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-keypoint errors (B, 21) in mm under each protocol of the module docstring."""
    pred, target = pred.double(), target.double()
    pred_K, target_K = pred_K.double(), target_K.double()
    candidates = {
        "aligned": aligned_prediction(pred, pred_K, target, target_K),
        "root_relative": root_relative_prediction(pred, target),
        "pa": procrustes_align(pred, target),
    }
    return {name: (value - target).norm(dim=-1) * MM_PER_M for name, value in candidates.items()}


@dataclass(frozen=True)
class ErrorSummary:
    """mean / median of all keypoint errors (mm), AUC over the paper's 20-50 mm and over
    0-50 mm, and the PCK curve (thresholds mm, fractions)."""

    mean_mm: float
    median_mm: float
    auc_20_50: float
    auc_0_50: float
    pck_thresholds_mm: tuple[float, ...]
    pck: tuple[float, ...]

    def to_dict(self) -> dict:
        return {
            "mean_mm": self.mean_mm,
            "median_mm": self.median_mm,
            "auc_20_50": self.auc_20_50,
            "auc_0_50": self.auc_0_50,
            "pck_thresholds_mm": list(self.pck_thresholds_mm),
            "pck": list(self.pck),
        }


def summarise_errors(errors: torch.Tensor, visibility: torch.Tensor | None = None):
    """ErrorSummary of per-keypoint errors (N, 21) mm; visibility (N, 21) selects the
    keypoints that count (None: all)."""
    if errors.dim() != 2 or errors.shape[1] != NUM_KEYPOINTS:
        raise ValueError(f"errors must be (N, 21), got {tuple(errors.shape)}")
    values = errors.double()
    if visibility is not None:
        values = values[visibility > 0]
    values = values.reshape(-1)
    if values.numel() == 0:
        raise ValueError("no keypoint errors to summarise")
    low, high = FULL_AUC_RANGE
    thresholds = torch.linspace(low, high, PCK_STEPS, dtype=torch.float64)
    return ErrorSummary(
        mean_mm=float(values.mean()),
        median_mm=float(values.median()),
        auc_20_50=auc(values, *PAPER_AUC_RANGE),
        auc_0_50=auc(values, *FULL_AUC_RANGE),
        pck_thresholds_mm=tuple(float(t) for t in thresholds),
        pck=tuple(float(p) for p in pck_curve(values, thresholds)),
    )


def mask_scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample IoU, precision and recall of binary masks (B, H, W) (> 0.5 is foreground).
    Empty prediction: precision 1 if the target is empty too, else 0 (likewise recall)."""
    p, t = pred > 0.5, target > 0.5
    inter = (p & t).sum(dim=(1, 2)).double()
    p_sum, t_sum = p.sum(dim=(1, 2)).double(), t.sum(dim=(1, 2)).double()
    union = (p | t).sum(dim=(1, 2)).double()
    both_empty = (p_sum == 0) & (t_sum == 0)
    one = torch.ones_like(inter)
    return {
        "iou": torch.where(union > 0, inter / union.clamp_min(1), one),
        "precision": torch.where(p_sum > 0, inter / p_sum.clamp_min(1), both_empty.double()),
        "recall": torch.where(t_sum > 0, inter / t_sum.clamp_min(1), both_empty.double()),
    }
