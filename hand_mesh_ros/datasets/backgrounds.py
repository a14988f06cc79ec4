"""Backgrounds for synthetic hands: procedural patterns or random crops of user images.

Every function returns an (H, W, 3) uint8 RGB image and draws all its randomness from the
given ``numpy.random.Generator``, so a seed fixes the pixels.

Procedural: a base layer (a linear two-color gradient or smooth low-frequency color noise)
with, at random, stripes (sinusoidal, any angle and period), random filled shapes
(rectangles, ellipses, polygons, thick lines) and fine pixel noise.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hand_mesh_ros.imageio import IMAGE_EXTENSIONS, read_image

STRIPES_PROBABILITY = 0.35
SHAPES_PROBABILITY = 0.6
MAX_SHAPES = 12
STRIPE_PERIOD_PX = (6.0, 60.0)
FINE_NOISE_STD = (0.0, 8.0)  # grey levels
CROP_FRACTION = (0.3, 1.0)  # side of a folder crop / the largest crop that fits
_CACHE_SIZE = 8  # decoded folder images kept in memory


def _color(rng: np.random.Generator) -> np.ndarray:
    """A random RGB color, 0-255, with a random saturation (grey to fully saturated)."""
    grey = rng.uniform(0.0, 255.0)
    saturated = rng.uniform(0.0, 255.0, size=3)
    return (grey + rng.uniform(0.0, 1.0) * (saturated - grey)).astype(np.float32)


def _gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    angle = rng.uniform(0.0, 2.0 * np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = x * np.cos(angle) + y * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    start, end = _color(rng), _color(rng)
    return start + t[..., None] * (end - start)


def _smooth_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    cells = rng.integers(2, 9, size=2)
    coarse = np.stack([_color(rng) for _ in range(int(cells[0]) * int(cells[1]))])
    coarse = coarse.reshape(int(cells[0]), int(cells[1]), 3)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def _add_stripes(rng: np.random.Generator, image: np.ndarray) -> None:
    height, width = image.shape[:2]
    angle = rng.uniform(0.0, np.pi)
    period = rng.uniform(*STRIPE_PERIOD_PX)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    wave = 0.5 + 0.5 * np.sin((x * np.cos(angle) + y * np.sin(angle)) * (2 * np.pi / period))
    if rng.random() < 0.5:
        wave = (wave > 0.5).astype(np.float32)  # hard-edged stripes
    alpha = rng.uniform(0.3, 1.0)
    color = _color(rng)
    weight = alpha * wave[..., None]
    image *= 1.0 - weight
    image += weight * color


def _add_shapes(rng: np.random.Generator, image: np.ndarray) -> None:
    height, width = image.shape[:2]
    size = max(height, width)
    for _ in range(int(rng.integers(1, MAX_SHAPES + 1))):
        color = tuple(float(c) for c in _color(rng))
        kind = int(rng.integers(4))
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        extent = int(rng.uniform(0.03, 0.35) * size) + 1
        if kind == 0:
            corner = (centre[0] + extent, centre[1] + int(rng.uniform(0.2, 1.5) * extent))
            cv2.rectangle(image, centre, corner, color, thickness=-1)
        elif kind == 1:
            axes = (extent, int(rng.uniform(0.2, 1.0) * extent) + 1)
            cv2.ellipse(image, centre, axes, rng.uniform(0, 180), 0, 360, color, thickness=-1)
        elif kind == 2:
            points = rng.normal(size=(int(rng.integers(3, 7)), 2)) * extent + np.array(centre)
            cv2.fillPoly(image, [points.astype(np.int32)], color)
        else:
            end = rng.integers(0, (width, height))
            thickness = int(rng.integers(1, max(2, size // 20)))
            cv2.line(image, centre, (int(end[0]), int(end[1])), color, thickness)


def procedural_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random procedural (H, W, 3) uint8 RGB background (see the module docstring)."""
    if rng.random() < 0.5:
        image = _gradient(rng, height, width)
    else:
        image = _smooth_noise(rng, height, width)
    image = np.ascontiguousarray(image, dtype=np.float32)
    if rng.random() < STRIPES_PROBABILITY:
        _add_stripes(rng, image)
    if rng.random() < SHAPES_PROBABILITY:
        _add_shapes(rng, image)
    std = rng.uniform(*FINE_NOISE_STD)
    image += rng.normal(0.0, std, size=image.shape).astype(np.float32)
    return image.clip(0, 255).round().astype(np.uint8)


class BackgroundFolder:
    """Random crops of the images in a folder (searched recursively, sorted by path)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"background folder {self.folder} does not exist")
        self.paths = sorted(
            p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not self.paths:
            raise ValueError(f"background folder {self.folder} holds no images")
        self._cache: dict[Path, np.ndarray] = {}

    def _image(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[path] = read_image(path)
        return self._cache[path]

    def crop(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A random crop of a random image, aspect H:W, resized to (H, W, 3) uint8 RGB,
        mirrored left-right with probability 1/2."""
        image = self._image(self.paths[int(rng.integers(len(self.paths)))])
        source_h, source_w = image.shape[:2]
        largest = min(source_h / height, source_w / width)  # scale of the largest crop
        scale = largest * rng.uniform(*CROP_FRACTION)
        crop_h = max(1, min(source_h, round(height * scale)))
        crop_w = max(1, min(source_w, round(width * scale)))
        top = int(rng.integers(source_h - crop_h + 1))
        left = int(rng.integers(source_w - crop_w + 1))
        crop = image[top : top + crop_h, left : left + crop_w]
        resized = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(resized[:, ::-1]) if rng.random() < 0.5 else resized
