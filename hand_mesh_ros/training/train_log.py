"""Training logs: a JSONL file of scalars (always), TensorBoard events (when the
``tensorboard`` package is importable), PNG overlays and a plain progress line on stderr.

``<out>/log.jsonl``: one JSON object per logged step: ``{"step", "stage", "total",
"<term>": ..., "shape_active", "lr", "pool", "seconds_per_step", "elapsed_s"}`` (terms: the
unweighted batch means of ``step.LOGGED_TERMS``). ``<out>/overlays/step_<n>.png``: up to
four training crops with the ground-truth keypoints (green), the projected predicted skeleton
(red) and the predicted silhouette's outline (yellow). The same scalars and images go to
TensorBoard under ``<out>/tensorboard`` when it is available.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

OVERLAY_SAMPLES = 4  # crops per overlay image
OVERLAY_SCALE = 2  # overlay pixels per crop pixel (small crops are hard to read otherwise)
GT_COLOR, PRED_COLOR, SIL_COLOR = (0, 200, 0), (230, 30, 30), (250, 220, 0)


def tensorboard_writer(directory: Path):
    """A ``SummaryWriter`` or None when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's tensorboard bridge needs the tensorboard package
        return None
    return SummaryWriter(log_dir=str(directory))


def overlay_image(
    image: torch.Tensor,
    gt_keypoints: torch.Tensor,
    pred_keypoints: torch.Tensor | None,
    silhouette: torch.Tensor | None,
) -> np.ndarray:
    """(3, S, S) [0, 1] crop, (21, 2) crop px keypoints, (s, s) silhouette -> (2S, 2S, 3) uint8."""
    size = image.shape[-1] * OVERLAY_SCALE
    rgb = (image.detach().float().cpu().permute(1, 2, 0).numpy() * 255).clip(0, 255)
    rgb = cv2.resize(rgb.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    if silhouette is not None:
        sil = silhouette.detach().float().cpu().numpy()
        sil = cv2.resize((sil > 0.5).astype(np.uint8), (size, size), cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(sil, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, SIL_COLOR, 1)
    for points, color in ((gt_keypoints, GT_COLOR), (pred_keypoints, PRED_COLOR)):
        if points is None:
            continue
        for u, v in (points.detach().float().cpu().numpy() + 0.5) * OVERLAY_SCALE - 0.5:
            if np.isfinite(u) and np.isfinite(v):
                cv2.circle(rgb, (int(round(u)), int(round(v))), 2, color, -1)
    return rgb


def overlay_grid(batch, output) -> np.ndarray:
    """Side-by-side overlays of the first crops of a TrainBatch and its DHPEOutput (or None)."""
    tiles = []
    for i in range(min(OVERLAY_SAMPLES, len(batch))):
        pred = sil = None
        if output is not None:
            pred, sil = output.final.keypoints_2d[i], output.final.silhouette
            sil = None if sil is None else sil[i]
        tiles.append(overlay_image(batch.image[i], batch.keypoints_2d[i], pred, sil))
    return np.concatenate(tiles, axis=1)


class TrainLog:
    """Writes the logs of one run to ``out`` (see the module docstring)."""

    def __init__(self, out: Path, total_steps: int, *, quiet: bool = False) -> None:
        self.out, self.total, self.quiet = Path(out), total_steps, quiet
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "overlays").mkdir(exist_ok=True)
        self.jsonl = (self.out / "log.jsonl").open("a", encoding="utf-8")
        self.writer = tensorboard_writer(self.out / "tensorboard")
        self.start = time.perf_counter()

    def scalars(self, record: dict) -> None:
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self.writer.add_scalar(f"train/{key}", value, record["step"])
        if not self.quiet:
            self.progress(record)

    def progress(self, record: dict) -> None:
        done = record["step"] / max(self.total, 1)
        bar = "#" * int(20 * done) + "-" * (20 - int(20 * done))
        eta = (self.total - record["step"]) * record["seconds_per_step"]
        print(
            f"[{bar}] step {record['step']}/{self.total} stage {record['stage']} "
            f"loss {record['total']:.4g} art {record['articulation']:.3g} "
            f"heat {record['heatmap']:.3g} sil {record['silhouette']:.3g} "
            f"{record['seconds_per_step']:.2f} s/step eta {eta / 60:.1f} min",
            file=sys.stderr,
            flush=True,
        )

    def overlay(self, step: int, batch, output) -> Path:
        grid = overlay_grid(batch, output)
        path = self.out / "overlays" / f"step_{step:07d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if self.writer is not None:
            self.writer.add_image("train/overlay", grid, step, dataformats="HWC")
        return path

    def message(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        self.jsonl.close()
        if self.writer is not None:
            self.writer.close()
