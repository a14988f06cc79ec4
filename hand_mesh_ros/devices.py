"""Torch device names accepted everywhere (library config, CLI, node, training) and the one
rule that turns a name into a device."""

from __future__ import annotations

import logging

import torch

LOG = logging.getLogger(__name__)
DEVICES = ("auto", "cpu", "cuda")  # auto = CUDA when available, else the CPU


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else the CPU; 'cuda' without CUDA falls back to the CPU
    with a warning (a node or a training run on a machine without a GPU still runs, and says
    so); any other name is an error."""
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        LOG.warning("device 'cuda' requested but CUDA is not available: using the CPU")
        return torch.device("cpu")
    return torch.device(name)
