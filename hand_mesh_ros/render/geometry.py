"""Small triangle geometry: the 2D cross product of screen vectors (``cross2``), which faces
of a closed mesh face the camera (``front_facing``) and its vertex normals
(``vertex_normals``)."""

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


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals. vertices (B,V,3), faces (F,3) -> (B,V,3)."""
    tri = vertices[:, faces]  # (B,F,3,3)
    face_n = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals.index_add_(1, faces[:, corner], face_n)
    return torch.nn.functional.normalize(normals, dim=-1)
