"""A simple on-disk format for ``HandSample``s (e.g. a rendered synthetic set).

    <dir>/annotations.json   {"format": FORMAT, "samples": [entry, ...]}
    <dir>/images/%08d.png    RGB image, lossless
    <dir>/masks/%08d.png     8-bit mask, 0 = background, 255 = hand (only for samples with one)

Each entry: ``image`` and ``mask`` (paths relative to <dir>; mask null when absent), ``K``
(3 x 3), ``keypoints_2d`` (21 x 2 pixels), ``visibility`` (21), ``keypoints_3d`` (21 x 3
metres, camera frame, or null), ``side``, ``source``, and ``pose`` (45), ``shape`` (10),
``global_orient`` (3), ``transl`` (3 metres) or null. Numbers are JSON floats written with
Python's shortest round-trip repr, so float64 values read back exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from hand_mesh_ros.datasets.files import (
    read_binary_mask,
    read_json,
    read_rgb,
    write_mask_png,
    write_rgb_png,
)
from hand_mesh_ros.datasets.sample import HandSample

FORMAT = "hand_mesh_ros/hand_samples/1"
ANNOTATIONS = "annotations.json"
_ARRAYS = ("K", "keypoints_2d", "visibility")
_OPTIONAL_ARRAYS = ("keypoints_3d", "pose", "shape", "global_orient", "transl")


def _list(value: np.ndarray | None):
    return None if value is None else np.asarray(value, dtype=np.float64).tolist()


def write_dataset(directory: str | Path, samples: Iterable[HandSample]) -> int:
    """Write ``samples`` to ``directory`` (created; must not already hold a dataset).

    Returns the number of samples written. The annotations file is written last, so an
    interrupted write leaves no readable (half) dataset.
    """
    directory = Path(directory)
    if (directory / ANNOTATIONS).exists():
        raise FileExistsError(f"{directory} already holds a dataset ({ANNOTATIONS})")
    (directory / "images").mkdir(parents=True, exist_ok=True)
    (directory / "masks").mkdir(exist_ok=True)
    entries = []
    for number, sample in enumerate(samples):
        image_name = f"images/{number:08d}.png"
        write_rgb_png(directory / image_name, sample.image)
        mask_name = None
        if sample.mask is not None:
            mask_name = f"masks/{number:08d}.png"
            write_mask_png(directory / mask_name, sample.mask)
        entry = {"image": image_name, "mask": mask_name, "side": sample.side}
        entry["source"] = sample.source
        for name in _ARRAYS + _OPTIONAL_ARRAYS:
            entry[name] = _list(getattr(sample, name))
        entries.append(entry)
    with (directory / ANNOTATIONS).open("w", encoding="utf-8") as f:
        json.dump({"format": FORMAT, "samples": entries}, f)
    return len(entries)


def _array(entry: dict, name: str) -> np.ndarray | None:
    value = entry.get(name)
    return None if value is None else np.asarray(value, dtype=np.float64)


class DiskDataset:
    """Map-style reader of a directory written by ``write_dataset``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        content = read_json(self.directory / ANNOTATIONS)
        if not isinstance(content, dict) or content.get("format") != FORMAT:
            raise ValueError(f"{self.directory}: not a {FORMAT} dataset")
        self._entries = content["samples"]

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> HandSample:
        entry = self._entries[index]
        mask = None
        if entry["mask"] is not None:
            mask = read_binary_mask(self.directory / entry["mask"])
        return HandSample(
            image=read_rgb(self.directory / entry["image"]),
            mask=mask,
            side=entry["side"],
            source=entry["source"],
            **{name: _array(entry, name) for name in _ARRAYS + _OPTIONAL_ARRAYS},
        )

    def __iter__(self) -> Iterator[HandSample]:
        for index in range(len(self)):
            yield self[index]


def read_dataset(directory: str | Path) -> Iterator[HandSample]:
    """Yield the samples of a directory written by ``write_dataset``, in order."""
    yield from DiskDataset(directory)
