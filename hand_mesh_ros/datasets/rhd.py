"""Reader for the Rendered Hand pose Dataset (RHD, Zimmermann & Brox 2017), original release.

Layout (``shared/DATASET_FORMATS.md`` section 1): ``<root>/<split>/anno_<split>.pickle`` (a
dict: integer sample id -> {'xyz': (42, 3) metres, camera frame; 'uv_vis': (42, 3) u, v pixels
and visibility (1 = visible); 'K': (3, 3)}), ``<root>/<split>/color/%05d.png`` (320 x 320
RGB) and ``<root>/<split>/mask/%05d.png`` (8-bit labels: 0 background, 1 person, 2-17 left
hand, 18-33 right hand). Split is "training" or "evaluation".

Conversions: rows 0-20 are the left hand and 21-41 the right hand; each hand's RHD order
(fingers tip to palm) is reordered to the core order (``keypoint_orders.RHD_TO_CORE``);
visibility = 1.0 where uv_vis[:, 2] == 1 else 0.0; the hand's mask is its own label range.
Units are already metres and pixels. Every hand with at least
``RHDConfig.min_visible_keypoints`` visible keypoints becomes one ``HandSample`` with source
``"rhd/<split>/<id %05d>:<side>"``; RHD shows both hands, so one image can give two samples.
"""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hand_mesh_ros.datasets.files import read_label_image, read_rgb, require_file
from hand_mesh_ros.datasets.keypoint_orders import RHD_RIGHT_OFFSET, RHD_TO_CORE
from hand_mesh_ros.datasets.sample import SIDES, HandSample

SPLITS = ("training", "evaluation")
NUM_RHD_KEYPOINTS = 42
# Mask label ranges (inclusive) of each hand: fingers and palm.
HAND_LABELS = {"left": (2, 17), "right": (18, 33)}
VISIBLE_FLAG = 1  # uv_vis[:, 2] value of a visible keypoint


@dataclass(frozen=True, kw_only=True)
class RHDConfig:
    min_visible_keypoints: int = 10  # hands with fewer visible keypoints are skipped
    sides: tuple[str, ...] = ("left", "right")  # which hands to yield

    def __post_init__(self) -> None:
        if not 0 <= self.min_visible_keypoints <= 21:
            raise ValueError("min_visible_keypoints must be in [0, 21]")
        if not self.sides or any(s not in SIDES for s in self.sides):
            raise ValueError(f"sides must be a non-empty subset of {SIDES}, got {self.sides}")


class _NumpyUnpickler(pickle.Unpickler):
    """Resolves only the globals a dict of numpy arrays needs; refuses anything else."""

    _ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    _HELPER_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
    _HELPERS = ("_reconstruct", "scalar")

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module in self._HELPER_MODULES and name in self._HELPERS:
            for candidate in ("numpy._core.multiarray", "numpy.core.multiarray"):
                try:
                    return getattr(importlib.import_module(candidate), name)
                except (ImportError, AttributeError):
                    continue
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: an RHD annotation file holds only "
            "numpy arrays"
        )


def load_rhd_annotations(path: str | Path) -> dict[int, dict]:
    """Read ``anno_<split>.pickle`` safely (numpy arrays only) -> {sample id: annotation}."""
    path = require_file(Path(path))
    with path.open("rb") as f:
        content = _NumpyUnpickler(f, encoding="latin1").load()
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a dict of annotations, got {type(content).__name__}")
    return content


def _array(annotation: dict, key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    if key not in annotation:
        raise ValueError(f"{where}: annotation has no {key!r}")
    value = np.asarray(annotation[key], dtype=np.float64)
    if value.shape != shape:
        raise ValueError(f"{where}: {key!r} must be {shape}, got {value.shape}")
    return value


def rhd_hand(annotation: dict, side: str, where: str = "rhd") -> tuple[np.ndarray, ...]:
    """One hand of one RHD annotation in the core order.

    Returns keypoints_3d (21, 3) metres, keypoints_2d (21, 2) pixels, visibility (21,) in
    {0, 1}, K (3, 3) pixels.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    xyz = _array(annotation, "xyz", (NUM_RHD_KEYPOINTS, 3), where)
    uv_vis = _array(annotation, "uv_vis", (NUM_RHD_KEYPOINTS, 3), where)
    K = _array(annotation, "K", (3, 3), where)
    offset = 0 if side == "left" else RHD_RIGHT_OFFSET
    rows = offset + np.asarray(RHD_TO_CORE)
    visibility = (uv_vis[rows, 2] == VISIBLE_FLAG).astype(np.float64)
    return xyz[rows], uv_vis[rows, :2], visibility, K


def rhd_hand_mask(labels: np.ndarray, side: str) -> np.ndarray:
    """(H, W) uint8 RHD label image -> (H, W) bool mask of one hand (fingers and palm)."""
    low, high = HAND_LABELS[side]
    return (labels >= low) & (labels <= high)


class RHDDataset:
    """Map-style dataset of RHD hands: ``len()``, ``[i] -> HandSample``, iteration.

    Annotations are read once at construction; images and masks on access.
    """

    def __init__(
        self, root: str | Path, split: str = "training", *, config: RHDConfig | None = None
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"RHD split must be one of {SPLITS}, got {split!r}")
        self.config = config or RHDConfig()
        self.split = split
        self.split_dir = Path(root) / split
        self._annotations = load_rhd_annotations(self.split_dir / f"anno_{split}.pickle")
        self._items: list[tuple[int, str]] = []
        for sample_id in sorted(self._annotations):
            for side in self.config.sides:
                where = self._source(sample_id, side)
                _, _, visibility, _ = rhd_hand(self._annotations[sample_id], side, where)
                if visibility.sum() >= self.config.min_visible_keypoints:
                    self._items.append((int(sample_id), side))

    def _source(self, sample_id: int, side: str) -> str:
        return f"rhd/{self.split}/{sample_id:05d}:{side}"

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> HandSample:
        sample_id, side = self._items[index]
        source = self._source(sample_id, side)
        kp3d, kp2d, visibility, K = rhd_hand(self._annotations[sample_id], side, source)
        image = read_rgb(self.split_dir / "color" / f"{sample_id:05d}.png")
        labels = read_label_image(self.split_dir / "mask" / f"{sample_id:05d}.png")
        return HandSample(
            image=image,
            K=K,
            keypoints_2d=kp2d,
            visibility=visibility,
            keypoints_3d=kp3d,
            mask=rhd_hand_mask(labels, side),
            side=side,
            source=source,
        )

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]
