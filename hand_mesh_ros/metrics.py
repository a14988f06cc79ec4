"""Evaluation metrics: keypoint errors, Procrustes alignment, mask overlap, PCK/AUC.

All functions take torch tensors; 3D inputs are (B,K,3) in any consistent unit (the caller
converts metres to millimetres for reporting).
"""

from __future__ import annotations

import torch


def procrustes_align(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Similarity transform (scale, rotation, translation) of source (B,K,3) that best matches
    target (B,K,3) in least squares (Umeyama 1991); returns the aligned source (B,K,3)."""
    mu_s, mu_t = source.mean(1, keepdim=True), target.mean(1, keepdim=True)
    xs, xt = source - mu_s, target - mu_t
    cov = xt.transpose(1, 2) @ xs  # (B,3,3)
    u, sing, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(u @ vh))
    fix = torch.ones_like(sing)
    fix[:, -1] = d
    rot = u @ torch.diag_embed(fix) @ vh
    var_s = (xs**2).sum((1, 2))
    scale = (sing * fix).sum(-1) / var_s.clamp_min(1e-12)
    return scale[:, None, None] * (xs @ rot.transpose(1, 2)) + mu_t


def mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) mean per-joint Euclidean error."""
    return (pred - target).norm(dim=-1).mean(-1)


def pa_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) mean per-joint error after Procrustes (similarity) alignment of pred to target."""
    return mpjpe(procrustes_align(pred, target), target)


def root_relative_mpjpe(pred: torch.Tensor, target: torch.Tensor, root: int = 0) -> torch.Tensor:
    """(B,) mean per-joint error after subtracting each skeleton's root joint."""
    return mpjpe(pred - pred[:, root : root + 1], target - target[:, root : root + 1])


def mask_iou(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """(B,) intersection over union of binarised masks (B,H,W); 1.0 when both are empty."""
    p, t = pred > threshold, target > threshold
    inter = (p & t).sum((1, 2)).double()
    union = (p | t).sum((1, 2)).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def pck_curve(errors: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Fraction of errors (any shape) at or below each threshold -> (T,)."""
    flat = errors.reshape(-1, 1)
    return (flat <= thresholds.reshape(1, -1)).double().mean(0)


def auc(errors: torch.Tensor, low: float, high: float, steps: int = 100) -> float:
    """Normalised area under the PCK curve between two thresholds (trapezoidal rule)."""
    thresholds = torch.linspace(low, high, steps, dtype=torch.float64)
    curve = pck_curve(errors.double(), thresholds)
    return float(torch.trapezoid(curve, thresholds) / (high - low))
