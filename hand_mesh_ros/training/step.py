"""One forward pass and loss of the stratified schedule (DHPE Sec. 3.1 and 3.3).

Stage 1 trains the 2D evidence estimator alone: backbone + CPM with the feature loss (Eq. 2)
and the heat-map loss (Eq. 3); the mesh estimator is not run. Stage 2 trains everything with
the full loss (Eq. 7, ``DHPELoss``), the shape term switched per sample by Eq. 12 (or
constant, the ablation).

Both stages use the network's own forward pieces (``DHPE.image_evidence``, ``DHPE.forward``,
``DHPE.extract_feature``) on the batch's RGB images in [0, 1]; mixed precision (``autocast``,
CUDA) covers the image networks only (see ``nets/dhpe.py``). A ``TrainBatch`` carries the
fields ``DHPELoss`` reads, so it is passed to the loss as the targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hand_mesh_ros.nets.dhpe import DHPE, DHPEOutput
from hand_mesh_ros.nets.heatmaps import gaussian_heatmaps
from hand_mesh_ros.training.batches import TrainBatch
from hand_mesh_ros.training.losses import DHPELoss, feature_loss, heatmap_loss

LOGGED_TERMS = ("feature", "heatmap", "refiner", "articulation", "silhouette", "laplacian")


@dataclass(frozen=True)
class StepLoss:
    """total: the scalar to minimise; terms: unweighted batch means (floats, for logs);
    shape_active: fraction of samples whose shape term is on (Eq. 12); output: the forward
    pass (None in stage 1)."""

    total: torch.Tensor
    terms: dict[str, float]
    shape_active: float
    output: DHPEOutput | None


def masked_feature(net: DHPE, batch: TrainBatch, *, autocast: bool) -> torch.Tensor:
    """F(x * m) of Eq. 2: the pooled feature of the image times its ground-truth mask."""
    return net.extract_feature(batch.image * batch.mask[:, None], autocast=autocast)


def stage1_loss(net: DHPE, loss: DHPELoss, batch: TrainBatch, *, autocast: bool) -> StepLoss:
    """Eqs. 2 + 3 (weights from ``loss.config``); the mesh estimator is not run."""
    cfg = loss.config
    feature, stages = net.image_evidence(batch.image, autocast=autocast)
    target = gaussian_heatmaps(
        batch.keypoints_2d,
        heatmap_size=stages[-1].shape[-1],
        crop_size=batch.crop_size,
        sigma=cfg.heatmap_sigma,
    )
    heat = heatmap_loss(stages, target, batch.visibility)
    feat = torch.zeros_like(heat)
    if cfg.feature > 0:
        feat = feature_loss(feature, masked_feature(net, batch, autocast=autocast))
        feat = torch.where(batch.has_mask, feat, 0.0)
    total = (cfg.heatmap * heat + cfg.feature * feat).mean()
    terms = dict.fromkeys(LOGGED_TERMS, 0.0)
    terms.update(feature=float(feat.detach().mean()), heatmap=float(heat.detach().mean()))
    return StepLoss(total, terms, 0.0, None)


def stage2_loss(net: DHPE, loss: DHPELoss, batch: TrainBatch, *, autocast: bool) -> StepLoss:
    """Eq. 7 (``DHPELoss``) on the full forward pass."""
    output = net(batch.image, autocast=autocast)
    masked = None
    if loss.config.feature > 0:
        masked = masked_feature(net, batch, autocast=autocast)
    result = loss(output, batch, masked)
    terms = {name: float(getattr(result, name).detach()) for name in LOGGED_TERMS}
    active = float((result.silhouette_weights > 0).float().mean())
    return StepLoss(result.total, terms, active, output)
