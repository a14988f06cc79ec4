"""Pinhole projection and the 8-d crop camera."""

import math

import torch
from helpers import assert_close

from hand_mesh_ros import camera


def test_project_backproject_round_trip():
    K = camera.intrinsics_matrix(600.0, 590.0, 320.0, 240.0, dtype=torch.float64)
    pts = torch.rand(2, 50, 3, dtype=torch.float64) * torch.tensor([0.4, 0.3, 1.0]) + torch.tensor(
        [-0.2, -0.15, 0.3]
    )
    px = camera.project(pts, K)
    assert_close(px[..., 0], 600.0 * pts[..., 0] / pts[..., 2] + 320.0, atol=1e-9)
    assert_close(camera.backproject(px, pts[..., 2], K), pts, atol=1e-12)
    # batched K gives the same as a shared K
    assert_close(camera.project(pts, K.expand(2, 3, 3)), px, atol=0)


def test_crop_camera_zeros_centre_anchor_at_reference_depth():
    size = camera.CROP_SIZE
    anchor = torch.tensor([[0.01, -0.08, 0.0]], dtype=torch.float64)
    pts = anchor[:, None, :] + torch.tensor(
        [[[0.0, 0.0, 0.0], [0.0, -0.1, 0.0]]], dtype=torch.float64
    )
    cam = torch.zeros(1, 8, dtype=torch.float64)
    out = camera.apply_crop_camera(pts, anchor, cam)
    assert_close(out[0, 0], [0.0, 0.0, camera.CROP_REF_DEPTH], atol=1e-12)
    px = camera.project(out, camera.crop_intrinsics(size, dtype=torch.float64))
    assert_close(px[0, 0], [(size - 1) / 2, (size - 1) / 2], atol=1e-9)
    # a 0.1 m offset spans CROP_FOCAL * 0.1 / depth pixels
    assert math.isclose(
        (px[0, 0, 1] - px[0, 1, 1]).item(),
        camera.CROP_FOCAL * 0.1 / camera.CROP_REF_DEPTH,
        rel_tol=1e-9,
    )


def test_crop_camera_offsets_scale_and_rotation():
    anchor = torch.zeros(1, 3, dtype=torch.float64)
    pts = torch.tensor([[[0.0, 0.0, 0.0], [0.05, 0.0, 0.0]]], dtype=torch.float64)
    cam = torch.zeros(1, 8, dtype=torch.float64)
    cam[0, 5], cam[0, 6] = 0.5, -0.25  # anchor at centre + (0.5, -0.25) * size / 2
    cam[0, 4] = math.log(2.0)
    cam[0, 7] = math.log(0.5)
    # 90 degrees about z: quaternion (cos 45, 0, 0, sin 45) = identity + offset
    cam[0, 0] = math.cos(math.pi / 4) - 1.0
    cam[0, 3] = math.sin(math.pi / 4)
    out = camera.apply_crop_camera(pts, anchor, cam)
    px = camera.project(out, camera.crop_intrinsics(dtype=torch.float64))
    c = (camera.CROP_SIZE - 1) / 2
    assert_close(px[0, 0], [c + 0.5 * 112, c - 0.25 * 112], atol=1e-9)
    assert_close(out[0, 0, 2], camera.CROP_REF_DEPTH * 0.5, atol=1e-12)
    # x offset of 0.05 m, scaled by 2, rotated onto +y
    assert_close(out[0, 1] - out[0, 0], [0.0, 0.1, 0.0], atol=1e-12)


def test_crop_camera_rejects_bad_shape():
    try:
        camera.crop_camera_parts(torch.zeros(2, 7))
    except ValueError as err:
        assert "(B, 8)" in str(err)
    else:
        raise AssertionError("expected ValueError")
