"""Training data: dataset readers, the synthetic generator, the on-disk format, 224 crops.

Every source yields ``HandSample`` (``sample.py``: numpy, OpenCV camera frame, metres, the
core keypoint order of ``topology.py``); ``crop_sample`` turns one into the paper's square
crop and ``collate`` batches crops for a torch DataLoader:

    dataset = open_dataset("rhd", "/data/RHD_published_v2", "training")
    crops = [crop_sample(dataset[i]) for i in range(8)]
    batch = collate(crops)            # CropBatch of torch tensors

Kinds: "rhd" (``rhd.py``), "stb" (``stb.py``), "freihand" (``freihand.py``),
"synthetic-dir" (a directory written by ``write_dataset``, ``disk.py``). Synthetic samples
are streamed with ``iter_synthetic`` / ``SyntheticDataset`` (``synthetic.py``).
"""

from __future__ import annotations

from pathlib import Path

from hand_mesh_ros.datasets.crop import (
    CropBatch,
    CropJitter,
    CropSample,
    collate,
    crop_box,
    crop_sample,
)
from hand_mesh_ros.datasets.disk import DiskDataset, read_dataset, write_dataset
from hand_mesh_ros.datasets.freihand import FreiHANDConfig, FreiHANDDataset
from hand_mesh_ros.datasets.mirror import mirror_sample
from hand_mesh_ros.datasets.rhd import RHDConfig, RHDDataset
from hand_mesh_ros.datasets.sample import HandSample
from hand_mesh_ros.datasets.stb import STBConfig, STBDataset
from hand_mesh_ros.datasets.synthetic import (
    SyntheticConfig,
    SyntheticDataset,
    SyntheticGenerator,
    iter_synthetic,
)

DATASET_KINDS = ("rhd", "stb", "freihand", "synthetic-dir")
DEFAULT_SPLIT = "training"


def open_dataset(kind: str, root: str | Path, split: str | None = None):
    """A map-style dataset of ``HandSample``s with default reader settings.

    kind: one of DATASET_KINDS. split: "training" (default) or "evaluation" for rhd, stb and
    freihand (stb also "all"); for "synthetic-dir" an optional sub-directory of ``root``.
    """
    if kind == "rhd":
        return RHDDataset(root, split or DEFAULT_SPLIT)
    if kind == "stb":
        return STBDataset(root, split or DEFAULT_SPLIT)
    if kind == "freihand":
        return FreiHANDDataset(root, split or DEFAULT_SPLIT)
    if kind == "synthetic-dir":
        return DiskDataset(Path(root) / split if split else root)
    raise ValueError(f"unknown dataset kind {kind!r}; expected one of {DATASET_KINDS}")


__all__ = [
    "DATASET_KINDS",
    "CropBatch",
    "CropJitter",
    "CropSample",
    "DiskDataset",
    "FreiHANDConfig",
    "FreiHANDDataset",
    "HandSample",
    "RHDConfig",
    "RHDDataset",
    "STBConfig",
    "STBDataset",
    "SyntheticConfig",
    "SyntheticDataset",
    "SyntheticGenerator",
    "collate",
    "crop_box",
    "crop_sample",
    "iter_synthetic",
    "mirror_sample",
    "open_dataset",
    "read_dataset",
    "write_dataset",
]
