"""Shared test helpers: closeness with a worst-element report, data paths.

Imported by tests as ``from helpers import ...`` (pytest puts test/ on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HAND_MESH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def assert_close(actual, expected, *, atol: float = 1e-6, rtol: float = 0.0, what: str = "value"):
    """Assert |actual - expected| <= atol + rtol * |expected| and report the worst element."""
    a = torch.as_tensor(actual, dtype=torch.float64).detach().cpu()
    e = torch.as_tensor(expected, dtype=torch.float64).detach().cpu()
    assert a.shape == e.shape, f"{what}: shape {tuple(a.shape)} != {tuple(e.shape)}"
    err = (a - e).abs()
    excess = err - (atol + rtol * e.abs())
    if excess.numel() and excess.max() > 0:
        idx = np.unravel_index(int(excess.argmax()), tuple(a.shape))
        raise AssertionError(
            f"{what}: worst element at {idx}: actual {a[idx].item():.6g}, "
            f"expected {e[idx].item():.6g}, |diff| {err[idx].item():.3g} "
            f"(atol {atol}, rtol {rtol})"
        )
