"""Skin-like per-vertex colors for synthetic hands: albedo texture and Lambert lighting.

Albedo: a base skin tone drawn along a light-to-dark chain of reference tones, jittered per
channel, times a low-frequency variation field: a sum of NUM_WAVES random plane waves over
the REST-pose vertex positions (wavelengths WAVELENGTH_M), so the blotches stay attached to
the skin when the hand moves. Lighting: ambient + diffuse * max(0, n . l) with one
directional light from the camera's side of the hand and a slightly tinted light color;
normals are turned to face the camera (two-sided), so a model's face winding does not matter.
Colors are linear RGB in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch

# Reference skin tones, RGB 0-255, light to dark.
SKIN_TONES = (
    (243, 206, 180),
    (228, 180, 150),
    (205, 148, 115),
    (170, 115, 85),
    (125, 82, 60),
    (85, 55, 40),
)
TONE_JITTER = 0.03  # relative std of each channel of the base tone
NUM_WAVES = 4
WAVELENGTH_M = (0.02, 0.10)  # metres, of the variation field's plane waves
VARIATION_AMPLITUDE = (0.03, 0.12)  # relative albedo change (std of the field)
AMBIENT = (0.3, 0.6)  # ambient share of the light
LIGHT_INTENSITY = (0.8, 1.2)  # diffuse strength relative to 1 - ambient
LIGHT_TINT = 0.05  # relative std of each channel of the light color
MIN_LIGHT_FRONT = 0.3  # the light direction's minimum component towards the camera


def skin_albedo(rng: np.random.Generator, rest_vertices: np.ndarray) -> np.ndarray:
    """(V, 3) rest-pose vertices, metres -> (V, 3) float32 albedo in [0, 1]."""
    position = rng.uniform(0.0, len(SKIN_TONES) - 1.0)
    low = int(np.floor(position))
    high = min(low + 1, len(SKIN_TONES) - 1)
    frac = position - low
    tones = np.asarray(SKIN_TONES, dtype=np.float64) / 255.0
    base = (1.0 - frac) * tones[low] + frac * tones[high]
    base = base * (1.0 + TONE_JITTER * rng.normal(size=3))
    directions = rng.normal(size=(NUM_WAVES, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavenumber = 2.0 * np.pi / rng.uniform(*WAVELENGTH_M, size=NUM_WAVES)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=NUM_WAVES)
    waves = np.sin(rest_vertices @ (directions * wavenumber[:, None]).T + phase)  # (V, waves)
    field = waves.sum(axis=1) * np.sqrt(2.0 / NUM_WAVES)  # unit std
    amplitude = rng.uniform(*VARIATION_AMPLITUDE)
    redness = 1.0 + 0.5 * np.array([1.0, -0.5, -0.5])  # blotches are redder, not only darker
    albedo = base * (1.0 + amplitude * field[:, None] * redness)
    return albedo.clip(0.0, 1.0).astype(np.float32)


def random_light(rng: np.random.Generator) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Direction towards the light (3,) unit, camera frame (from the camera's side: z < 0);
    ambient share; diffuse strength; light color (3,)."""
    direction = np.array([rng.normal(0, 0.7), rng.normal(0, 0.7), -rng.uniform(MIN_LIGHT_FRONT, 1)])
    direction /= np.linalg.norm(direction)
    ambient = rng.uniform(*AMBIENT)
    diffuse = (1.0 - ambient) * rng.uniform(*LIGHT_INTENSITY)
    tint = 1.0 + LIGHT_TINT * rng.normal(size=3)
    return direction, ambient, diffuse, tint


def shade(
    vertices: torch.Tensor,
    normals: torch.Tensor,
    albedo: np.ndarray,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Lambert-lit vertex colors.

    vertices, normals: (V, 3) camera frame (metres; unit normals); albedo: (V, 3) in [0, 1].
    Returns (V, 3) colors in [0, 1], dtype of ``vertices``.
    """
    direction, ambient, diffuse, tint = random_light(rng)
    dtype, device = vertices.dtype, vertices.device
    towards_camera = -vertices
    facing = torch.sign((normals * towards_camera).sum(dim=-1, keepdim=True))
    facing = torch.where(facing == 0, torch.ones_like(facing), facing)
    light = torch.as_tensor(direction, dtype=dtype, device=device)
    lambert = ((normals * facing) @ light).clamp_min(0.0)
    intensity = ambient + diffuse * lambert
    color = torch.as_tensor(albedo, dtype=dtype, device=device) * intensity[:, None]
    return (color * torch.as_tensor(tint, dtype=dtype, device=device)).clamp(0.0, 1.0)
