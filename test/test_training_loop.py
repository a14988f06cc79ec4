"""The trainer on tiny crops: the loss falls on a fixed batch, resume is exact, stage 1 trains
only the 2D evidence estimator, the Eq. 12 switch, missing labels, the CLI end to end."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from helpers import REPO_ROOT

from hand_mesh_ros.cli import main
from hand_mesh_ros.datasets import CropJitter, SyntheticDataset
from hand_mesh_ros.detect.dhpe_evidence import load_evidence_net
from hand_mesh_ros.training.config import TrainConfig
from hand_mesh_ros.training.data import DatasetSource, sequential_batches, synthetic_config
from hand_mesh_ros.training.step import stage2_loss
from hand_mesh_ros.training.trainer import Trainer

CROP = 48
TINY = {
    "crop_size": CROP,
    "silhouette_size": 16,
    "batch_size": 4,
    "cpm_channels": 16,
    "cpm_stages": 2,
    "cpm_convs_per_stage": 1,
    "cpm_kernel_size": 3,
    "synthetic_image_size": 64,
    "log_every": 1,
}


def tiny(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, **changes})


@pytest.fixture(scope="module")
def dataset():
    return SyntheticDataset(synthetic_config(64), 11, 8)


@pytest.fixture(scope="module")
def fixed_batch(dataset):
    return next(sequential_batches(dataset, crop_size=CROP, batch_size=4))


def value(term: torch.Tensor) -> float:
    return float(term.detach())


class FixedSource:
    def __init__(self, batch):
        self.fixed = batch

    def batch(self, step):
        return self.fixed


def test_loss_decreases_on_a_fixed_batch(fixed_batch):
    cfg = tiny(stage1_steps=0, stage2_steps=20, self_augment=False, final_lr_fraction=1.0)
    trainer = Trainer(cfg, FixedSource(fixed_batch))
    totals = [float(trainer.train_step()[0].total.detach()) for _ in range(20)]
    first, last = sum(totals[:3]) / 3, sum(totals[-3:]) / 3
    assert last < 0.7 * first, totals


def test_resume_reproduces_an_uninterrupted_run(dataset, tmp_path):
    # stage 1 for one step, then stage 2 with self-data augmentation from step 2 on (pool
    # samples enter the batch of step 3), jittered crops: every stateful part is exercised
    cfg = tiny(stage1_steps=1, stage2_steps=3, augment_after_steps=2)
    jitter = CropJitter(scale_range=(0.9, 1.1), max_shift=0.1)

    def source():
        return DatasetSource(dataset, crop_size=CROP, batch_size=4, seed=cfg.seed, jitter=jitter)

    straight = Trainer(cfg, source())
    for _ in range(4):
        straight.train_step()
    first = Trainer(cfg, source())
    first.train_step()
    first.train_step()
    first.save(tmp_path / "half.pt")
    resumed = Trainer(cfg, source())
    resumed.resume(tmp_path / "half.pt")
    assert resumed.step == 2
    resumed.train_step()
    resumed.train_step()
    assert len(straight.pool) == len(resumed.pool) == 2 * 3 * 2  # 2 seeds x 3 copies x 2 steps
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    other = Trainer(tiny(stage1_steps=2, stage2_steps=3), source())
    with pytest.raises(ValueError, match="different config.*stage1_steps"):
        other.resume(tmp_path / "half.pt")


def test_stage1_trains_only_the_2d_evidence_estimator(fixed_batch):
    trainer = Trainer(tiny(stage1_steps=2, stage2_steps=1), FixedSource(fixed_batch))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result, _ = trainer.train_step()
    after = trainer.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert result.output is None and result.terms["articulation"] == 0.0
    assert any(k.startswith("backbone.layer1") for k in changed)
    assert any(k.startswith("cpm.") for k in changed)
    assert not any(k.startswith("mesh_estimator.") for k in changed)


def test_eq12_switch_and_constant_weight(fixed_batch):
    trainer = Trainer(tiny(silhouette_threshold_px=0.0), FixedSource(fixed_batch))
    off = stage2_loss(trainer.model, trainer.loss, fixed_batch, autocast=False)
    assert off.shape_active == 0.0 and off.terms["silhouette"] > 0
    trainer = Trainer(tiny(silhouette_threshold_px=1e6), FixedSource(fixed_batch))
    on = stage2_loss(trainer.model, trainer.loss, fixed_batch, autocast=False)
    assert on.shape_active == 1.0
    # the switched-on silhouette term is what the totals differ by (weight 1)
    assert float((on.total - off.total).detach()) == pytest.approx(on.terms["silhouette"], abs=1e-3)
    trainer = Trainer(tiny(shape_schedule="constant", silhouette_threshold_px=0.0), None)
    constant = stage2_loss(trainer.model, trainer.loss, fixed_batch, autocast=False)
    assert constant.shape_active == 1.0


def test_samples_without_3d_or_mask_drop_those_terms(fixed_batch):
    trainer = Trainer(tiny(), None)
    model, loss = trainer.model.eval(), trainer.loss  # eval: batch statistics would differ
    output = model(fixed_batch.image)
    full = loss(output, fixed_batch)
    keep = torch.tensor([True, False, True, False])
    nan_3d = torch.where(keep[:, None, None], fixed_batch.keypoints_3d, torch.nan)
    holes = replace(fixed_batch, has_3d=keep, has_mask=keep, keypoints_3d=nan_3d)
    partial = loss(output, holes)
    kept = fixed_batch.select(keep)
    per_sample = trainer.loss(model(kept.image), kept)
    assert torch.isfinite(partial.total)
    # batch means: the two kept samples' terms over four samples
    assert value(partial.articulation) == pytest.approx(value(per_sample.articulation) / 2, 1e-4)
    assert value(partial.silhouette) == pytest.approx(value(per_sample.silhouette) / 2, 1e-4)
    assert value(full.articulation) > value(partial.articulation)
    partial.total.backward()
    grads = [p.grad for p in model.mesh_estimator.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_cli_train_then_evaluate_model(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", str(REPO_ROOT / "config" / "train_smoke.yaml"), "--out", str(out)]
    args += ["--set", "stage1_steps=1", "--set", "stage2_steps=2", "--set", "augment_after_steps=1"]
    args += ["--set", "train_samples=8", "--set", "synthetic_image_size=64", "--quiet"]
    assert main(args) == 0
    for name in ("checkpoint_final.pt", "evidence.pt", "config.yaml", "log.jsonl"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 3] and records[-1]["stage"] == 2
    assert load_evidence_net(out / "evidence.pt").config.crop_size == 64
    evaluation = tmp_path / "eval"
    args = ["evaluate-model", "--checkpoint", str(out / "checkpoint_final.pt"), "--synthetic"]
    args += ["4", "--seed", "3", "--refine-iterations", "2", "--out", str(evaluation), "--quiet"]
    assert main(args) == 0
    report = json.loads((evaluation / "metrics.json").read_text())
    assert set(report["variants"]) == {"network", "refined"}
    network = report["variants"]["network"]
    assert network["samples_3d"] == 4 and network["aligned"]["mean_mm"] > 0
    assert 0.0 <= network["aligned"]["auc_20_50"] <= 1.0
    assert (evaluation / "pck.png").is_file()
    assert main(["train", "--set", "no_such_option=1", "--out", str(tmp_path / "x")]) == 1
    assert "unknown option" in capsys.readouterr().err


def test_forward_matches_its_pieces_and_renders_the_final_silhouette_only(fixed_batch):
    model = Trainer(tiny(), None).model.eval()
    with torch.no_grad():
        ours = model(fixed_batch.image)
        bare = model(fixed_batch.image, silhouette=False)
        feature, stages = model.image_evidence(fixed_batch.image)
        keypoints_2d = model.keypoints_from_heatmaps(stages[-1])
        reference = model.estimate_mesh(feature, keypoints_2d)  # every silhouette rendered
    assert torch.equal(ours.keypoints_2d, keypoints_2d) and torch.equal(ours.feature, feature)
    for a, b in zip(reference, ours.iterations, strict=True):
        assert torch.equal(a.params, b.params) and torch.equal(a.keypoints_3d, b.keypoints_3d)
        assert torch.equal(a.refined_keypoints_2d, b.refined_keypoints_2d)
    assert torch.equal(reference[-1].silhouette, ours.final.silhouette)
    assert all(it.silhouette is None for it in ours.iterations[:-1])
    assert bare.final.silhouette is None and torch.equal(bare.final.params, ours.final.params)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_mixed_precision_steps(fixed_batch):
    trainer = Trainer(tiny(stage1_steps=1, stage2_steps=2), FixedSource(fixed_batch), device="cuda")
    assert trainer.autocast and trainer.scaler.is_enabled()
    results = [trainer.train_step()[0] for _ in range(3)]
    assert all(torch.isfinite(r.total) for r in results)
    assert next(trainer.model.parameters()).dtype == torch.float32  # fp16 only inside autocast
