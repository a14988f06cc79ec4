"""ResNet-50 / ResNet-18 (He et al., CVPR 2016) with torchvision's parameter names.

The module tree mirrors ``torchvision.models.resnet50`` / ``resnet18`` (v1.5: the stride of a
bottleneck sits on its 3x3 convolution): ``conv1, bn1, layer1..layer4, fc`` where each layer is
a sequence of blocks with ``conv1/bn1/conv2/bn2[/conv3/bn3]`` and ``downsample.0`` (1x1 conv)
/ ``downsample.1`` (batch norm). A torchvision ImageNet state_dict therefore loads with
``strict=True`` (parameter counts: 25,557,032 for ResNet-50, 11,689,512 for ResNet-18).

DHPE (Sec. 3.1) uses the 2048-d globally pooled ResNet-50 feature as its 2D feature F(x); the
classifier ``fc`` is kept only so that ImageNet weights load strictly (``with_fc=False`` drops
it, see ``load_torchvision_weights``). ResNet-18 (512-d feature) is the light CPU option.

Input: (B, 3, H, W) normalised RGB; the output strides of ``layer1..layer4`` are 4, 8, 16, 32.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

# Blocks per stage and block type for each supported depth (He et al. 2016, Table 1).
RESNET_LAYERS: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (2, 2, 2, 2),
    "resnet50": (3, 4, 6, 3),
}
STAGE_WIDTHS = (64, 128, 256, 512)  # bottleneck / basic-block width of layer1..layer4
STEM_WIDTH = 64
IMAGENET_CLASSES = 1000
# Per-channel RGB statistics of ImageNet that torchvision's weights expect (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ResNetFeatures:
    """Intermediate maps of a ResNet pass (channels for ResNet-50 / ResNet-18).

    Attributes:
        c2: (B, 256 | 64, H/4, W/4) output of layer1.
        c3: (B, 512 | 128, H/8, W/8) output of layer2.
        c4: (B, 1024 | 256, H/16, W/16) output of layer3.
        c5: (B, 2048 | 512, H/32, W/32) output of layer4.
        pooled: (B, 2048 | 512) global average of c5 -- the 2D feature F(x).
    """

    c2: torch.Tensor
    c3: torch.Tensor
    c4: torch.Tensor
    c5: torch.Tensor
    pooled: torch.Tensor


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand by 4, plus shortcut."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    """1x1 strided projection + BN when the shape changes, else None (identity)."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class ResNet(nn.Module):
    """ResNet backbone; ``forward`` returns the pooled feature (B, feature_dim).

    Args:
        arch: "resnet50" (Bottleneck, 2048-d) or "resnet18" (BasicBlock, 512-d).
        with_fc: keep torchvision's 1000-way classifier ``fc`` (unused by ``forward``; needed
            only for a strict load of ImageNet weights).
    """

    def __init__(self, arch: str = "resnet50", *, with_fc: bool = True) -> None:
        super().__init__()
        if arch not in RESNET_LAYERS:
            raise ValueError(f"arch must be one of {sorted(RESNET_LAYERS)}, got {arch!r}")
        self.arch = arch
        block = Bottleneck if arch == "resnet50" else BasicBlock
        self.conv1 = nn.Conv2d(3, STEM_WIDTH, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_WIDTH)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = STEM_WIDTH
        stages = []
        layout = zip(RESNET_LAYERS[arch], STAGE_WIDTHS, strict=True)
        for index, (blocks, width) in enumerate(layout):
            stride = 1 if index == 0 else 2
            layer = []
            for b in range(blocks):
                layer.append(block(in_ch, width, stride if b == 0 else 1))
                in_ch = width * block.expansion
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = in_ch
        self.stage_channels = tuple(w * block.expansion for w in STAGE_WIDTHS)
        self.fc = nn.Linear(in_ch, IMAGENET_CLASSES) if with_fc else None
        self._init_weights()

    def _init_weights(self) -> None:
        """He (fan-out) init for convolutions, unit/zero batch norm (as torchvision)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, image: torch.Tensor) -> ResNetFeatures:
        """image (B, 3, H, W) -> all stage outputs and the pooled feature."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return ResNetFeatures(c2, c3, c4, c5, torch.flatten(self.avgpool(c5), 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) -> pooled feature (B, feature_dim)."""
        return self.forward_features(image).pooled


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> ImageNet-normalised network input."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device)
    return (image - mean[:, None, None]) / std[:, None, None]


def load_torchvision_weights(model: ResNet, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a torchvision ResNet state_dict of the same depth into ``model``.

    Strict: every key must match, except that ``fc.*`` is ignored when ``model`` has no ``fc``.
    """
    if model.fc is None:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    model.load_state_dict(state_dict, strict=True)
