"""Training-only code for DHPE: the paper's losses (kept out of the inference model)."""

from __future__ import annotations

from hand_mesh_ros.training.losses import (
    DHPELoss,
    DHPETargets,
    LossConfig,
    LossTerms,
    SkeletonFrame,
    articulation_loss,
    denormalise_skeleton,
    feature_loss,
    heatmap_loss,
    laplacian_loss,
    mesh_edges,
    normalise_skeleton,
    refiner_loss,
    silhouette_loss,
    silhouette_weights,
    skeleton_frame,
    uniform_laplacian,
)

__all__ = [
    "DHPELoss",
    "DHPETargets",
    "LossConfig",
    "LossTerms",
    "SkeletonFrame",
    "articulation_loss",
    "denormalise_skeleton",
    "feature_loss",
    "heatmap_loss",
    "laplacian_loss",
    "mesh_edges",
    "normalise_skeleton",
    "refiner_loss",
    "silhouette_loss",
    "silhouette_weights",
    "skeleton_frame",
    "uniform_laplacian",
]
