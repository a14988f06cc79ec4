"""A detected hand's side from an aligned depth image (pipeline/depth_side.py): its 2D
keypoints lifted by the depth show the chirality, on renders of the open hand model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.camera import intrinsics_matrix, pixel_rays, project
from hand_mesh_ros.chirality import CHIRALITY_MIN, chirality
from hand_mesh_ros.detect.types import Detection2D
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.pipeline.depth_side import (
    MIN_LIFTED,
    _row_nanmedians,
    lift_keypoints,
    side_from_depth,
)
from hand_mesh_ros.render import rasterize

IMAGE_SIZE = (240, 320)
WALL_M = 1.2
K = intrinsics_matrix(300.0, 300.0, 159.5, 119.5, dtype=torch.float64)


def _view(side: str, rotation):
    """A relaxed hand of ``side`` 0.45 m away, rotated about its wrist: its depth image over a
    wall (H,W) metres and its (21,2) keypoints."""
    model = load_hand_model(side, dtype=torch.float64)
    pose = PosePrior.from_model(model).mean_pose()[None].double()
    orient = torch.tensor([rotation], dtype=torch.float64)
    out = model(pose=pose, global_orient=orient)
    shift = torch.tensor([0.0, 0.0, 0.45]) - out.keypoints[0, 9]
    vertices, keypoints = out.vertices + shift, out.keypoints + shift
    raster = rasterize(vertices, model.faces, K, IMAGE_SIZE)
    depth = torch.where(raster.mask, raster.depth, torch.full_like(raster.depth, WALL_M))
    return depth[0].numpy(), project(keypoints, K)[0].numpy(), keypoints[0].numpy()


def _detection(keypoints, side):
    return Detection2D(keypoints, np.ones(21), side, 0.9, None, (0.0, 0.0, 1.0, 1.0))


@pytest.mark.parametrize("rotation", [(0.0, 0.0, 0.0), (0.0, 3.1, 0.0), (0.5, -0.6, 0.4)])
@pytest.mark.parametrize("side", ["right", "left"])
def test_the_lifted_keypoints_show_the_hands_side_whatever_the_label(side, rotation):
    depth, kp2d, kp3d = _view(side, rotation)
    lifted = lift_keypoints(depth, kp2d, K.numpy())
    assert lifted is not None
    # the lifted keypoints are the visible surface: within a finger's thickness of the joints
    assert np.median(np.abs(lifted[:, 2] - kp3d[:, 2])) < 0.02
    c = chirality(lifted)
    assert (c > CHIRALITY_MIN) if side == "right" else (c < -CHIRALITY_MIN), c
    other = "left" if side == "right" else "right"
    assert side_from_depth(_detection(kp2d, other), depth, K.numpy(), mirrored=False).side == side
    kept = _detection(kp2d, side)
    assert side_from_depth(kept, depth, K.numpy(), mirrored=False) is kept
    # a mirrored (selfie) image of this hand is the other physical hand
    assert side_from_depth(kept, depth, K.numpy(), mirrored=True).side == other


def test_without_enough_depth_on_the_hand_the_label_stands():
    depth, kp2d, _ = _view("right", (0.0, 0.0, 0.0))
    holes = np.full_like(depth, np.nan)
    assert lift_keypoints(holes, kp2d, K.numpy()) is None
    sparse = depth.copy()  # depth left at fewer than MIN_LIFTED keypoints
    for u, v in np.round(kp2d[: 21 - MIN_LIFTED + 2]).astype(int):
        sparse[max(v - 3, 0) : v + 4, max(u - 3, 0) : u + 4] = 0.0
    assert lift_keypoints(sparse, kp2d, K.numpy()) is None
    label = _detection(kp2d, "left")
    assert side_from_depth(label, holes, K.numpy(), mirrored=False) is label
    wall = np.full_like(depth, WALL_M)  # a flat surface shows no chirality: the label stands
    assert side_from_depth(label, wall, K.numpy(), mirrored=False) is label


def test_the_estimator_takes_the_depths_side_for_the_hands_it_detects():
    pytest.importorskip("mediapipe", reason="mediapipe is not installed")
    from hand_mesh_ros.pipeline import CameraIntrinsics, EstimatorConfig, HandMeshEstimator
    from hand_mesh_ros.pipeline.estimator import Detections

    depth, kp2d, _ = _view("right", (0.5, -0.6, 0.4))
    found = Detections((_detection(kp2d, "left"),), 0.0)
    camera = CameraIntrinsics.from_matrix(K)
    for weight, expected in ((10.0, "right"), (0.0, "left")):  # depth_weight 0 ignores depth
        estimator = HandMeshEstimator(EstimatorConfig(device="cpu", depth_weight=weight))
        try:
            for d in (depth, torch.as_tensor(depth)):
                assert estimator.sides_from_depth(found, d, camera).hands[0].side == expected
        finally:
            estimator.close()


def test_pixel_rays_invert_a_pinhole_camera_with_skew():
    k = np.array([[512.0, 3.5, 301.2], [0.0, 498.0, 243.7], [0.0, 0.0, 1.0]])
    points = np.array([[0.12, -0.05, 0.4], [-0.2, 0.1, 0.9], [0.0, 0.0, 0.5]])
    pixels = (points @ k.T)[:, :2] / points[:, 2:]
    np.testing.assert_allclose(pixel_rays(pixels, k) * points[:, 2:], points, atol=1e-12)


def test_row_medians_of_the_finite_values_are_numpys_nanmedian():
    rng = np.random.default_rng(3)
    for holes in (0.0, 0.3, 0.9):
        values = rng.random((21, 25))
        values[rng.random(values.shape) < holes] = np.nan
        values[0] = np.nan  # a keypoint without any depth
        values[1, 1:] = np.nan  # ... with one
        expected = np.full(21, np.nan)
        some = np.isfinite(values).any(1)
        expected[some] = np.nanmedian(values[some], axis=1)
        np.testing.assert_allclose(_row_nanmedians(values), expected, rtol=0, atol=0)
