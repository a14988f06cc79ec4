"""Backend names and the one rule that picks a backend.

    BACKENDS = ("auto", "torch", "pytorch3d")
    resolve_backend(backend, device) -> "torch" | "pytorch3d"

"auto" means pytorch3d only when it is importable *and* the tensors are on CUDA (the shared
pytorch3d wheel is a CPU build, slower than the torch backend on CPU); otherwise torch.
"""

from __future__ import annotations

import importlib.util

import torch

BACKENDS = ("auto", "torch", "pytorch3d")


def pytorch3d_available() -> bool:
    """True when the ``pytorch3d`` package can be found (it is not imported here)."""
    return importlib.util.find_spec("pytorch3d") is not None


def resolve_backend(backend: str, device: torch.device) -> str:
    """ "auto" -> "pytorch3d" when importable and ``device`` is CUDA, else "torch"."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "pytorch3d" and not pytorch3d_available():
        raise ImportError("backend='pytorch3d' requested but pytorch3d is not importable")
    if backend == "auto":
        use = pytorch3d_available() and torch.device(device).type == "cuda"
        return "pytorch3d" if use else "torch"
    return backend
