"""``TrainBatch``: the tensors one training or evaluation step consumes, at the network's
input size, from a datasets ``CropBatch`` or from the self-augmentation pool.

Frames and units: image (B, 3, S, S) RGB in [0, 1] (not yet ImageNet-normalised); mask
(B, S, S) in [0, 1]; keypoints_2d (B, 21, 2) crop pixels, pixel centres at integers;
keypoints_3d (B, 21, 3) metres in the camera frame of K; K (B, 3, 3) the crop's intrinsics
(projecting keypoints_3d with K gives keypoints_2d). has_mask / has_3d (B,) bool say which
samples carry a mask / a 3D skeleton (the others hold zeros there).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class TrainBatch:
    """See the module docstring for shapes, units and frames."""

    image: torch.Tensor
    mask: torch.Tensor
    has_mask: torch.Tensor
    keypoints_2d: torch.Tensor
    visibility: torch.Tensor
    keypoints_3d: torch.Tensor
    has_3d: torch.Tensor
    K: torch.Tensor

    def __post_init__(self) -> None:
        b, size = self.image.shape[0], self.image.shape[-1]
        expected = {
            "image": (b, 3, size, size),
            "mask": (b, size, size),
            "has_mask": (b,),
            "keypoints_2d": (b, 21, 2),
            "visibility": (b, 21),
            "keypoints_3d": (b, 21, 3),
            "has_3d": (b,),
            "K": (b, 3, 3),
        }
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                got = tuple(getattr(self, name).shape)
                raise ValueError(f"TrainBatch.{name} must be {shape}, got {got}")

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @property
    def crop_size(self) -> int:
        return int(self.image.shape[-1])

    def to(self, device: torch.device | str) -> TrainBatch:
        return TrainBatch(*(getattr(self, f.name).to(device) for f in fields(self)))

    def select(self, index: torch.Tensor | slice) -> TrainBatch:
        return TrainBatch(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def cat(batches: list[TrainBatch]) -> TrainBatch:
        return TrainBatch(
            *(torch.cat([getattr(b, f.name) for b in batches]) for f in fields(TrainBatch))
        )


def train_batch_from_crops(crops) -> TrainBatch:
    """A datasets ``CropBatch`` (square crops at the network's input size) as a TrainBatch."""
    return TrainBatch(
        image=crops.image.float(),
        mask=crops.mask.float(),
        has_mask=crops.has_mask.bool(),
        keypoints_2d=crops.keypoints_2d.float(),
        visibility=crops.visibility.float(),
        keypoints_3d=crops.keypoints_3d.float(),
        has_3d=crops.has_3d.bool(),
        K=crops.K.float(),
    )


def train_batch_from_pool(entries: dict[str, torch.Tensor]) -> TrainBatch:
    """Self-augmented instances (``AugmentPool.sample``): every one has a mask and 3D."""
    n = entries["image"].shape[0]
    return TrainBatch(
        image=entries["image"],
        mask=entries["mask"],
        has_mask=torch.ones(n, dtype=torch.bool),
        keypoints_2d=entries["keypoints_2d"],
        visibility=torch.ones(n, 21),
        keypoints_3d=entries["keypoints_3d"],
        has_3d=torch.ones(n, dtype=torch.bool),
        K=entries["K"],
    )
