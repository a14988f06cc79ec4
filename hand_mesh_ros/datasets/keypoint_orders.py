"""Keypoint orders of the public datasets, mapped to the core order of ``topology.py``.

Core order (= FreiHAND's): 0 wrist; 1-4 thumb CMC, MCP, IP, tip; 5-8 index MCP, PIP, DIP,
tip; 9-12 middle; 13-16 ring; 17-20 little (each finger from the palm to the tip).

Each ``*_TO_CORE`` tuple lists, for every core slot, the dataset's index that fills it, so
``core = dataset[ORDER]``. Sources: ``shared/DATASET_FORMATS.md`` sections 1.3, 2.2, 3.2, 4.

- RHD, per hand (the right hand's indices are offset by 21 in the 42-point arrays):
  0 wrist; 1-4 thumb tip, DIP, PIP, MCP; 5-8 index tip..MCP; 9-12 middle; 13-16 ring;
  17-20 little -- every finger runs tip to palm, the reverse of the core order (RHD's thumb
  "MCP" is the core's thumb CMC, its "PIP" the core's thumb MCP, its "DIP" the IP joint).
- STB: 0 palm centre (NOT the wrist: see ``stb.py``); 1-4 little MCP..tip; 5-8 ring;
  9-12 middle; 13-16 index; 17-20 thumb -- fingers in the reverse order, palm to tip.
- FreiHAND: the core order itself.
"""

from __future__ import annotations

import numpy as np

from hand_mesh_ros.topology import NUM_KEYPOINTS

# fmt: off
RHD_TO_CORE: tuple[int, ...] = (
    0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17,
)
STB_TO_CORE: tuple[int, ...] = (
    0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4,
)
# fmt: on
FREIHAND_TO_CORE: tuple[int, ...] = tuple(range(NUM_KEYPOINTS))

RHD_RIGHT_OFFSET = 21  # RHD's 42-point arrays: left hand 0-20, right hand 21-41


def to_core_order(values: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """(21, ...) array in a dataset's order -> (21, ...) in the core order (a copy)."""
    values = np.asarray(values)
    if values.shape[0] != NUM_KEYPOINTS or len(order) != NUM_KEYPOINTS:
        raise ValueError(f"expected 21 keypoints, got array {values.shape}, order {len(order)}")
    return values[list(order)].copy()
