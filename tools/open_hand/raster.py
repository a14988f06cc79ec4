"""A tiny painter's-algorithm mesh rasteriser for documentation figures (numpy + OpenCV).

Orthographic camera looking along +z of the camera frame, x right, y down (image
convention). Faces are sorted far-to-near, back faces culled, filled with Lambert shading.
"""

from __future__ import annotations

import cv2
import numpy as np

SUPERSAMPLE = 4  # fillPoly works on integer pixels; draw at 4x and downsample
BASE_COLOR = np.array([150.0, 185.0, 225.0])  # BGR skin tone
AMBIENT = 0.3


def view_rotation(yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> np.ndarray:
    """Camera-from-model rotation: yaw about the model y axis, then pitch about x."""
    a, b = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rx @ ry


def render_mesh(verts: np.ndarray, faces: np.ndarray, rotation: np.ndarray, *,
                size: int = 320, extent: float = 0.24, centre: np.ndarray | None = None,
                colors: np.ndarray | None = None) -> np.ndarray:
    """Shade a mesh. verts (V, 3) metres, faces (F, 3) outward -> (size, size, 3) uint8 BGR.

    extent: metres covered by the image width; centre: model point at the image centre
    (default: bounding-box centre); colors: optional (F, 3) BGR base color per face.
    """
    if centre is None:
        centre = 0.5 * (verts.min(0) + verts.max(0))
    cam = (verts - centre) @ rotation.T
    tri = cam[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    visible = normals[:, 2] < 0  # facing the camera (which looks along +z)
    order = np.argsort(-tri[:, :, 2].mean(1))
    order = order[visible[order]]
    big = size * SUPERSAMPLE
    scale = big / extent
    pix = np.round((tri[:, :, :2] * scale + big / 2) * 16).astype(np.int32)  # 4 fraction bits
    image = np.full((big, big, 3), 255, np.uint8)
    shade = AMBIENT + (1 - AMBIENT) * np.clip(-normals[:, 2], 0, 1)
    base = np.broadcast_to(BASE_COLOR, (len(faces), 3)) if colors is None else colors
    for i in order:
        color = tuple(float(c) for c in base[i] * shade[i])
        cv2.fillPoly(image, [pix[i]], color, lineType=cv2.LINE_AA, shift=4)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
