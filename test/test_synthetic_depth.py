"""The synthetic aligned depth camera: clean scene depth, the noise model, the occluder, clips."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import assert_close

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.camera import intrinsics_matrix
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.render import rasterize
from hand_mesh_ros.synthetic import SceneConfig, sample_scene_params
from hand_mesh_ros.synthetic.clip import SKIN_RGB, render_clip
from hand_mesh_ros.synthetic.depth_camera import (
    PERFECT_DEPTH,
    DepthNoiseModel,
    OccluderConfig,
    Plane,
    add_occluder,
    apply_depth_noise,
    depth_edges,
    sample_wall,
    scene_depth,
)
from hand_mesh_ros.visualize import shade_mesh

SIZE = (240, 320)  # H, W
K = intrinsics_matrix(300.0, 300.0, 159.5, 119.5, dtype=torch.float64)


@pytest.fixture(scope="module")
def model():
    return load_hand_model("right")


@pytest.fixture(scope="module")
def hand(model):
    """(vertices (V,3) float64 m, image (H,W,3) uint8) of one hand at 0.4-0.5 m."""
    g = torch.Generator().manual_seed(3)
    cfg = SceneConfig(depth_range=(0.4, 0.5), max_tilt_deg=30.0)
    params = sample_scene_params(model, PosePrior.from_model(model), 1, K.float(), SIZE,
                                 generator=g, config=cfg)
    with torch.no_grad():
        vertices = model(**params.as_kwargs()).vertices[0].double()
    shaded, mask = shade_mesh(vertices, model.faces, K, SIZE, SKIN_RGB)
    image = np.full((*SIZE, 3), 128, np.uint8)
    image[mask] = shaded[mask]
    return vertices, image


FRONTAL_WALL = Plane((0.0, 0.0, 1.0), 1.5)


def flat(z: float) -> np.ndarray:
    return np.full(SIZE, z, np.float32)


def test_plane_depth_is_on_the_plane():
    wall = sample_wall(np.random.default_rng(0), distance_range=(1.0, 2.0), max_tilt_deg=30.0)
    z = wall.depth(K.numpy(), SIZE)
    u, v = np.meshgrid(np.arange(SIZE[1]), np.arange(SIZE[0]))
    points = np.stack(((u - 159.5) / 300.0 * z, (v - 119.5) / 300.0 * z, z), -1)
    assert_close(points @ np.asarray(wall.normal), np.full(SIZE, wall.offset), atol=1e-9,
                 what="n . X - offset")
    assert 1.0 <= z[119, 159] <= 2.0 + 1e-6
    assert math.degrees(math.acos(wall.normal[2])) <= 30.0 + 1e-9


def test_clean_depth_is_the_rasterized_hand_over_the_wall(model, hand):
    vertices, _ = hand
    depth = scene_depth(vertices, model.faces, K.numpy(), SIZE, FRONTAL_WALL)
    raster = rasterize(vertices[None], model.faces, K, SIZE)
    mask = raster.mask[0].numpy()
    assert depth.dtype == np.float32 and 0.05 < mask.mean() < 0.5
    assert_close(depth[mask], raster.depth[0].numpy()[mask], atol=1e-6, what="hand depth")
    assert_close(depth[~mask], np.full((~mask).sum(), 1.5), atol=1e-6, what="wall depth")


def test_wall_in_front_of_the_hand_hides_it(model, hand):
    vertices, _ = hand
    depth = scene_depth(vertices, model.faces, K.numpy(), SIZE, Plane((0.0, 0.0, 1.0), 0.3))
    assert_close(depth, flat(0.3), atol=1e-6, what="z-test keeps the nearer wall")


@pytest.mark.parametrize("quantum", [0.0, 0.001])
def test_noise_sigma_grows_with_z_squared(quantum):
    noise = replace(PERFECT_DEPTH, sigma_per_m=0.003, quantum_m=quantum)
    rng = np.random.default_rng(1)
    std = {z: float(apply_depth_noise(flat(z), None, noise, rng).std()) for z in (0.5, 1.0)}
    # quantisation adds its own variance q^2 / 12 (independent of z)
    expected = {z: math.sqrt((0.003 * z * z) ** 2 + quantum**2 / 12) for z in (0.5, 1.0)}
    for z in std:
        assert std[z] == pytest.approx(expected[z], rel=0.03), (z, std[z], expected[z])
    assert std[1.0] / std[0.5] == pytest.approx(expected[1.0] / expected[0.5], rel=0.04)
    assert std[1.0] / std[0.5] > (3.8 if quantum == 0 else 3.4)


def test_default_noise_is_unbiased_and_in_millimetres():
    depth = apply_depth_noise(flat(0.8), None, DepthNoiseModel(), np.random.default_rng(2))
    valid = depth > 0
    millimetres = depth[valid].astype(np.float64) * 1000
    assert_close(millimetres, np.round(millimetres), atol=1e-3, what="1 mm quantisation")
    assert abs(float(depth[valid].mean()) - 0.8) < 1e-4
    assert 0.97 < valid.mean() < 0.995  # the random holes (1 %) and the shifted-in border


def test_pixels_at_depth_edges_are_missing(model, hand):
    vertices, _ = hand
    clean = scene_depth(vertices, model.faces, K.numpy(), SIZE, FRONTAL_WALL)
    noise = replace(PERFECT_DEPTH, edge_band_px=2)
    depth = apply_depth_noise(clean, None, noise, np.random.default_rng(0))
    hand_mask = clean < 1.4
    # pixels of the hand with a wall pixel as 4-neighbour, and wall pixels next to the hand
    outline = np.zeros(SIZE, bool)
    for axis in (0, 1):
        change = np.diff(hand_mask, axis=axis)
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        outline[tuple(lo)] |= change
        outline[tuple(hi)] |= change
    assert outline.sum() > 100
    assert (depth[outline] == 0).all()
    band = depth_edges(clean, noise.edge_jump_m, 2)
    assert (depth[band] == 0).all() and (depth[~band] == clean[~band]).all()
    # 2 px band: every pixel within one more pixel of the outline is missing too
    grown = np.zeros_like(outline)
    grown[1:] |= outline[:-1]
    grown[:-1] |= outline[1:]
    assert (depth[grown] == 0).all()
    interior = hand_mask & ~band
    assert interior.sum() > 0.3 * hand_mask.sum()


def test_misalignment_shifts_the_depth():
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.4, 1.2, SIZE).astype(np.float32)
    depth = apply_depth_noise(clean, None, replace(PERFECT_DEPTH, shift_px=(3, -2)), rng)
    assert_close(depth[:-2, 3:], clean[2:, :-3], atol=0, what="shifted depth")
    assert (depth[:, :3] == 0).all() and (depth[-2:] == 0).all()


def test_dark_and_bright_pixels_drop_out():
    image = np.full((*SIZE, 3), 128, np.uint8)
    image[:, :100] = 10  # dark
    image[:, -100:] = 255  # saturated
    noise = replace(PERFECT_DEPTH, dropout_probability=0.5)
    depth = apply_depth_noise(flat(0.7), image, noise, np.random.default_rng(4))
    for part in (depth[:, :100], depth[:, -100:]):
        assert (part == 0).mean() == pytest.approx(0.5, abs=0.08)
    assert (depth[:, 100:-100] == 0.7).all()


def test_range_limits_and_bad_input():
    noise = replace(PERFECT_DEPTH, min_range_m=0.2, max_range_m=3.0)
    clean = flat(1.0)
    clean[:, :10] = 3.5
    clean[:, 10:20] = 0.1
    clean[0, 30] = np.nan
    depth = apply_depth_noise(clean, None, noise, np.random.default_rng(0))
    assert (depth[:, :20] == 0).all() and depth[0, 30] == 0 and (depth[1:, 20:] == 1.0).all()
    with pytest.raises(ValueError, match="differ in size"):
        apply_depth_noise(clean, np.zeros((10, 10, 3), np.uint8), noise, np.random.default_rng())
    with pytest.raises(ValueError, match="hole_fraction"):
        DepthNoiseModel(hole_fraction=1.5)
    with pytest.raises(ValueError, match="max_range_m"):
        DepthNoiseModel(min_range_m=2.0, max_range_m=1.0)


def test_occluder_is_in_front_of_the_hand_in_colour_and_depth(model, hand):
    vertices, image = hand
    clean = scene_depth(vertices, model.faces, K.numpy(), SIZE, FRONTAL_WALL)
    hand_mask = clean < 1.4
    cfg = OccluderConfig()
    for seed in range(3):
        scene = add_occluder(vertices, model.faces, K.numpy(), image, clean,
                             np.random.default_rng(seed), cfg)
        covered = scene.mask & hand_mask
        assert 0.15 <= scene.coverage <= 0.45
        assert scene.coverage == pytest.approx(covered.sum() / hand_mask.sum())
        # nearer than the hand where it covers it, by at least the smallest gap minus tilt
        gap = clean[covered] - scene.depth[covered]
        assert (gap > 0).all() and np.median(gap) > 0.02
        # its plain colour (shaded blue) replaces the skin
        rgb = scene.image[scene.mask].astype(int)
        assert (rgb[:, 2] > rgb[:, 0]).all() and not (scene.image[scene.mask] ==
                                                       image[scene.mask]).all(-1).any()
        assert (scene.image[~scene.mask] == image[~scene.mask]).all()
        assert (scene.depth[~scene.mask] == clean[~scene.mask]).all()


def test_render_clip_depth(model):
    prior = PosePrior.from_model(model)
    kwargs = dict(seed=5, image_size=SIZE, focal=300.0)
    plain = render_clip(model, prior, 2, **kwargs)
    noisy = render_clip(model, prior, 2, depth_noise=DepthNoiseModel(), **kwargs)
    again = render_clip(model, prior, 2, depth_noise=DepthNoiseModel(), **kwargs)
    for p, n, a in zip(plain.frames, noisy.frames, again.frames, strict=True):
        assert p.depth is None
        assert np.array_equal(p.image, n.image) and np.array_equal(p.keypoints_3d, n.keypoints_3d)
        assert np.array_equal(n.depth, a.depth)  # seeded
        assert n.depth.shape == SIZE and n.depth.dtype == np.float32
        with torch.no_grad():
            vertices = model(**n.truth.as_kwargs()).vertices[0]
        truth = scene_depth(vertices, model.faces, plain.K.numpy(), SIZE, None)
        shifted = np.zeros_like(truth)
        dx, dy = DepthNoiseModel().shift_px
        shifted[dy:, dx:] = truth[: SIZE[0] - dy, : SIZE[1] - dx]
        on_hand = (shifted > 0) & (n.depth > 0)
        assert on_hand.sum() > 0.6 * (shifted > 0).sum()
        error = np.abs(n.depth[on_hand] - shifted[on_hand])
        assert np.median(error) < 0.002 and error.max() < 0.01
