"""Batch sources for training and evaluation: the batch of step t is a function of t.

Every source crops its ``HandSample``s with ``datasets.crop_sample`` (the paper's 1.5 x
keypoint-box square, left hands mirrored to right ones) straight at the network's input size
and batches them with ``datasets.collate``:

* ``DatasetSource``: a map-style dataset (``datasets.open_dataset`` or a
  ``SyntheticDataset``) visited in a random order per epoch (``EpochOrder``, seeded by
  (seed, epoch)); crop jitter, if any, is seeded by (seed, epoch, index). With ``cache``
  the crops are kept in memory (uint8) after their first use -- for a synthetic set, whose
  samples are otherwise re-rendered every epoch.
* ``StreamSource``: fresh synthetic samples every step (indices t * B .. t * B + B - 1 of
  one endless stream), nothing repeats.
* ``SequentialSource``: a dataset in order, once, for evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from hand_mesh_ros.datasets import (
    CropJitter,
    CropSample,
    SyntheticConfig,
    SyntheticDataset,
    collate,
    crop_sample,
    open_dataset,
)
from hand_mesh_ros.training.batches import TrainBatch, train_batch_from_crops
from hand_mesh_ros.training.config import TrainConfig

STREAM_LENGTH = 2**62  # samples in an endless synthetic stream
UINT8_MAX = 255.0


class EpochOrder:
    """Sample indices of step t: positions t * B .. t * B + B - 1 of the concatenation of
    per-epoch permutations of range(n) (epoch e's permutation seeded by (seed, e))."""

    def __init__(self, n: int, batch_size: int, seed: int, *, shuffle: bool = True) -> None:
        if n < 1:
            raise ValueError("the training set is empty")
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self._cache: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return self._cache[1]

    def keys(self, step: int) -> list[tuple[int, int]]:
        """[(epoch, index)] of the step's samples."""
        start = step * self.batch_size
        out = []
        for position in range(start, start + self.batch_size):
            epoch, offset = divmod(position, self.n)
            out.append((epoch, int(self.permutation(epoch)[offset])))
        return out


def _compact(crop: CropSample) -> CropSample:
    """The crop with its image stored as uint8 (4x less memory); ``_expand`` reverses it."""
    image = np.round(crop.image * UINT8_MAX).astype(np.uint8)
    return _replace_image(crop, image)


def _expand(crop: CropSample) -> CropSample:
    return _replace_image(crop, crop.image.astype(np.float32) / UINT8_MAX)


def _replace_image(crop: CropSample, image: np.ndarray) -> CropSample:
    return replace(crop, image=image)


class DatasetSource:
    """Random-order batches of a map-style dataset of HandSamples (module docstring)."""

    def __init__(
        self,
        dataset,
        *,
        crop_size: int,
        batch_size: int,
        seed: int,
        jitter: CropJitter | None = None,
        cache: bool = False,
    ) -> None:
        self.dataset, self.crop_size, self.jitter = dataset, crop_size, jitter
        self.seed = seed
        self.order = EpochOrder(len(dataset), batch_size, seed)
        self.cache: dict[int, CropSample] | None = {} if cache and jitter is None else None

    def __len__(self) -> int:
        return len(self.dataset)

    def crop(self, epoch: int, index: int) -> CropSample:
        if self.cache is not None and index in self.cache:
            return _expand(self.cache[index])
        rng = None
        if self.jitter is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
        crop = crop_sample(
            self.dataset[index], crop_size=self.crop_size, jitter=self.jitter, rng=rng
        )
        if self.cache is not None:
            self.cache[index] = _compact(crop)
            return _expand(self.cache[index])
        return crop

    def batch(self, step: int) -> TrainBatch:
        crops = [self.crop(epoch, index) for epoch, index in self.order.keys(step)]
        return train_batch_from_crops(collate(crops))


class StreamSource:
    """Fresh synthetic samples every step (module docstring)."""

    def __init__(self, dataset: SyntheticDataset, *, crop_size: int, batch_size: int) -> None:
        self.dataset, self.crop_size, self.batch_size = dataset, crop_size, batch_size

    def batch(self, step: int) -> TrainBatch:
        start = step * self.batch_size
        crops = [
            crop_sample(self.dataset[i], crop_size=self.crop_size)
            for i in range(start, start + self.batch_size)
        ]
        return train_batch_from_crops(collate(crops))


def synthetic_config(image_size: int) -> SyntheticConfig:
    """The synthetic generator's defaults on a square image of ``image_size`` px."""
    return SyntheticConfig(image_size=(image_size, image_size))


def build_training_source(cfg: TrainConfig):
    """The batch source a TrainConfig describes."""
    jitter = None
    if cfg.crop_jitter > 0:
        jitter = CropJitter(
            scale_range=(1.0 - cfg.crop_jitter, 1.0 + cfg.crop_jitter), max_shift=cfg.crop_jitter
        )
    if cfg.data_kind == "synthetic":
        image_cfg = synthetic_config(cfg.synthetic_image_size)
        if cfg.train_samples == 0:
            stream = SyntheticDataset(image_cfg, cfg.data_seed, STREAM_LENGTH)
            return StreamSource(stream, crop_size=cfg.crop_size, batch_size=cfg.batch_size)
        dataset = SyntheticDataset(image_cfg, cfg.data_seed, cfg.train_samples)
        return DatasetSource(
            dataset,
            crop_size=cfg.crop_size,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            jitter=jitter,
            cache=True,
        )
    dataset = open_dataset(cfg.data_kind, cfg.data_root, cfg.data_split)
    return DatasetSource(
        dataset, crop_size=cfg.crop_size, batch_size=cfg.batch_size, seed=cfg.seed, jitter=jitter
    )


def sequential_batches(dataset, *, crop_size: int, batch_size: int) -> Iterator[TrainBatch]:
    """Every sample of ``dataset`` once, in order, unjittered (evaluation)."""
    for start in range(0, len(dataset), batch_size):
        stop = min(start + batch_size, len(dataset))
        crops = [crop_sample(dataset[i], crop_size=crop_size) for i in range(start, stop)]
        yield train_batch_from_crops(collate(crops))
