"""Training the keypoint -> mesh regressor (``nets/keypoint_regressor.py``) on synthetic data.

This is the network the live pipeline uses (its weights ship in the package,
``assets/keypoint_regressor.pt``); ``hand-mesh train-regressor`` (``regressor_commands.py``)
runs it. The full DHPE of ``trainer.py`` (``hand-mesh train``) is a different network.

Data: a fresh batch of ``keypoint_data.sample_keypoint_batch`` per step (one generator seeded
with ``seed``); the held-out batch comes from the disjoint stream seed + VALIDATION_SEED_OFFSET.
Losses per sample, per iteration t (weight (t + 1) / T): pose and shape parameter MSE,
root-relative 3D keypoint MSE (cm^2, crop camera frame), the articulation loss (Eq. 8,
``losses.articulation_loss``, target frame), plus the 2D refiner loss over all iterations
(Eq. 6, [-1, 1] crop units). Adam with a linear warm-up then cosine decay to 0, gradient
clipping. The seed fixes the initialisation and the data exactly; CPU kernels may round
differently in the last bit between processes, so reruns match in metrics, not bytes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from hand_mesh_ros.camera import CROP_CAMERA_DIM, crop_camera_parts, crop_intrinsics
from hand_mesh_ros.hand_params import split_theta
from hand_mesh_ros.handmodel.model import load_hand_model
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.metrics import pa_mpjpe, root_relative_mpjpe
from hand_mesh_ros.nets.keypoint_regressor import (
    KeypointMeshRegressor,
    KeypointRegressorConfig,
    build_keypoint_regressor,
)
from hand_mesh_ros.topology import NUM_POSE, NUM_SHAPE
from hand_mesh_ros.training.keypoint_data import (
    KeypointBatch,
    KeypointDataConfig,
    sample_keypoint_batch,
)
from hand_mesh_ros.training.losses import articulation_loss, refiner_loss

VALIDATION_SEED_OFFSET = 10_000  # held-out batches use seed + this (disjoint stream)
VALIDATION_SIZE = 1024
REPORT_SIZE = 4096  # held-out samples of ``report`` (docs/regressor.md's table)
WARMUP_STEPS = 200  # linear learning-rate warm-up, then cosine decay to 0
GRAD_CLIP = 5.0
LOSS_LOG_EVERY = 50  # steps per entry of the loss history (mean total loss over them)
DEFAULT_EVAL_EVERY = 250  # steps between held-out evaluations
M_TO_CM = 100.0
MM_PER_M = 1000.0
POSE_SHAPE = NUM_POSE + NUM_SHAPE  # theta[:, :POSE_SHAPE] = [pose | shape]


@dataclass(frozen=True, kw_only=True)
class LossWeights:
    pose: float = 1.0  # rad^2 summed over 45 components
    shape: float = 0.1  # summed over 10 coefficients
    keypoints_3d: float = 1.0  # cm^2, mean over keypoints, root-relative
    articulation: float = 10.0  # Eq. 8, normalised units
    refiner: float = 10.0  # Eq. 6, [-1, 1] crop units


def keypoint_losses(
    regressor: KeypointMeshRegressor, batch: KeypointBatch, weights: LossWeights
) -> dict[str, torch.Tensor]:
    """Batch-mean loss terms (scalars) and their weighted ``total``."""
    steps = regressor.iterate(batch.keypoints_2d, batch.confidence)
    pose_gt, shape_gt, _ = split_theta(batch.theta)
    k = crop_intrinsics(regressor.config.crop_size)
    gt_rel = batch.keypoints_3d - batch.keypoints_3d[:, :1]
    terms = {"pose": 0.0, "shape": 0.0, "keypoints_3d": 0.0, "articulation": 0.0}
    for t, step in enumerate(steps):
        w = (t + 1) / len(steps)
        pose, shape, _ = split_theta(step.params)
        kp = step.projection.keypoints_3d
        rel_err = (kp - kp[:, :1] - gt_rel) * M_TO_CM
        terms["pose"] = terms["pose"] + w * (pose - pose_gt).square().sum(1)
        terms["shape"] = terms["shape"] + w * (shape - shape_gt).square().sum(1)
        terms["keypoints_3d"] = terms["keypoints_3d"] + w * rel_err.square().sum(-1).mean(1)
        terms["articulation"] = terms["articulation"] + w * articulation_loss(
            kp, batch.keypoints_3d, k
        )
    terms["refiner"] = refiner_loss(
        [s.refined_keypoints_2d for s in steps],
        batch.clean_keypoints_2d,
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
    last = regressor.iterate(batch.keypoints_2d, batch.confidence)[-1]
    final = last.projection
    clean = batch.clean_keypoints_2d
    rot = crop_camera_parts(last.params[:, -CROP_CAMERA_DIM:])[0]
    rot_gt = crop_camera_parts(batch.theta[:, -CROP_CAMERA_DIM:])[0]
    cos = ((rot.mT @ rot_gt).diagonal(dim1=1, dim2=2).sum(-1) - 1.0) / 2.0
    shape_error = (last.params - batch.theta)[:, NUM_POSE:POSE_SHAPE]
    out = {
        "rotation_deg": float(torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0))).median()),
        "shape_rmse": float(shape_error.square().mean().sqrt()),
        "input_px": float((batch.keypoints_2d - clean).norm(dim=-1).mean()),
    }
    theta0 = regressor.mesh_estimator.initial_params(batch.theta.shape[0])
    base_theta = torch.cat((theta0[:, :POSE_SHAPE], batch.theta[:, POSE_SHAPE:]), 1)
    base = regressor.projection(base_theta)
    for name, proj in (("", final), ("baseline_", base)):
        gt, kp = batch.keypoints_3d, proj.keypoints_3d
        out[f"{name}pa_mpjpe_mm"] = float(pa_mpjpe(kp, gt).mean() * MM_PER_M)
        out[f"{name}mpjpe_rr_mm"] = float(root_relative_mpjpe(kp, gt).mean() * MM_PER_M)
        out[f"{name}reproj_px"] = float((proj.keypoints_2d - clean).norm(dim=-1).mean())
    return out


def held_out_batch(
    skeleton, prior, seed: int, *, size: int = VALIDATION_SIZE, noise_scale: float = 1.0
) -> KeypointBatch:
    """The fixed held-out batch for a training seed (a stream disjoint from training)."""
    generator = torch.Generator().manual_seed(seed + VALIDATION_SEED_OFFSET)
    config = KeypointDataConfig(noise_scale=noise_scale)
    return sample_keypoint_batch(skeleton, prior, size, generator=generator, config=config)


def learning_rate(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from ``lr`` to 0."""
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
    eval_every: int = DEFAULT_EVAL_EVERY,
    warmup_steps: int = WARMUP_STEPS,
    log=None,
) -> tuple[KeypointMeshRegressor, dict]:
    """Train from scratch; returns the regressor (eval mode) and the log dict
    (``loss``: [(step, mean total loss since the last entry)], ``eval``: [(step, metrics)],
    ``seconds``). ``log``: a function of one progress line (default: print)."""
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
            group["lr"] = learning_rate(step, steps, lr, warmup_steps)
        data = sample_keypoint_batch(skeleton, prior, batch, generator=generator)
        terms = keypoint_losses(regressor, data, weights)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(regressor.parameters(), GRAD_CLIP)
        optimizer.step()
        total = float(terms["total"].detach())
        running, count = running + total, count + 1
        if (step + 1) % LOSS_LOG_EVERY == 0 or step + 1 == steps:
            history["loss"].append((step + 1, running / count))
            running, count = 0.0, 0
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            metrics = evaluate(regressor, validation)
            history["eval"].append((step + 1, metrics))
            shown = history["loss"][-1][1] if history["loss"] else total
            log(
                f"step {step + 1}/{steps} loss {shown:.4f} "
                f"PA-MPJPE {metrics['pa_mpjpe_mm']:.2f} mm "
                f"(baseline {metrics['baseline_pa_mpjpe_mm']:.2f}) {time.time() - start:.0f} s"
            )
    history["seconds"] = time.time() - start
    return regressor.eval(), history


def report(regressor: KeypointMeshRegressor, seed: int, size: int = REPORT_SIZE) -> dict:
    """Held-out metrics (``evaluate``) at the training noise and at zero noise."""
    hand_model = load_hand_model(regressor.config.side)
    prior, skeleton = PosePrior.from_model(hand_model), regressor.projection.skeleton
    return {
        f"noise_{scale:g}": evaluate(
            regressor, held_out_batch(skeleton, prior, seed, size=size, noise_scale=scale)
        )
        for scale in (1.0, 0.0)
    }
