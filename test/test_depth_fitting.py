"""Aligned depth in the fit (fitting/depth.py): reading it, placing and sizing a hand by it,
the depth term's gradient, occluders, bad depth, and a track learning its hand's size -- on
renders of the open hand model with exact depth, and through the real pipeline."""

import math

import numpy as np
import pytest
import torch
from helpers import assert_close

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.camera import intrinsics_matrix, project
from hand_mesh_ros.fitting import RefineConfig, hand_roi, objective, refine
from hand_mesh_ros.fitting.depth import (
    DEPTH_DISAGREES,
    DEPTH_TOO_FEW,
    DEPTH_USED,
    as_depth_tensor,
    crop_depth,
    observe_depth,
)
from hand_mesh_ros.fitting.roi import HandRoi
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.handmodel.size import HandSize
from hand_mesh_ros.handmodel.skeleton import KeypointSkeleton
from hand_mesh_ros.pipeline.tracker import SIZE_MEMORY_FRAMES, Track
from hand_mesh_ros.render import rasterize
from hand_mesh_ros.synthetic import SceneConfig, sample_scene_params

IMAGE_SIZE = (240, 320)
WALL_M = 1.5


@pytest.fixture(scope="module")
def model():
    return load_hand_model("right", dtype=torch.float64)


@pytest.fixture(scope="module")
def prior(model):
    return PosePrior.from_model(model)


@pytest.fixture(scope="module")
def K():
    return intrinsics_matrix(300.0, 300.0, 159.5, 119.5, dtype=torch.float64)


def scene(model, prior, K, n, seed):
    g = torch.Generator().manual_seed(seed)
    cfg = SceneConfig(depth_range=(0.35, 0.6), max_tilt_deg=40.0)
    truth = sample_scene_params(model, prior, n, K, IMAGE_SIZE, generator=g, config=cfg)
    with torch.no_grad():
        out = model(**truth.as_kwargs())
    raster = rasterize(out.vertices, model.faces, K, IMAGE_SIZE)
    depth = torch.where(raster.mask, raster.depth, torch.full_like(raster.depth, WALL_M))
    return truth, out, project(out.keypoints, K), depth.float()


def scaled_about_camera(model, params: HandParams, s: float) -> HandParams:
    """The same image, a hand s times as large and s times as far."""
    x = objective.pack(model, params)
    shape = HandSize(model).scaled(params.shape, torch.full((x.shape[0],), s, dtype=x.dtype))
    x[:, objective._SHAPE] = shape
    x[:, -1] += math.log(s)
    return objective.unpack(model, x)


def test_depth_input_marks_missing_data_and_rejects_another_size():
    raw = np.array([[0.5, 0.0, np.nan], [np.inf, -1.0, 2.0]], dtype=np.float64)
    d = as_depth_tensor(raw, (2, 3), "cpu")
    assert d.dtype == torch.float32
    # read at every pixel (a region of 1 px per cell over the whole 2 x 3 image, padded)
    roi = HandRoi(torch.tensor([[1.0, 1.0]]), torch.tensor([3.0]), 3)
    read = crop_depth(d[None], roi)[0]  # v = 0..2, u = 0..2 (pixel (r, c) at u = c, v = r)
    assert torch.isnan(read[2]).all()  # below the image
    assert read[0, 0] == 0.5 and read[1, 2] == 2.0
    assert torch.isnan(read[[0, 0, 1, 1], [1, 2, 0, 1]]).all()  # 0, NaN, inf, negative
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        as_depth_tensor(raw, (2, 4), "cpu")


def test_the_region_reads_the_depth_at_its_render_pixels():
    h, w = 60, 80
    ramp = torch.arange(w, dtype=torch.float32)[None].expand(h, w) / 100 + 0.5  # u / 100 + 0.5
    roi = hand_roi(torch.tensor([[[20.0, 20.0], [40.0, 40.0]]]), 16)
    patch = crop_depth(ramp[None], roi)
    side = float(roi.side[0])
    u = (float(roi.centre[0, 0]) + ((torch.arange(16) + 0.5) / 16 - 0.5) * side).round()
    assert_close(patch[0, 5], u / 100 + 0.5, atol=1e-6, what="depth along a render row")
    off = hand_roi(torch.tensor([[[-30.0, 5.0], [-5.0, 30.0]]]), 16)  # mostly left of the image
    assert torch.isnan(crop_depth(ramp[None], off)[0, :, 0]).all()


def test_hand_size_scales_the_rest_hand_about_its_root(model):
    size = HandSize(model)
    shape = torch.randn(3, 10, dtype=torch.float64)
    s = torch.tensor([0.8, 1.0, 1.25], dtype=torch.float64)
    scaled = size.scaled(shape, s)
    assert_close(size.relative(scaled) / size.relative(shape), s, atol=1e-9, what="size ratio")
    a, b = model(shape=shape), model(shape=scaled)
    rest_a = a.vertices - a.joints[:, :1]
    rest_b = b.vertices - b.joints[:, :1]
    assert_close(rest_b, s[:, None, None] * rest_a, atol=1e-7, what="rest vertices (m)")


@pytest.mark.parametrize("wrong_size", [0.85, 1.2])
def test_depth_places_and_sizes_a_hand_that_rgb_cannot(model, prior, K, wrong_size):
    """A hand of the wrong size at the matching wrong distance has the true image: keypoints
    cannot tell, the depth does."""
    truth, out, kp2d, depth = scene(model, prior, K, 2, seed=3)
    init = scaled_about_camera(model, truth, wrong_size)
    placed = model(**init.as_kwargs())
    assert_close(project(placed.keypoints, K), kp2d, atol=1e-6, what="same image (px)")
    config = RefineConfig(iterations=10, self_silhouette_weight=0.0)
    rgbd = refine(model, init, K, kp2d, prior=prior, config=config, depth=depth.expand(2, -1, -1))
    assert rgbd.depth.status == (DEPTH_USED, DEPTH_USED)
    assert_close(rgbd.depth.scale, torch.full((2,), 1 / wrong_size), atol=0.01, what="scale")
    truth_root = out.joints[:, 0]
    rgbd_root = model(**rgbd.params.as_kwargs()).joints[:, 0]
    init_error = (placed.joints[:, 0] - truth_root).norm(dim=-1)
    rgbd_error = (rgbd_root - truth_root).norm(dim=-1)
    assert (init_error > 0.05).all()  # 15-20 % of ~0.4 m
    # the observation grid reads the depth at its cell centres and the vertex sits anywhere in
    # its cell: a few mm remain on exact depth (measured: root 2.6 / 3.6 mm, residual 1.0 /
    # 1.1 mm, vertices 4.1 / 4.3 mm; the 64 px face raster before it: < 3, < 1, < 4)
    assert (rgbd_error < 0.005).all(), rgbd_error
    assert (rgbd.depth_residual_mm < 2.0).all()
    vertex_error = (model(**rgbd.params.as_kwargs()).vertices - out.vertices).norm(dim=-1)
    assert (vertex_error.mean(-1) < 0.006).all(), vertex_error.mean(-1)


def test_depth_gradient_and_jacobian_match_finite_differences(model, prior, K):
    truth, out, kp2d, depth = scene(model, prior, K, 1, seed=4)
    init = scaled_about_camera(model, truth, 1.1)
    roi = hand_roi(kp2d, 64)
    vertices = model(**init.as_kwargs()).vertices
    obs = observe_depth(model, vertices, K, roi, depth.double())
    targets = objective.Targets(
        k_roi=roi.intrinsics(K),
        keypoints=roi.to_roi_pixels(kp2d),
        keypoint_scale=torch.full((1, 21), (1 / 21) ** 0.5, dtype=torch.float64),
        mask=None,
        size=64,
        depth=obs.targets,
    )
    weights = objective.Weights(pose_prior=1.0, shape_prior=1.0, silhouette=0.0, sigma=0.05,
                                cull_backfaces=True, depth=10.0)
    skeleton = KeypointSkeleton(model)
    x = objective.pack(model, init).requires_grad_(True)
    loss = objective.total_loss(model, skeleton, x, targets, weights, prior)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    step = 1e-6
    numeric = torch.zeros_like(grad)
    with torch.no_grad():
        for k in range(x.shape[1]):
            e = torch.zeros_like(x)
            e[0, k] = step
            up = objective.total_loss(model, skeleton, x + e, targets, weights, prior)
            down = objective.total_loss(model, skeleton, x - e, targets, weights, prior)
            numeric[0, k] = (up - down).sum() / (2 * step)
    depth_part = objective.residuals(skeleton, x.detach(), targets, weights, None)[:, 42:]
    assert depth_part.abs().max() > 1.0  # the depth term is active (10 % too far)
    assert_close(grad, numeric, atol=1e-4, rtol=1e-5, what="d loss / dx")
    fd = objective.residual_jacobian(skeleton, x.detach(), targets, weights, prior)
    exact = objective.residual_jacobian_autodiff(skeleton, x.detach(), targets, weights, prior)
    assert_close(fd, exact, atol=1e-5, what="depth-term Jacobian")


def test_an_occluder_in_front_of_the_hand_is_ignored(model, prior, K):
    truth, out, kp2d, depth = scene(model, prior, K, 1, seed=5)
    hand = depth[0] < WALL_M
    rows = torch.nonzero(hand)[:, 0]
    cut = int(rows.float().quantile(0.35))  # the top ~35 % of the hand's rows
    occluded = depth.clone()
    block = hand & (torch.arange(IMAGE_SIZE[0])[:, None] <= cut)
    occluded[0][block] = depth[0][block] - 0.05  # a box 5 cm in front
    assert 0.2 < float(block.sum() / hand.sum()) < 0.5
    init = scaled_about_camera(model, truth, 1.15)
    config = RefineConfig(iterations=10, self_silhouette_weight=0.0)
    clear = refine(model, init, K, kp2d, prior=prior, config=config, depth=depth)
    behind = refine(model, init, K, kp2d, prior=prior, config=config, depth=occluded)
    assert behind.depth.status == (DEPTH_USED,)
    truth_root = out.joints[:, 0]
    error_clear = (model(**clear.params.as_kwargs()).joints[:, 0] - truth_root).norm()
    error_behind = (model(**behind.params.as_kwargs()).joints[:, 0] - truth_root).norm()
    assert error_behind < max(1.5 * error_clear, 0.003), (error_clear, error_behind)


def test_a_hand_far_off_in_rgb_is_placed_by_a_depth_it_stands_out_in(model, prior, K):
    """A foreshortened view can put the RGB estimate 1.4-2x too far: beyond SCALE_RANGE the
    depth is still used where the hand stands out in front of its surroundings."""
    truth, out, kp2d, depth = scene(model, prior, K, 1, seed=3)
    init = scaled_about_camera(model, truth, 1.9)
    config = RefineConfig(iterations=10, self_silhouette_weight=0.0)
    fit = refine(model, init, K, kp2d, prior=prior, config=config, depth=depth)
    assert fit.depth.status == (DEPTH_USED,)
    assert fit.depth.scale.item() == pytest.approx(1 / 1.9, rel=0.03)
    root = model(**fit.params.as_kwargs()).joints[:, 0]
    assert (root - out.joints[:, 0]).norm() < 0.01
    # the same depth with the hand's pixels replaced by the wall behind it (not the hand): no
    # step around it, refused
    flat = torch.full_like(depth, float(depth[0][depth[0] < WALL_M].median()))
    refused = refine(model, init, K, kp2d, prior=prior, config=config, depth=flat)
    assert refused.depth.status == (DEPTH_DISAGREES,)


def test_depth_that_is_missing_or_not_the_hand_is_refused(model, prior, K):
    truth, out, kp2d, depth = scene(model, prior, K, 1, seed=6)
    config = RefineConfig(iterations=3, self_silhouette_weight=0.0)
    holes = torch.full_like(depth, math.nan)
    none = refine(model, truth, K, kp2d, prior=prior, config=config, depth=holes)
    assert none.depth.status == (DEPTH_TOO_FEW,) and not none.depth.used.any()
    wall = torch.full_like(depth, WALL_M)  # not aligned: the hand is not in it
    refused = refine(model, truth, K, kp2d, prior=prior, config=config, depth=wall)
    assert refused.depth.status == (DEPTH_DISAGREES,)
    rgb = refine(model, truth, K, kp2d, prior=prior, config=config)
    assert_close(refused.params.transl, rgb.params.transl, atol=1e-9, what="RGB-only fit")


def test_a_track_learns_its_hand_shape_from_depth_frames():
    track = Track(0, "right", np.zeros((21, 2)))
    shapes = [np.full(10, v) for v in (1.0, 2.0, 3.0)]
    for shape in shapes:
        track.learn_shape(shape)
    assert_close(track.learned_shape, np.full(10, 2.0), atol=1e-12, what="mean shape")
    for _ in range(5 * SIZE_MEMORY_FRAMES):
        track.learn_shape(np.full(10, 5.0))
    assert abs(track.learned_shape[0] - 5.0) < 0.01  # recent frames weigh most
