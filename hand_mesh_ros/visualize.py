"""Drawing: shaded hand meshes over images and 2D skeletons (numpy/OpenCV images, RGB)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from hand_mesh_ros.render import rasterize
from hand_mesh_ros.render.geometry import vertex_normals
from hand_mesh_ros.topology import KEYPOINT_PARENTS, TIP_KEYPOINTS

SIDE_COLORS = {"right": (80, 160, 255), "left": (255, 150, 60)}  # RGB
LIGHT_DIRECTION = (0.3, -0.4, -1.0)  # towards the light, camera frame (from behind the camera)
FINGER_COLORS = ((230, 60, 60), (240, 200, 40), (60, 200, 80), (60, 170, 240), (200, 80, 220))


def shade_mesh(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    image_size: tuple[int, int],
    color: tuple[int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Lambert-shaded render of one mesh. vertices (V,3) camera frame metres.

    Returns (rgb (H,W,3) uint8, mask (H,W) bool).
    """
    v = vertices[None].double()
    normals = vertex_normals(v, faces)
    light = torch.nn.functional.normalize(torch.tensor(LIGHT_DIRECTION, dtype=v.dtype), dim=0)
    # two-sided lighting: the side facing the camera is lit
    lambert = (normals @ -light).abs()
    base = torch.tensor(color, dtype=v.dtype) / 255.0
    rgb = (0.25 + 0.75 * lambert[..., None]) * base
    result = rasterize(v, faces, K.double(), image_size=image_size, vertex_colors=rgb)
    image = (result.color[0].clamp(0, 1) * 255).round().byte().cpu().numpy()
    return image, result.mask[0].bool().cpu().numpy()


def overlay_mesh(
    image: np.ndarray,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    *,
    color: tuple[int, int, int] = SIDE_COLORS["right"],
    alpha: float = 0.6,
) -> np.ndarray:
    """Blend a shaded mesh (V,3, camera frame) over an RGB uint8 image (H,W,3)."""
    h, w = image.shape[:2]
    shaded, mask = shade_mesh(vertices, faces, K, (h, w), color)
    out = image.copy()
    out[mask] = (alpha * shaded[mask] + (1 - alpha) * image[mask]).astype(np.uint8)
    return out


def draw_keypoints(image: np.ndarray, keypoints_2d: np.ndarray, *, radius: int = 3) -> np.ndarray:
    """Draw a 21-keypoint skeleton (pixels, (21,2)) on an RGB image, one color per finger."""
    out = image.copy()
    pts = np.asarray(keypoints_2d, dtype=np.float64)
    if not np.isfinite(pts).all():
        return out
    scale = 16  # fixed-point shift for sub-pixel drawing
    ipts = np.round(pts * scale).astype(np.int64)
    for child, parent in enumerate(KEYPOINT_PARENTS):
        if parent < 0:
            continue
        finger = (child - 1) // 4
        cv2.line(
            out,
            tuple(map(int, ipts[parent])),
            tuple(map(int, ipts[child])),
            FINGER_COLORS[finger],
            2,
            cv2.LINE_AA,
            shift=4,
        )
    for i, p in enumerate(ipts):
        color = (255, 255, 255) if i in TIP_KEYPOINTS or i == 0 else (20, 20, 20)
        cv2.circle(out, tuple(map(int, p)), radius * scale, color, -1, cv2.LINE_AA, shift=4)
    return out
