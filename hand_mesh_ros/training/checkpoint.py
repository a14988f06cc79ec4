"""Training checkpoints: everything an exact resume needs, loadable with ``weights_only=True``.

File layout (``torch.save`` of a dict)::

    {"format": CHECKPOINT_FORMAT, "config": TrainConfig.to_dict(), "step": int,
     "model": DHPE state_dict, "optimiser": ..., "scaler": ..., "pool": AugmentPool state,
     "rng": {"torch": ByteTensor, "numpy": {...}, "augment": ByteTensor}}

Only tensors, numbers, strings, lists and dicts are stored (numpy's RNG state is converted),
so ``torch.load(weights_only=True)`` reads it without unpickling arbitrary objects
(``weights.load_weights_file``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hand_mesh_ros.weights import load_weights_file

CHECKPOINT_FORMAT = "hand_mesh_ros.train_checkpoint/1"
_KEYS = {"format", "config", "step", "model", "optimiser", "scaler", "pool", "rng"}


def numpy_rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def set_numpy_rng_state(state: dict) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["cached"]))


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Write atomically (temporary file + rename), so a crash never leaves half a file."""
    missing = _KEYS - {"format"} - set(payload)
    if missing:
        raise ValueError(f"checkpoint payload lacks {sorted(missing)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict; FileNotFoundError / ValueError with the reason."""
    path = Path(path)
    data = load_weights_file(path, what="training checkpoint", expected_format=CHECKPOINT_FORMAT)
    missing = _KEYS - set(data)
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {sorted(missing)}")
    return data
