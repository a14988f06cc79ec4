"""The training loop of ``hand-mesh train``: stratified schedule, self-data augmentation,
checkpoints with exact resume, logs.

Step t (0-based) belongs to stage 1 while t < ``effective_stage1_steps`` (2D evidence
estimator, ``step.stage1_loss``), then to stage 2 (everything, ``step.stage2_loss``). From
step ``augment_after_steps`` on (stage 2 only), every ``augment_every_steps``-th batch's first
``augment_seeds_per_batch`` predictions seed ``augment_copies`` new instances each
(``self_augment``), and a ``augment_batch_fraction`` share of later batches comes from the
pool of those instances. The learning rate follows a cosine from ``learning_rate`` to
``learning_rate * final_lr_fraction`` over all steps.

Exactness: the data of step t is a function of (config, t) (``data.BatchSource``), the pool
and every generator are in the checkpoint, so training N steps equals training k steps,
saving, and resuming for N - k (on the same device and thread count).

Outputs in ``out``: ``checkpoint_<step>.pt`` every ``checkpoint_every`` steps and
``checkpoint_final.pt`` (``checkpoint.py``), ``evidence.pt`` (the 2D evidence estimator for
the pipeline's ``evidence_weights``, ``detect.dhpe_evidence``), ``config.yaml``, and the logs
of ``train_log.py``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import yaml

from hand_mesh_ros.detect.dhpe_evidence import evidence_net_from_dhpe, save_evidence_weights
from hand_mesh_ros.handmodel.model import load_hand_model
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.nets.dhpe import DHPE
from hand_mesh_ros.training import checkpoint as ckpt
from hand_mesh_ros.training.batches import TrainBatch, train_batch_from_pool
from hand_mesh_ros.training.config import TrainConfig
from hand_mesh_ros.training.losses import DHPELoss
from hand_mesh_ros.training.self_augment import (
    AugmentConfig,
    AugmentPool,
    augment_from_predictions,
)
from hand_mesh_ros.training.step import StepLoss, stage1_loss, stage2_loss
from hand_mesh_ros.training.train_log import TrainLog

AUGMENT_SEED_OFFSET = 7919  # the augmentation generator's seed is config.seed + this


def build_model(cfg: TrainConfig, device: torch.device) -> DHPE:
    """A DHPE as the config describes, with the right-hand open model and the prior's mean."""
    hand_model = load_hand_model("right")
    mean_pose = PosePrior.from_model(hand_model).mean_pose()
    return DHPE(cfg.dhpe_config(), hand_model, mean_pose).to(device)


def parameter_groups(model: DHPE, cfg: TrainConfig) -> list[dict]:
    """Adam groups: the image networks at the base rate, the mesh estimator at
    ``mesh_lr_factor`` x it (``lr_factor`` is read by ``Trainer.train_step``)."""
    mesh = [p for p in model.mesh_estimator.parameters() if p.requires_grad]
    mesh_ids = {id(p) for p in mesh}
    image = [p for p in model.parameters() if p.requires_grad and id(p) not in mesh_ids]
    return [
        {"params": image, "lr_factor": 1.0},
        {"params": mesh, "lr_factor": cfg.mesh_lr_factor},
    ]


class Trainer:
    """Owns the model, optimiser, loss, augmentation pool and the step counter.

    source: a ``data.BatchSource`` (``batch(step) -> TrainBatch`` of ``batch_size`` samples
    at ``crop_size`` px).
    """

    def __init__(self, cfg: TrainConfig, source, *, device: torch.device | str = "cpu") -> None:
        self.cfg, self.source = cfg, source
        self.device = torch.device(device)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, self.device)
        self.loss = DHPELoss.from_hand_model(
            cfg.loss_config(), self.model.hand_model, crop_size=cfg.crop_size
        ).to(self.device)
        self.optimiser = torch.optim.Adam(
            parameter_groups(self.model, cfg), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        self.autocast = cfg.mixed_precision and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast)
        self.pool = AugmentPool(cfg.augment_pool_size if cfg.self_augment else 0, cfg.crop_size)
        self.augment_config = AugmentConfig(
            copies=cfg.augment_copies,
            shape_sigma=cfg.augment_shape_sigma,
            max_angle_deg=cfg.augment_max_angle_deg,
            crop_size=cfg.crop_size,
        )
        self.generator = torch.Generator().manual_seed(cfg.seed + AUGMENT_SEED_OFFSET)
        self.step = 0

    # ---- one step -------------------------------------------------------------------------

    def stage(self, step: int) -> int:
        return 1 if step < self.cfg.effective_stage1_steps else 2

    def learning_rate(self, step: int) -> float:
        cfg = self.cfg
        progress = step / max(cfg.total_steps - 1, 1)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return cfg.learning_rate * (cfg.final_lr_fraction + (1 - cfg.final_lr_fraction) * cosine)

    def augmenting(self, step: int) -> bool:
        cfg = self.cfg
        return cfg.self_augment and self.stage(step) == 2 and step >= cfg.augment_after_steps

    def batch_for(self, step: int) -> tuple[TrainBatch, int]:
        """The step's batch (fresh samples first, then pool samples) and its fresh count."""
        fresh = self.source.batch(step)
        n_pool = 0
        if self.augmenting(step) and len(self.pool) > 0:
            n_pool = min(
                round(self.cfg.batch_size * self.cfg.augment_batch_fraction), len(self.pool)
            )
        if n_pool == 0:
            return fresh.to(self.device), len(fresh)
        keep = len(fresh) - n_pool
        pooled = train_batch_from_pool(self.pool.sample(n_pool, self.generator))
        return TrainBatch.cat([fresh.select(slice(0, keep)), pooled]).to(self.device), keep

    def train_step(self) -> tuple[StepLoss, TrainBatch]:
        step, stage = self.step, self.stage(self.step)
        for group in self.optimiser.param_groups:
            group["lr"] = self.learning_rate(step) * group["lr_factor"]
        batch, n_fresh = self.batch_for(step)
        self.model.train()
        compute = stage1_loss if stage == 1 else stage2_loss
        result = compute(self.model, self.loss, batch, autocast=self.autocast)
        if not torch.isfinite(result.total):
            raise FloatingPointError(f"non-finite loss at step {step}: {result.terms}")
        self.optimiser.zero_grad(set_to_none=True)
        self.scaler.scale(result.total).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimiser)
            params = [p for group in self.optimiser.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        self.scaler.step(self.optimiser)
        self.scaler.update()
        if self.augmenting(step) and step % self.cfg.augment_every_steps == 0:
            self._augment(result, batch, n_fresh)
        self.step += 1
        return result, batch

    def _augment(self, result: StepLoss, batch: TrainBatch, n_fresh: int) -> None:
        seeds = min(self.cfg.augment_seeds_per_batch, n_fresh)
        if seeds == 0 or result.output is None or self.pool.capacity == 0:
            return
        theta = result.output.final.params[:seeds].detach().float()
        new = augment_from_predictions(
            self.model.hand_model,
            theta,
            batch.image[:seeds].float(),
            generator=self.generator,
            config=self.augment_config,
        )
        self.pool.add(new)

    # ---- checkpoints ----------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scaler": self.scaler.state_dict(),
            "pool": self.pool.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": ckpt.numpy_rng_state(),
                "augment": self.generator.get_state(),
            },
        }

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != self.cfg.to_dict():
            changed = sorted(
                k for k, v in state["config"].items() if self.cfg.to_dict().get(k) != v
            )
            raise ValueError(f"checkpoint was trained with a different config: {changed}")
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.scaler.load_state_dict(state["scaler"])
        self.pool.load_state_dict(state["pool"])
        torch.set_rng_state(state["rng"]["torch"])
        ckpt.set_numpy_rng_state(state["rng"]["numpy"])
        self.generator.set_state(state["rng"]["augment"])
        self.step = int(state["step"])

    def save(self, path: Path) -> None:
        ckpt.save_checkpoint(path, self.state_dict())

    def resume(self, path: Path) -> None:
        self.load_state_dict(ckpt.load_checkpoint(path))

    # ---- the loop -------------------------------------------------------------------------

    def run(self, out: Path, *, until: int | None = None, quiet: bool = False) -> Path:
        """Train from the current step to ``until`` (default: the config's total) writing to
        ``out``; returns the final checkpoint's path."""
        out = Path(out)
        until = self.cfg.total_steps if until is None else min(until, self.cfg.total_steps)
        log = TrainLog(out, self.cfg.total_steps, quiet=quiet)
        (out / "config.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        log.message(f"training on {self.device} from step {self.step} to {until}")
        start, last = time.perf_counter(), time.perf_counter()
        try:
            while self.step < until:
                result, batch = self.train_step()
                step = self.step  # steps done
                if step % self.cfg.log_every == 0 or step == until:
                    now = time.perf_counter()
                    record = self._record(result, step, now - start)
                    record["seconds_per_step"] = (now - last) / self.cfg.log_every
                    last = now
                    log.scalars(record)
                if step % self.cfg.overlay_every == 0:
                    log.overlay(step, batch, result.output)
                if step % self.cfg.checkpoint_every == 0 and step < until:
                    self.save(out / f"checkpoint_{step:07d}.pt")
        finally:
            log.close()
        final = out / "checkpoint_final.pt"
        self.save(final)
        save_evidence_weights(evidence_net_from_dhpe(self.model).cpu(), out / "evidence.pt")
        return final

    def _record(self, result: StepLoss, step: int, elapsed: float) -> dict:
        return {
            "step": step,
            "stage": self.stage(step - 1),
            "total": float(result.total.detach()),
            **result.terms,
            "shape_active": result.shape_active,
            "lr": self.optimiser.param_groups[0]["lr"],
            "pool": len(self.pool),
            "elapsed_s": elapsed,
        }
