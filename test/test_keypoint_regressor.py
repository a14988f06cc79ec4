"""Keypoint -> mesh regressor: shipped weights, synthetic data, loading errors, training."""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch
from helpers import REPO_ROOT, assert_close

from hand_mesh_ros.camera import crop_intrinsics, intrinsics_matrix, project
from hand_mesh_ros.fitting.roi import hand_roi
from hand_mesh_ros.hand_params import THETA_DIM
from hand_mesh_ros.handmodel.model import load_hand_model
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.nets.keypoint_regressor import (
    KeypointRegressorConfig,
    KeypointSkeleton,
    build_keypoint_regressor,
    crop_view_rotation,
    load_keypoint_regressor,
    save_keypoint_regressor,
)
from hand_mesh_ros.training import regressor_trainer as trainer
from hand_mesh_ros.training.keypoint_data import (
    KeypointDataConfig,
    fit_crop_anchor,
    sample_keypoint_batch,
)

TEST_SEED = 20240  # held-out batch, disjoint from the training stream (seed 0)
TEST_BATCH = 512
# Measured with the shipped weights on this batch (training noise / zero noise): PA-MPJPE
# 8.5 / 8.2 mm vs 19.5 mm for the mean pose, root-relative MPJPE 15.1 / 13.6 mm vs 25.4 mm
# (baseline with the true rotation), reprojection 6.7 / 6.0 px vs 20.8 px. Thresholds below
# leave a margin of ~3-4 mm / ~2.5 px.
PA_MARGIN_MM = 7.0  # regressor must beat the mean-pose baseline by at least this
MAX_PA_MPJPE_MM = 11.0
MAX_REPROJ_PX = 9.0


@pytest.fixture(autouse=True)
def _one_thread():
    """Small CPU ops are much faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _model_and_prior():
    model = load_hand_model("right")
    return model, PosePrior.from_model(model)


@functools.cache
def _shipped():
    return load_keypoint_regressor()


def _batch(n: int, seed: int, noise_scale: float = 1.0):
    model, prior = _model_and_prior()
    generator = torch.Generator().manual_seed(seed)
    return sample_keypoint_batch(
        KeypointSkeleton(model), prior, n, generator=generator,
        config=KeypointDataConfig(noise_scale=noise_scale),
    )


def test_skeleton_matches_hand_model_keypoints():
    model, prior = _model_and_prior()
    pose = prior.sample(8, generator=torch.Generator().manual_seed(1)).float()
    shape = torch.randn(8, 10)
    assert_close(KeypointSkeleton(model)(pose, shape), model(pose=pose, shape=shape).keypoints,
                 atol=1e-6, what="skeleton keypoints")


def test_crop_view_rotation_points_the_axis_through_the_centre():
    k = intrinsics_matrix(600.0, 600.0, 320.0, 240.0)
    centre = torch.tensor([[320.0, 240.0], [600.0, 100.0], [10.0, 470.0]])
    rot = crop_view_rotation(centre, k)
    axis = rot @ torch.tensor([0.0, 0.0, 1.0])  # (3, 3): crop optical axis in the camera
    assert_close(project(axis[:, None], k)[:, 0], centre, atol=1e-3, what="axis pixel")
    assert_close(rot[0], torch.eye(3), atol=1e-6, what="on-axis rotation")
    assert_close(rot @ rot.mT, torch.eye(3).expand(3, 3, 3), atol=1e-5, what="orthonormal")


def test_fit_crop_anchor_recovers_the_translation():
    local = torch.randn(4, 21, 3) * 0.03
    t = torch.tensor([[0.01, -0.02, 0.5], [0.0, 0.0, 0.7], [-0.03, 0.01, 0.4], [0, 0, 0.9]])
    target = project(local + t[:, None], crop_intrinsics())
    assert_close(fit_crop_anchor(local, target, 224), t, atol=1e-5, what="anchor")


def test_synthetic_batch_is_consistent():
    batch = _batch(256, seed=3)
    regressor = build_keypoint_regressor(KeypointRegressorConfig(), _model_and_prior()[0])
    projection = regressor.projection(batch.theta)
    assert_close(projection.keypoints_3d, batch.keypoints_3d, atol=1e-5, what="theta -> 3D")
    # the crop camera explains the clean crop keypoints up to the perspective of the real crop
    residual = (projection.keypoints_2d - batch.clean_keypoints_2d).norm(dim=-1)
    assert float(residual.mean()) < 2.5
    # the input is the pipeline's crop: 1.5 x the noisy keypoint box, centred
    roi = hand_roi(batch.keypoints_2d, 224)
    assert_close(roi.side, torch.full((256,), 224.0), atol=1e-2, what="roi side")
    assert_close(roi.centre, torch.full((256, 2), 111.5), atol=1e-2, what="roi centre")
    # noise: 1.5-3 % of the box (box ~ 149 px in the crop) plus rare fingertip outliers
    noise = (batch.keypoints_2d - batch.clean_keypoints_2d).norm(dim=-1).median()
    assert 2.0 < float(noise) < 8.0
    assert ((batch.confidence > 0) & (batch.confidence <= 1)).all()
    clean = _batch(64, seed=3, noise_scale=0.0)
    assert_close(clean.keypoints_2d, clean.clean_keypoints_2d, atol=1e-4, what="zero-noise input")


def test_shipped_weights_shapes_and_config():
    regressor = _shipped()
    assert regressor.config.side == "right" and regressor.config.hand_model == "open_hand"
    assert (REPO_ROOT / "hand_mesh_ros/assets/keypoint_regressor.pt").stat().st_size < 2e6
    batch = _batch(5, seed=4)
    with torch.inference_mode():
        theta = regressor(batch.keypoints_2d, batch.confidence)
        steps = regressor.iterate(batch.keypoints_2d)
    assert theta.shape == (5, THETA_DIM) and theta.dtype == torch.float32
    assert len(steps) == 3 and steps[-1].refined_keypoints_2d.shape == (5, 21, 2)
    assert torch.isfinite(theta).all()
    with pytest.raises(ValueError, match="keypoints_2d"):
        regressor(torch.zeros(5, 20, 2))


@pytest.mark.parametrize("noise_scale", [1.0, 0.0])
def test_shipped_weights_beat_the_mean_pose(noise_scale):
    batch = _batch(TEST_BATCH, seed=TEST_SEED, noise_scale=noise_scale)
    metrics = trainer.evaluate(_shipped(), batch)
    gap = metrics["baseline_pa_mpjpe_mm"] - metrics["pa_mpjpe_mm"]
    assert gap > PA_MARGIN_MM, metrics
    assert metrics["pa_mpjpe_mm"] < MAX_PA_MPJPE_MM, metrics
    assert metrics["mpjpe_rr_mm"] < metrics["baseline_mpjpe_rr_mm"] - 5.0, metrics
    assert metrics["reproj_px"] < MAX_REPROJ_PX, metrics


def test_missing_and_incompatible_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_keypoint_regressor(tmp_path / "nothing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable"):
        load_keypoint_regressor(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="expected format"):
        load_keypoint_regressor(other)
    small = build_keypoint_regressor(KeypointRegressorConfig(hidden_dim=16))
    mismatched = tmp_path / "mismatched.pt"
    save_keypoint_regressor(small, mismatched)
    payload = torch.load(mismatched, weights_only=True)
    payload["config"]["hidden_dim"] = 32  # config no longer matches the tensors
    torch.save(payload, mismatched)
    with pytest.raises(ValueError, match="do not match"):
        load_keypoint_regressor(mismatched)


def test_save_load_round_trip(tmp_path):
    regressor = build_keypoint_regressor(KeypointRegressorConfig(hidden_dim=32, embed_dim=16))
    path = tmp_path / "r.pt"
    save_keypoint_regressor(regressor, path, dtype=torch.float32)
    loaded = load_keypoint_regressor(path)
    batch = _batch(4, seed=5)
    with torch.no_grad():
        theta, expected = loaded(batch.keypoints_2d), regressor(batch.keypoints_2d)
    assert_close(theta, expected, atol=1e-6, what="theta")


def test_short_training_reduces_the_loss():
    config = KeypointRegressorConfig(hidden_dim=64, embed_dim=32)
    batch = _batch(128, seed=6)
    torch.manual_seed(7)
    initial = build_keypoint_regressor(config, _model_and_prior()[0])
    with torch.no_grad():
        before = float(trainer.keypoint_losses(initial, batch, trainer.LossWeights())["total"])
    trained, history = trainer.train(steps=60, batch=64, seed=7, lr=3e-3, config=config,
                                     eval_every=60, warmup_steps=5, log=lambda _: None)
    with torch.no_grad():
        after = float(trainer.keypoint_losses(trained, batch, trainer.LossWeights())["total"])
    assert math.isfinite(after) and after < 0.6 * before, (before, after)
    assert [s for s, _ in history["loss"]] == [50, 60]


def test_cli_train_regressor_writes_weights_curve_and_log(tmp_path, capsys):
    from hand_mesh_ros.cli import main

    weights = tmp_path / "regressor.pt"
    args = ["train-regressor", "--steps", "2", "--batch", "4", "--out", str(weights)]
    assert main([*args, "--curve-dir", str(tmp_path / "curve")]) == 0
    assert "wrote" in capsys.readouterr().out
    log = json.loads((tmp_path / "curve" / "training_log.json").read_text())
    assert [s for s, _ in log["loss"]] == [2] and math.isfinite(log["loss"][-1][1])
    assert log["args"]["steps"] == "2" and (tmp_path / "curve" / "training_curve.png").is_file()
    assert load_keypoint_regressor(weights).config == KeypointRegressorConfig()
    assert main(["train-regressor", "--evaluate", str(tmp_path / "missing.pt")]) == 1
    assert "not found" in capsys.readouterr().err
