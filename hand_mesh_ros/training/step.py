"""One forward pass and loss of the stratified schedule (DHPE Sec. 3.1 and 3.3).

Stage 1 trains the 2D evidence estimator alone: backbone + CPM with the feature loss (Eq. 2)
and the heat-map loss (Eq. 3); the mesh estimator is not run. Stage 2 trains everything with
the full loss (Eq. 7, ``DHPELoss``), the shape term switched per sample by Eq. 12 (or
constant, the ablation).

Mixed precision: with ``autocast`` (CUDA) only the image networks (backbone, CPM) run in
float16; the mesh estimator, hand model, renderer and losses stay in float32 (linear blend
skinning and the soft rasterizer lose too much in half precision). ``dhpe_forward`` renders
only the final iteration's silhouette, which is all the loss uses.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch

from hand_mesh_ros.nets.dhpe import DHPE, DHPEIteration, DHPEOutput, ProjectionOperator
from hand_mesh_ros.nets.heatmaps import gaussian_heatmaps
from hand_mesh_ros.nets.resnet import normalize_image
from hand_mesh_ros.training.batches import TrainBatch
from hand_mesh_ros.training.losses import DHPELoss, DHPETargets, feature_loss, heatmap_loss

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


def _autocast(enabled: bool, device: torch.device):
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


def image_features(net: DHPE, image: torch.Tensor, *, autocast: bool):
    """Backbone + CPM on an RGB batch in [0, 1]: (pooled feature (B, D) float32, heat-map
    stages, each (B, 21, M, M) float32)."""
    with _autocast(autocast, image.device):
        features = net.backbone.forward_features(normalize_image(image))
        stages = net.cpm(features.c3).stages
    return features.pooled.float(), tuple(h.float() for h in stages)


def masked_feature(net: DHPE, batch: TrainBatch, *, autocast: bool) -> torch.Tensor:
    """F(x * m) of Eq. 2: the pooled feature of the image times its ground-truth mask."""
    with _autocast(autocast, batch.image.device):
        masked = normalize_image(batch.image * batch.mask[:, None])
        return net.extract_feature(masked).float()


def dhpe_forward(
    net: DHPE, image: torch.Tensor, *, autocast: bool = False, silhouette: bool = True
) -> DHPEOutput:
    """``DHPE.forward`` on an RGB batch in [0, 1], the image networks optionally in fp16.

    Only the final iteration's silhouette is rendered (the only one a loss uses; the soft
    rasterizer is the most expensive part of the mesh estimator), none with ``silhouette``
    False; the other outputs equal ``DHPE.forward``'s.
    """
    feature, stages = image_features(net, image, autocast=autocast)
    joints2d = net.keypoints_from_heatmaps(stages[-1])
    skeleton_only = ProjectionOperator(net.hand_model, replace(net.config, silhouette_size=None))
    mesh_feature = feature if net.config.use_feature else None
    iterations = list(net.estimate_mesh(mesh_feature, joints2d, projection=skeleton_only))
    if silhouette and net.config.silhouette_size is not None:
        iterations[-1] = replace(iterations[-1], silhouette=render_final(net, iterations[-1]))
    return DHPEOutput(stages, joints2d, feature, tuple(iterations))


def render_final(net: DHPE, iteration: DHPEIteration) -> torch.Tensor:
    """(B, S, S) soft silhouette of an iteration's mesh, as the DHPE's projection operator
    renders it (crop camera at ``silhouette_size``)."""
    return net.projection.silhouette(iteration.vertices)


def targets_of(batch: TrainBatch) -> DHPETargets:
    return DHPETargets(
        keypoints2d=batch.keypoints_2d,
        keypoints3d=batch.keypoints_3d,
        mask=batch.mask,
        visibility=batch.visibility,
        intrinsics=batch.K,
        has_3d=batch.has_3d,
        has_mask=batch.has_mask,
    )


def stage1_loss(net: DHPE, loss: DHPELoss, batch: TrainBatch, *, autocast: bool) -> StepLoss:
    """Eqs. 2 + 3 (weights from ``loss.config``); the mesh estimator is not run."""
    cfg = loss.config
    feature, stages = image_features(net, batch.image, autocast=autocast)
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
    output = dhpe_forward(net, batch.image, autocast=autocast)
    masked = None
    if loss.config.feature > 0:
        masked = masked_feature(net, batch, autocast=autocast)
    result = loss(output, targets_of(batch), masked)
    terms = {name: float(getattr(result, name).detach()) for name in LOGGED_TERMS}
    active = float((result.silhouette_weights > 0).float().mean())
    return StepLoss(result.total, terms, active, output)
