"""DHPE networks (Baek et al., CVPR 2019, Sec. 3.1-3.2): backbone, keypoint head, mesh
estimator and the assembled DHPE module. Losses live in ``hand_mesh_ros.training``.

``DHPE`` and its result types are imported lazily (they pull in the renderer).
"""

from __future__ import annotations

from hand_mesh_ros.nets.cpm import CPM, CPMConfig, CPMOutput
from hand_mesh_ros.nets.heatmaps import (
    cells_to_pixels,
    gaussian_heatmaps,
    heatmap_argmax,
    pixels_to_cells,
    soft_argmax,
)
from hand_mesh_ros.nets.mesh_estimator import EstimatorStep, MeshEstimator, MeshEstimatorConfig
from hand_mesh_ros.nets.resnet import (
    ResNet,
    ResNetFeatures,
    load_torchvision_weights,
    normalize_image,
)

_DHPE_NAMES = (
    "DHPE",
    "DHPEConfig",
    "DHPEIteration",
    "DHPEOutput",
    "Projection",
    "ProjectionOperator",
)

__all__ = [
    "CPM",
    "CPMConfig",
    "CPMOutput",
    "EstimatorStep",
    "MeshEstimator",
    "MeshEstimatorConfig",
    "ResNet",
    "ResNetFeatures",
    "cells_to_pixels",
    "gaussian_heatmaps",
    "heatmap_argmax",
    "load_torchvision_weights",
    "normalize_image",
    "pixels_to_cells",
    "soft_argmax",
    *_DHPE_NAMES,
]


def __getattr__(name: str):
    if name in _DHPE_NAMES:
        from hand_mesh_ros.nets import dhpe

        return getattr(dhpe, name)
    raise AttributeError(f"module 'hand_mesh_ros.nets' has no attribute {name!r}")
