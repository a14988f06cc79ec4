"""Small file and geometry helpers shared by the dataset readers (numpy + OpenCV, no torch).

Images leave here as (H, W, 3) uint8 RGB (``imageio.read_image`` rules), label/mask images as
(H, W) uint8; points follow the OpenCV camera frame (x right, y down, z forward).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from hand_mesh_ros.imageio import read_image

MASK_THRESHOLD = 128  # grey level; JPEG-compressed binary masks are cut here


def require_file(path: Path) -> Path:
    """``path`` if it is a file, else FileNotFoundError naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image; raises FileNotFoundError / ``ImageError`` naming the file."""
    return read_image(require_file(path))


def read_label_image(path: Path) -> np.ndarray:
    """(H, W) uint8 single-channel label image (a 3-channel file must have equal channels)."""
    image = cv2.imread(str(require_file(path)), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    if image.ndim == 3:
        if not all(np.array_equal(image[..., 0], image[..., c]) for c in range(1, 3)):
            raise ValueError(f"{path}: label image has differing color channels")
        image = image[..., 0]
    if image.dtype != np.uint8:
        raise ValueError(f"{path}: label image must be 8-bit, got {image.dtype}")
    return image


def read_binary_mask(path: Path, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """(H, W) bool mask from a grey or color image: grey level >= ``threshold``."""
    image = cv2.imread(str(require_file(path)), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image >= threshold


def write_rgb_png(path: Path, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image as PNG (lossless)."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write PNG")


def write_mask_png(path: Path, mask: np.ndarray) -> None:
    """Write an (H, W) bool mask as an 8-bit PNG with values 0 and 255."""
    if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):
        raise OSError(f"{path}: could not write PNG")


def read_json(path: Path):
    with require_file(path).open("r", encoding="utf-8") as f:
        return json.load(f)


def project_points(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points (any unit) -> (N, 2) pixels with the (3, 3) intrinsics K.

    Points at z <= 0 raise ValueError (they have no image)."""
    points = np.asarray(points, dtype=np.float64)
    if np.any(points[:, 2] <= 0):
        raise ValueError("cannot project points at or behind the camera (z <= 0)")
    homogeneous = points @ np.asarray(K, dtype=np.float64).T
    return homogeneous[:, :2] / homogeneous[:, 2:3]
