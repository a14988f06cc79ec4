#!/usr/bin/env python3
"""Train the keypoint -> mesh regressor (``nets/keypoint_regressor.py``) on synthetic data.

Run from the repository root; the shipped weights were made with (see docs/regressor.md):

    .venv/bin/python tools/train_keypoint_regressor.py --steps 10000 --batch 256 --seed 0

Writes the weights (float16, ``--out``), ``<curve-dir>/training_curve.png`` and
``<curve-dir>/training_log.json`` (losses and held-out metrics), and prints progress.
Runs on one CPU thread (much faster than two contended threads on a small machine). The seed
fixes the initialisation and the data exactly; CPU kernels may round differently in the last
bit between processes, so reruns match in metrics, not bytes.
Losses per sample, per iteration t (weight (t + 1) / T):
pose and shape parameter MSE, root-relative 3D keypoint MSE (cm^2, crop camera frame),
the articulation loss (Eq. 8, ``training.losses.articulation_loss``, target frame), plus the
2D refiner loss over all iterations (Eq. 6, [-1, 1] crop units).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hand_mesh_ros.camera import (  # noqa: E402
    CROP_CAMERA_DIM,
    crop_camera_parts,
    crop_intrinsics,
)
from hand_mesh_ros.hand_params import split_theta  # noqa: E402
from hand_mesh_ros.handmodel.model import load_hand_model  # noqa: E402
from hand_mesh_ros.handmodel.prior import PosePrior  # noqa: E402
from hand_mesh_ros.metrics import pa_mpjpe, root_relative_mpjpe  # noqa: E402
from hand_mesh_ros.nets.keypoint_regressor import (  # noqa: E402
    DEFAULT_WEIGHTS,
    KeypointMeshRegressor,
    KeypointRegressorConfig,
    build_keypoint_regressor,
    load_keypoint_regressor,
    save_keypoint_regressor,
)
from hand_mesh_ros.topology import NUM_POSE, NUM_SHAPE  # noqa: E402
from hand_mesh_ros.training.keypoint_data import (  # noqa: E402
    KeypointBatch,
    KeypointDataConfig,
    sample_keypoint_batch,
)
from hand_mesh_ros.training.losses import articulation_loss, refiner_loss  # noqa: E402

CURVE_DIR = REPO / "docs" / "regressor"
VALIDATION_SEED_OFFSET = 10_000  # held-out batches use seed + this (disjoint stream)
VALIDATION_SIZE = 1024
WARMUP_STEPS = 200  # linear learning-rate warm-up, then cosine decay to 0
GRAD_CLIP = 5.0
M_TO_CM = 100.0
MM_PER_M = 1000.0
POSE_SHAPE = NUM_POSE + NUM_SHAPE  # theta[:, :POSE_SHAPE] = [pose | shape]


@dataclass(frozen=True, kw_only=True)
class LossWeights:
    pose: float = 1.0  # rad^2 summed over 45 components
    shape: float = 0.1  # summed over 10 coefficients
    keypoints3d: float = 1.0  # cm^2, mean over keypoints, root-relative
    articulation: float = 10.0  # Eq. 8, normalised units
    refiner: float = 10.0  # Eq. 6, [-1, 1] crop units


def keypoint_losses(
    regressor: KeypointMeshRegressor, batch: KeypointBatch, weights: LossWeights
) -> dict[str, torch.Tensor]:
    """Batch-mean loss terms (scalars) and their weighted ``total``."""
    steps = regressor.iterate(batch.joints2d, batch.confidence)
    pose_gt, shape_gt, _ = split_theta(batch.theta)
    k = crop_intrinsics(regressor.config.crop_size)
    gt_rel = batch.keypoints3d - batch.keypoints3d[:, :1]
    terms = {"pose": 0.0, "shape": 0.0, "keypoints3d": 0.0, "articulation": 0.0}
    for t, step in enumerate(steps):
        w = (t + 1) / len(steps)
        pose, shape, _ = split_theta(step.params)
        kp = step.projection.keypoints3d
        rel_err = (kp - kp[:, :1] - gt_rel) * M_TO_CM
        terms["pose"] = terms["pose"] + w * (pose - pose_gt).square().sum(1)
        terms["shape"] = terms["shape"] + w * (shape - shape_gt).square().sum(1)
        terms["keypoints3d"] = terms["keypoints3d"] + w * rel_err.square().sum(-1).mean(1)
        terms["articulation"] = terms["articulation"] + w * articulation_loss(
            kp, batch.keypoints3d, k
        )
    terms["refiner"] = refiner_loss(
        [s.refined_joints2d for s in steps],
        batch.clean2d,
        scale=regressor.config.crop_size / 2.0,
    )
    out = {name: value.mean() for name, value in terms.items()}
    out["total"] = sum(getattr(weights, name) * out[name] for name in terms)
    return out


@torch.no_grad()
def evaluate(regressor: KeypointMeshRegressor, batch: KeypointBatch) -> dict[str, float]:
    """Held-out metrics of the final iteration and of the mean-pose baseline.

    pa_mpjpe_mm / mpjpe_rr_mm: 21 keypoints, mm (root-relative: wrist, crop camera frame);
    reproj_px: mean 2D distance between the projected keypoints and the clean crop keypoints
    (input_px: the same for the noisy input keypoints). Regressor only: rotation_deg, the
    median angle between predicted and true crop-camera rotations; shape_rmse over the 10
    coefficients (predicting zeros scores ~0.93). The baseline is theta_0 (prior mean pose,
    mean shape) placed with the TRUE crop camera (an oracle rotation and placement), so only
    its articulation and shape are uninformed.
    """
    regressor.eval()
    last = regressor.iterate(batch.joints2d, batch.confidence)[-1]
    final = last.projection
    rot = crop_camera_parts(last.params[:, -CROP_CAMERA_DIM:])[0]
    rot_gt = crop_camera_parts(batch.theta[:, -CROP_CAMERA_DIM:])[0]
    cos = ((rot.mT @ rot_gt).diagonal(dim1=1, dim2=2).sum(-1) - 1.0) / 2.0
    out = {
        "rotation_deg": float(torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0))).median()),
        "shape_rmse": float((last.params - batch.theta)[:, NUM_POSE:POSE_SHAPE].square()
                            .mean().sqrt()),
        "input_px": float((batch.joints2d - batch.clean2d).norm(dim=-1).mean()),
    }
    theta0 = regressor.mesh_estimator.initial_params(batch.theta.shape[0])
    base_theta = torch.cat((theta0[:, :POSE_SHAPE], batch.theta[:, POSE_SHAPE:]), 1)
    base = regressor.projection(base_theta)
    for name, proj in (("", final), ("baseline_", base)):
        gt, kp = batch.keypoints3d, proj.keypoints3d
        out[f"{name}pa_mpjpe_mm"] = float(pa_mpjpe(kp, gt).mean() * MM_PER_M)
        out[f"{name}mpjpe_rr_mm"] = float(root_relative_mpjpe(kp, gt).mean() * MM_PER_M)
        out[f"{name}reproj_px"] = float((proj.keypoints2d - batch.clean2d).norm(dim=-1).mean())
    return out


def held_out_batch(
    skeleton, prior, seed: int, *, size: int = VALIDATION_SIZE, noise_scale: float = 1.0
) -> KeypointBatch:
    """The fixed held-out batch for a training seed (a stream disjoint from training)."""
    generator = torch.Generator().manual_seed(seed + VALIDATION_SEED_OFFSET)
    config = KeypointDataConfig(noise_scale=noise_scale)
    return sample_keypoint_batch(skeleton, prior, size, generator=generator, config=config)


def _learning_rate(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def train(
    *,
    steps: int,
    batch: int,
    seed: int,
    lr: float,
    config: KeypointRegressorConfig | None = None,
    weights: LossWeights | None = None,
    eval_every: int = 250,
    warmup_steps: int = WARMUP_STEPS,
    log=None,
) -> tuple[KeypointMeshRegressor, dict]:
    """Train from scratch; returns the regressor (eval mode) and the log dict
    (``loss``: [(step, mean total loss since the last entry)], ``eval``: [(step, metrics)])."""
    config = config or KeypointRegressorConfig()
    hand_model = load_hand_model(config.side)
    torch.manual_seed(seed)
    regressor = build_keypoint_regressor(config, hand_model)
    weights = weights or LossWeights()
    skeleton = regressor.projection.skeleton
    prior = PosePrior.from_model(hand_model)
    generator = torch.Generator().manual_seed(seed)
    validation = held_out_batch(skeleton, prior, seed, size=min(VALIDATION_SIZE, 4 * batch))
    optimizer = torch.optim.Adam(regressor.parameters(), lr=lr)
    log = log or (lambda message: print(message, flush=True))
    history: dict = {"loss": [], "eval": []}
    running, count, start = 0.0, 0, time.time()
    for step in range(steps):
        regressor.train()
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, steps, lr, warmup_steps)
        data = sample_keypoint_batch(skeleton, prior, batch, generator=generator)
        terms = keypoint_losses(regressor, data, weights)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(regressor.parameters(), GRAD_CLIP)
        optimizer.step()
        running, count = running + float(terms["total"].detach()), count + 1
        if (step + 1) % 50 == 0 or step + 1 == steps:
            history["loss"].append((step + 1, running / count))
            running, count = 0.0, 0
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            metrics = evaluate(regressor, validation)
            history["eval"].append((step + 1, metrics))
            log(f"step {step + 1}/{steps} loss {history['loss'][-1][1]:.4f} "
                f"PA-MPJPE {metrics['pa_mpjpe_mm']:.2f} mm "
                f"(baseline {metrics['baseline_pa_mpjpe_mm']:.2f}) {time.time() - start:.0f} s")
    history["seconds"] = time.time() - start
    return regressor.eval(), history


def plot_curve(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps, loss = zip(*history["loss"], strict=True)
    ax_loss.semilogy(steps, loss)
    ax_loss.set(xlabel="step", ylabel="training loss (total)", title="training loss")
    eval_steps = [s for s, _ in history["eval"]]
    for key, label in (("pa_mpjpe_mm", "regressor"), ("baseline_pa_mpjpe_mm", "mean pose")):
        ax_err.plot(eval_steps, [m[key] for _, m in history["eval"]], label=label)
    ax_err.set(xlabel="step", ylabel="PA-MPJPE (mm)", title="held-out synthetic, training noise")
    ax_err.legend()
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(regressor: KeypointMeshRegressor, seed: int, size: int = 4096) -> dict:
    """Held-out metrics (``evaluate``) at the training noise and at zero noise."""
    hand_model = load_hand_model(regressor.config.side)
    prior, skeleton = PosePrior.from_model(hand_model), regressor.projection.skeleton
    return {
        f"noise_{scale:g}": evaluate(
            regressor, held_out_batch(skeleton, prior, seed, size=size, noise_scale=scale)
        )
        for scale in (1.0, 0.0)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--curve-dir", type=Path, default=CURVE_DIR)
    parser.add_argument("--evaluate", type=Path, default=None,
                        help="only print the held-out metrics of these weights")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.evaluate is not None:
        print(json.dumps(report(load_keypoint_regressor(args.evaluate), args.seed), indent=1))
        return
    regressor, history = train(steps=args.steps, batch=args.batch, seed=args.seed, lr=args.lr)
    save_keypoint_regressor(regressor, args.out)
    args.curve_dir.mkdir(parents=True, exist_ok=True)
    plot_curve(history, args.curve_dir / "training_curve.png")
    history["args"] = {k: str(v) for k, v in vars(args).items()}
    (args.curve_dir / "training_log.json").write_text(json.dumps(history, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) in "
          f"{history['seconds']:.0f} s")


if __name__ == "__main__":
    main()
