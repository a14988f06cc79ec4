"""Convolutional Pose Machine keypoint head (Wei et al., CVPR 2016), DHPE's H (Sec. 3.1).

The paper embeds Zimmermann & Brox's CPM-style 2D pose network (ref. [68]) and supervises
its 21 x 32 x 32 heat maps (Eq. 3). Here the CPM runs on the backbone's stride-8 feature map
(ResNet ``layer2``; 28 x 28 for a 224 x 224 crop), shared with the 2D feature extractor:

    trunk:    3x3 conv to ``channels`` (the image features every stage sees)
    stage 1:  1x1 convs -> K belief maps
    stage t:  concat(trunk features, beliefs of stage t-1) -> ``convs_per_stage`` k x k convs
              -> 1x1 conv -> K belief maps  (refines the previous beliefs; Wei et al. Fig. 2)

Each stage's maps are resized bilinearly (``align_corners=False``) to ``heatmap_size``: this
maps areas to areas, so a 28-grid cell j (crop pixels [8j - 0.5, 8j + 7.5)) and a 32-grid
cell i (crop pixels [7i - 0.5, 7i + 6.5)) keep the crop-pixel convention of ``heatmaps.py``
(224 / 32 = 7 is not a power of two, so no stride of the backbone lands on 32 directly).
Every stage's output is returned for intermediate supervision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hand_mesh_ros.nets.heatmaps import HEATMAP_SIZE
from hand_mesh_ros.topology import NUM_KEYPOINTS


@dataclass(frozen=True, kw_only=True)
class CPMConfig:
    """CPM head hyper-parameters (defaults follow Zimmermann & Brox's PoseNet stages)."""

    num_stages: int = 3  # one initial stage + two refinement stages
    channels: int = 128  # width of the trunk and of the refinement convolutions
    kernel_size: int = 7  # refinement-stage kernels (large receptive field, Wei et al.)
    convs_per_stage: int = 5  # k x k convolutions per refinement stage
    stage1_channels: int = 512  # hidden width of the initial stage's 1x1 convolution
    num_keypoints: int = NUM_KEYPOINTS
    heatmap_size: int = HEATMAP_SIZE

    def __post_init__(self) -> None:
        if self.num_stages < 1 or self.convs_per_stage < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"invalid CPMConfig {self}")


@dataclass(frozen=True)
class CPMOutput:
    """stages: one (B, K, M, M) belief map per stage (first to last); final = stages[-1]."""

    stages: tuple[torch.Tensor, ...]

    @property
    def final(self) -> torch.Tensor:
        return self.stages[-1]


def _conv_relu(in_ch: int, out_ch: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2), nn.ReLU(inplace=True)]


class CPM(nn.Module):
    """Multi-stage belief-map head. in_channels: channels of the input feature map."""

    def __init__(self, in_channels: int, config: CPMConfig = CPMConfig()) -> None:
        super().__init__()
        self.config = config
        c, k = config.channels, config.num_keypoints
        self.trunk = nn.Sequential(*_conv_relu(in_channels, c, 3))
        self.stage1 = nn.Sequential(
            *_conv_relu(c, config.stage1_channels, 1), nn.Conv2d(config.stage1_channels, k, 1)
        )
        refiners = []
        for _ in range(config.num_stages - 1):
            layers = _conv_relu(c + k, c, config.kernel_size)
            for _ in range(config.convs_per_stage - 1):
                layers += _conv_relu(c, c, config.kernel_size)
            layers += [*_conv_relu(c, c, 1), nn.Conv2d(c, k, 1)]
            refiners.append(nn.Sequential(*layers))
        self.refiners = nn.ModuleList(refiners)

    def forward(self, features: torch.Tensor) -> CPMOutput:
        """features (B, in_channels, h, w) -> CPMOutput with (B, K, M, M) maps per stage."""
        trunk = self.trunk(features)
        beliefs = self.stage1(trunk)
        stages = [beliefs]
        for refiner in self.refiners:
            beliefs = refiner(torch.cat((trunk, beliefs), dim=1))
            stages.append(beliefs)
        size = (self.config.heatmap_size, self.config.heatmap_size)
        resized = tuple(
            F.interpolate(s, size=size, mode="bilinear", align_corners=False) for s in stages
        )
        return CPMOutput(resized)
