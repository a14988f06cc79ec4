"""FreiHAND reader: JSON lists and JPEGs written here in the original layout; MANO parameters
with a MANO-format model; the version-offset convention checked on real FreiHAND files."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest
import torch
from helpers import SHARED_DATA, assert_close
from synthetic_mano import synthetic_mano_arrays

from hand_mesh_ros.datasets import FreiHANDConfig, FreiHANDDataset, open_dataset
from hand_mesh_ros.datasets.files import project_points, read_rgb
from hand_mesh_ros.datasets.freihand import NUM_TRAINING_BASE, VERSIONS, image_index
from hand_mesh_ros.handmodel.model import load_hand_model

N = 3
SIZE = 224


def write_freihand(root, rng, split="training", mano=None):
    """N samples: xyz (m), K, optional mano; gs + hom images; masks for training."""
    xyz = np.c_[rng.uniform(-0.05, 0.05, (N * 21, 2)), rng.uniform(0.5, 0.8, N * 21)]
    xyz = xyz.reshape(N, 21, 3)
    K = np.array([[[f, 0, 112.0], [0, f, 112.0], [0, 0, 1]] for f in rng.uniform(400, 600, N)])
    (root / f"{split}_xyz.json").write_text(json.dumps(xyz.tolist()))
    (root / f"{split}_K.json").write_text(json.dumps(K.tolist()))
    if mano is not None:
        (root / f"{split}_mano.json").write_text(json.dumps(mano.tolist()))
    (root / split / "rgb").mkdir(parents=True)
    versions = VERSIONS[:2] if split == "training" else VERSIONS[:1]
    for base in range(N):
        for number, version in enumerate(versions):
            image = np.full((SIZE, SIZE, 3), 40 * number + base, np.uint8)
            index = image_index(base, version)
            cv2.imwrite(str(root / split / "rgb" / f"{index:08d}.jpg"), image)
    if split == "training":
        (root / "training" / "mask").mkdir()
        for base in range(N):
            mask = np.zeros((SIZE, SIZE), np.uint8)
            mask[20 + base * 10 : 80, 30:90] = 255
            cv2.imwrite(str(root / "training" / "mask" / f"{base:08d}.jpg"), mask)
    return xyz, K


@pytest.fixture(scope="module")
def freihand(tmp_path_factory):
    root = tmp_path_factory.mktemp("freihand")
    xyz, K = write_freihand(root, np.random.default_rng(7))
    return root, xyz, K


def test_keypoints_K_projection_masks_and_versions(freihand):
    root, xyz, K = freihand
    dataset = FreiHANDDataset(root, config=FreiHANDConfig(versions=("gs", "hom")))
    assert len(dataset) == 2 * N
    for index, sample in enumerate(dataset):
        version, base = divmod(index, N)
        assert sample.source == f"freihand/training/{base + NUM_TRAINING_BASE * version:08d}"
        assert sample.side == "right"
        assert_close(sample.keypoints_3d, xyz[base], atol=0, what="xyz (metres, core order)")
        assert_close(sample.K, K[base], atol=0)
        assert_close(project_points(sample.keypoints_3d, sample.K), sample.keypoints_2d)
        np.testing.assert_array_equal(sample.visibility, np.ones(21))
        assert abs(int(sample.image[5, 5, 0]) - (40 * version + base)) <= 2  # JPEG
        expected_mask = np.zeros((SIZE, SIZE), bool)
        expected_mask[20 + base * 10 : 80, 30:90] = True
        assert (sample.mask != expected_mask).sum() < 20  # JPEG edges, thresholded
        assert sample.pose is None


def test_evaluation_split_and_errors(tmp_path, freihand):
    xyz, _ = write_freihand(tmp_path, np.random.default_rng(8), split="evaluation")
    dataset = open_dataset("freihand", tmp_path, "evaluation")
    sample = dataset[N - 1]
    assert sample.mask is None and sample.source == f"freihand/evaluation/{N - 1:08d}"
    assert_close(sample.keypoints_3d, xyz[N - 1], atol=0)
    with pytest.raises(ValueError, match="'gs'"):
        FreiHANDDataset(tmp_path, "evaluation", config=FreiHANDConfig(versions=("hom",)))
    with pytest.raises(FileNotFoundError, match="training_xyz.json"):
        FreiHANDDataset(tmp_path, "training")
    with pytest.raises(IndexError):
        dataset[N]
    with pytest.raises(ValueError, match="versions"):
        FreiHANDConfig(versions=("color",))
    (tmp_path / "evaluation_K.json").write_text(json.dumps([np.eye(3).tolist()] * (N - 1)))
    with pytest.raises(ValueError, match=r"\(N, 3, 3\)"):
        FreiHANDDataset(tmp_path, "evaluation")


@pytest.fixture(scope="module")
def mano_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("mano") / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(synthetic_mano_arrays(), protocol=2))
    return path


@pytest.mark.parametrize("flat_hand_mean", [False, True])
def test_mano_parameters_reproduce_the_annotated_keypoints(tmp_path, mano_path, flat_hand_mean):
    """theta = [global 3 | pose 45 relative to the mean | shape 10 | uv_root 2 | scale 1]."""
    truth_model = load_hand_model("right", mano_path, dtype=torch.float64)  # MANO: mean added
    assert not truth_model.flat_hand_mean
    g = torch.Generator().manual_seed(0)
    orient, pose = 0.5 * torch.randn(N, 3, generator=g), 0.3 * torch.randn(N, 45, generator=g)
    shape, transl = torch.randn(N, 10, generator=g), torch.tensor([[0.02, -0.01, 0.6]] * N)
    xyz = truth_model(pose=pose, shape=shape, global_orient=orient, transl=transl).keypoints
    theta = torch.cat((orient, pose, shape, torch.full((N, 3), 7.0)), dim=1)[:, None]  # 1 x 61
    root = tmp_path / "fh"
    root.mkdir()
    write_freihand(root, np.random.default_rng(9), mano=theta.numpy())
    (root / "training_xyz.json").write_text(json.dumps(xyz.tolist()))
    model = load_hand_model("right", mano_path, flat_hand_mean=flat_hand_mean, dtype=torch.float64)
    dataset = FreiHANDDataset(root, mano_model=model, config=FreiHANDConfig(read_masks=False))
    for base in range(N):
        sample = dataset[base]
        assert_close(sample.transl, transl[base], atol=1e-9, what="transl")
        params = {
            k: torch.as_tensor(getattr(sample, k))[None]
            for k in ("pose", "shape", "global_orient", "transl")
        }
        assert_close(model(**params).keypoints[0], xyz[base], atol=1e-9, what="keypoints")
    with pytest.raises(ValueError, match="MANO"):
        FreiHANDDataset(root, mano_model=load_hand_model("right"))[0]


def test_real_freihand_versions_share_annotations():
    """In shared/data/hands the four versions of one FreiHAND sample (file index = base +
    32560 k) carry identical 2D keypoints: the reader's file-index rule names exactly them."""
    path = SHARED_DATA / "hands" / "annotations.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not available")
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups: dict[str, list[int]] = {}
    for entry in entries:
        if entry["dataset"] == "FreiHAND":
            key = json.dumps(entry["kp2d"])
            groups.setdefault(key, []).append(int(entry["image"].split("/")[-1][:8]))
    assert len(groups) == 2
    for indices in groups.values():
        base = min(indices)
        assert sorted(indices) == [image_index(base, v) for v in VERSIONS]
        image = read_rgb(SHARED_DATA / "hands" / "images" / "FreiHAND" / f"{base:08d}.jpg")
        assert image.shape == (SIZE, SIZE, 3)
