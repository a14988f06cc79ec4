"""Synthetic generator (determinism, annotation consistency, skin, mirroring, background
folders) and the on-disk format round trip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from helpers import assert_close

from hand_mesh_ros.datasets import (
    HandSample,
    SyntheticConfig,
    SyntheticDataset,
    SyntheticGenerator,
    iter_synthetic,
    open_dataset,
    read_dataset,
    write_dataset,
)
from hand_mesh_ros.datasets.files import project_points
from hand_mesh_ros.handmodel.model import load_hand_model

SIZE = (96, 128)  # (H, W): small and non-square to catch axis mix-ups


@pytest.fixture(scope="module")
def generator():
    return SyntheticGenerator(SyntheticConfig(image_size=SIZE))


@pytest.fixture(scope="module")
def samples(generator):
    return [generator.sample(11, i) for i in range(6)]


def _params(sample: HandSample) -> dict[str, torch.Tensor]:
    names = ("pose", "shape", "global_orient", "transl")
    return {k: torch.as_tensor(getattr(sample, k), dtype=torch.float32)[None] for k in names}


def test_same_seed_same_pixels_other_seed_other_pixels(generator, samples):
    again = SyntheticGenerator(SyntheticConfig(image_size=SIZE)).sample(11, 2)
    np.testing.assert_array_equal(again.image, samples[2].image)
    np.testing.assert_array_equal(again.mask, samples[2].mask)
    np.testing.assert_array_equal(again.keypoints_3d, samples[2].keypoints_3d)
    assert not np.array_equal(generator.sample(12, 2).image, samples[2].image)
    assert not np.array_equal(samples[1].image, samples[2].image)
    streamed = list(iter_synthetic(SyntheticConfig(image_size=SIZE), 11, 3, generator=generator))
    dataset = SyntheticDataset(SyntheticConfig(image_size=SIZE), 11, 3, generator=generator)
    assert len(dataset) == 3
    np.testing.assert_array_equal(streamed[1].image, dataset[1].image)
    np.testing.assert_array_equal(streamed[1].image, samples[1].image)
    with pytest.raises(IndexError):
        dataset[3]


def test_annotations_agree_with_camera_model_and_mask(generator, samples):
    model = generator.model
    for sample in samples:
        assert sample.image.shape == (*SIZE, 3) and sample.mask.shape == SIZE
        assert sample.side == "right" and sample.source.startswith("synthetic/11/")
        assert_close(project_points(sample.keypoints_3d, sample.K), sample.keypoints_2d)
        with torch.no_grad():
            out = model(**_params(sample))
        assert_close(out.keypoints[0], sample.keypoints_3d, atol=1e-5, what="params -> 3D")
        lo, hi = sample.keypoints_3d[:, 2].min(), sample.keypoints_3d[:, 2].max()
        assert 0.3 < lo and hi < 1.0  # metres around depth_range (0.45, 0.9)
        inside = (sample.keypoints_2d >= -0.5).all(1) & (sample.keypoints_2d[:, 0] <= 127.5)
        inside &= sample.keypoints_2d[:, 1] <= 95.5
        np.testing.assert_array_equal(sample.visibility, inside.astype(float))
        # the middle MCP is centred inside the image and covered by the silhouette
        u, v = np.round(sample.keypoints_2d[9]).astype(int)
        assert sample.mask[max(v - 3, 0) : v + 4, max(u - 3, 0) : u + 4].any()
        assert 30 < sample.mask.sum() < 0.6 * SIZE[0] * SIZE[1]


def test_hand_pixels_are_skin_colored(samples):
    for sample in samples:
        mean = sample.image[sample.mask].astype(float).mean(axis=0)
        assert mean[0] > mean[1] > mean[2] - 3, f"{sample.source}: mean hand RGB {mean}"


def test_left_hands_are_mirrored_right_hands():
    right = SyntheticGenerator(SyntheticConfig(image_size=SIZE)).sample(4, 0)
    left_gen = SyntheticGenerator(SyntheticConfig(image_size=SIZE, left_probability=1.0))
    left = left_gen.sample(4, 0)
    assert left.side == "left"
    np.testing.assert_array_equal(left.image, right.image[:, ::-1])
    np.testing.assert_array_equal(left.mask, right.mask[:, ::-1])
    assert_close(project_points(left.keypoints_3d, left.K), left.keypoints_2d, atol=1e-9)
    with torch.no_grad():
        out = load_hand_model("left")(**_params(left))
    assert_close(out.keypoints[0], left.keypoints_3d, atol=1e-5, what="left model")


def test_background_folder_crops(tmp_path):
    colors = ((200, 30, 30), (20, 180, 40))
    for number, color in enumerate(colors):
        image = np.zeros((150, 300, 3), np.uint8) + np.array(color[::-1], np.uint8)  # BGR
        cv2.imwrite(str(tmp_path / f"bg{number}.png"), image)
    config = SyntheticConfig(
        image_size=SIZE,
        background_dir=str(tmp_path),
        background_image_probability=1.0,
        noise_std=0.0,
    )
    seen = set()
    for sample in iter_synthetic(config, 3, 6):
        background = sample.image[~sample.mask]
        assert (background == background[0]).all()
        assert tuple(background[0]) in colors
        seen.add(tuple(background[0]))
    assert len(seen) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        SyntheticGenerator(SyntheticConfig(background_dir=str(tmp_path / "empty")))
    with pytest.raises(FileNotFoundError, match="missing"):
        SyntheticGenerator(SyntheticConfig(background_dir=str(tmp_path / "missing")))


def test_config_validation():
    with pytest.raises(ValueError, match="depth_range"):
        SyntheticConfig(depth_range=(0.9, 0.4))
    with pytest.raises(ValueError, match="left_probability"):
        SyntheticConfig(left_probability=1.5)
    with pytest.raises(ValueError, match="image_size"):
        SyntheticConfig(image_size=(8, 8))
    with pytest.raises(ValueError, match="right-hand"):
        SyntheticGenerator(SyntheticConfig(), model=load_hand_model("left"))


def test_disk_round_trip_is_exact(tmp_path, samples):
    bare = HandSample(
        image=samples[0].image.copy(),
        K=np.eye(3) * 300.0 + np.diag([0, 0, -299.0]),
        keypoints_2d=samples[0].keypoints_2d + 1e-7,
        visibility=np.linspace(0, 1, 21),
        keypoints_3d=None,
        mask=None,
        side="left",
        source="stb/B1Random/SK_color_7",
    )
    written = [*samples[:3], bare]
    assert write_dataset(tmp_path / "set", written) == 4
    back = list(read_dataset(tmp_path / "set"))
    assert len(back) == 4
    for original, read in zip(written, back, strict=True):
        np.testing.assert_array_equal(read.image, original.image)
        for name in (
            "mask",
            "K",
            "keypoints_2d",
            "visibility",
            "keypoints_3d",
            "pose",
            "shape",
            "global_orient",
            "transl",
        ):
            a, b = getattr(original, name), getattr(read, name)
            assert (a is None) == (b is None), name
            if a is not None:
                np.testing.assert_array_equal(b, a, err_msg=name)
        assert (read.side, read.source) == (original.side, original.source)
    with pytest.raises(FileExistsError):
        write_dataset(tmp_path / "set", written)
    assert len(open_dataset("synthetic-dir", tmp_path, "set")) == 4
    with pytest.raises(ValueError, match="unknown dataset kind"):
        open_dataset("coco", tmp_path)
