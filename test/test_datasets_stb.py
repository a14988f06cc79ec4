"""STB reader: label .mat files (handPara 3 x 21 x frames, mm) and PNGs written here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.io
from helpers import assert_close
from scipy.spatial.transform import Rotation

from hand_mesh_ros.datasets import STBConfig, STBDataset, open_dataset
from hand_mesh_ros.datasets.files import project_points

FRAMES = 3
SEQUENCES = ("B1Counting", "B1Random")
RVEC = (0.00531, -0.01196, 0.00301)  # STB readme: depth <-> color extrinsics
TVEC_MM = np.array([-24.0381, -0.4563, -1.2326])
BASELINE_MM = 120.054
K_SK = np.array([[607.92271, 0, 314.78337], [0, 607.88192, 236.42484], [0, 0, 1]])
K_BB = np.array([[822.79041, 0, 318.47345], [0, 822.79041, 250.31296], [0, 0, 1]])
# STB order: 0 palm; 1-4 little MCP..tip; 5-8 ring; 9-12 middle; 13-16 index; 17-20 thumb.
STB_THUMB_TIP, STB_LITTLE_MCP, STB_MIDDLE_MCP, STB_INDEX_PIP = 20, 1, 9, 14


def write_stb(root, rng, nested: bool = True):
    """Two evaluation sequences; returns {(seq, suffix): handPara (3, 21, FRAMES) mm}."""
    (root / "labels").mkdir(parents=True)
    labels = {}
    for seq in SEQUENCES:
        for suffix in ("BB", "SK"):
            xyz = rng.uniform(-60, 60, (FRAMES, 21, 3)) + [0.0, 0.0, 450.0]
            para = xyz.transpose(2, 1, 0)  # MATLAB's (xyz, joint, frame)
            scipy.io.savemat(str(root / "labels" / f"{seq}_{suffix}.mat"), {"handPara": para})
            labels[(seq, suffix)] = para
        folder = root / "images" / seq if nested else root / seq
        folder.mkdir(parents=True)
        for frame in range(FRAMES):
            for prefix in ("BB_left_", "BB_right_", "SK_color_"):
                image = np.full((480, 640, 3), frame * 10 + len(prefix), np.uint8)
                cv2.imwrite(str(folder / f"{prefix}{frame}.png"), image)
    return labels


@pytest.fixture(scope="module")
def stb(tmp_path_factory):
    root = tmp_path_factory.mktemp("stb")
    return root, write_stb(root, np.random.default_rng(5))


def expected_core(stb_points_m: np.ndarray) -> np.ndarray:
    """(21, 3) STB order -> core order, wrist = middle MCP + 2 (palm - middle MCP)."""
    order = [0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4]
    core = stb_points_m[order].copy()
    core[0] = stb_points_m[STB_MIDDLE_MCP] + 2.0 * (stb_points_m[0] - stb_points_m[STB_MIDDLE_MCP])
    return core


def test_sk_color_camera_order_units_and_projection(stb):
    root, labels = stb
    dataset = STBDataset(root, "evaluation")
    assert len(dataset) == len(SEQUENCES) * FRAMES
    sample = dataset[FRAMES + 1]  # B1Random, frame 1
    assert sample.source == "stb/B1Random/SK_color_1" and sample.side == "left"
    depth_mm = labels[("B1Random", "SK")][:, :, 1].T  # (21, 3)
    R = Rotation.from_rotvec(RVEC).as_matrix()
    color_mm = np.linalg.solve(R, (depth_mm - TVEC_MM).T).T  # README: R \ (depth - T)
    expected = expected_core(color_mm / 1000.0)
    assert_close(sample.keypoints_3d, expected, atol=1e-12, what="keypoints_3d (m)")
    assert_close(sample.keypoints_3d[4], color_mm[STB_THUMB_TIP] / 1000, atol=1e-12)
    assert_close(sample.keypoints_3d[17], color_mm[STB_LITTLE_MCP] / 1000, atol=1e-12)
    assert_close(sample.keypoints_3d[6], color_mm[STB_INDEX_PIP] / 1000, atol=1e-12)
    assert_close(sample.K, K_SK, atol=0)
    assert_close(project_points(sample.keypoints_3d, sample.K), sample.keypoints_2d, atol=1e-9)
    np.testing.assert_array_equal(sample.visibility, np.ones(21))
    assert sample.mask is None and sample.image.shape == (480, 640, 3)
    assert sample.image[0, 0, 0] == 10 + len("SK_color_")


def test_bumblebee_stereo_views(stb):
    root, labels = stb
    config = STBConfig(cameras=("bb_left", "bb_right"), wrist_visibility=0.5)
    dataset = STBDataset(root, "evaluation", config=config)
    assert len(dataset) == len(SEQUENCES) * FRAMES * 2
    left, right = dataset[0], dataset[1]
    assert (left.source, right.source) == ("stb/B1Counting/BB_left_0", "stb/B1Counting/BB_right_0")
    left_mm = labels[("B1Counting", "BB")][:, :, 0].T
    assert_close(left.keypoints_3d, expected_core(left_mm / 1000.0), atol=1e-12)
    assert_close(
        right.keypoints_3d - left.keypoints_3d,
        np.tile([-0.120054, 0, 0], (21, 1)),
        atol=1e-12,
        what="baseline",
    )
    assert_close(left.K, K_BB, atol=0)
    # rectified stereo: same rows, disparity f * B / z
    assert_close(right.keypoints_2d[:, 1], left.keypoints_2d[:, 1], atol=1e-9)
    disparity = left.keypoints_2d[:, 0] - right.keypoints_2d[:, 0]
    assert_close(disparity, 822.79041 * 0.120054 / left.keypoints_3d[:, 2], atol=1e-9)
    assert left.visibility[0] == 0.5 and left.visibility[1:].min() == 1.0


def test_flat_layout_and_errors(tmp_path, stb):
    write_stb(tmp_path, np.random.default_rng(6), nested=False)
    sample = open_dataset("stb", tmp_path, "evaluation")[0]
    assert sample.source == "stb/B1Counting/SK_color_0"
    root, _ = stb
    with pytest.raises(FileNotFoundError, match="B2Counting_SK.mat"):
        STBDataset(root, "training")
    with pytest.raises(ValueError, match="split"):
        STBDataset(root, "test")
    with pytest.raises(ValueError, match="cameras"):
        STBConfig(cameras=("depth",))
    bad = {"handPara": np.zeros((3, 20, 2))}
    scipy.io.savemat(str(tmp_path / "labels" / "B1Counting_SK.mat"), bad)
    with pytest.raises(ValueError, match="handPara"):
        STBDataset(tmp_path, "evaluation")
