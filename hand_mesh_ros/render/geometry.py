"""Small triangle geometry for the backends: the 2D cross product of screen vectors
(``cross2``) and which faces of a closed mesh face the camera (``front_facing``)."""

from __future__ import annotations

import torch


def cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """z of the 2D cross product a x b over the last axis (size 2)."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def front_facing(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, F) bool: the face's outward normal points towards the camera centre.

    vertices: (B, V, 3) camera frame; faces (F, 3) counter-clockwise seen from outside.
    """
    tri = vertices[:, faces]  # (B, F, 3, 3)
    normal = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    return (normal * tri[:, :, 0]).sum(-1) < 0
