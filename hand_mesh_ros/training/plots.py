"""PNG figures of training and evaluation (matplotlib, Agg backend: no display needed).

* ``plot_pck``: 3D PCK curves (fraction of keypoints within each threshold, mm) of one or
  more evaluations, with their 20-50 mm AUC in the legend;
* ``plot_training_curves``: loss terms against steps from one or more ``log.jsonl`` files;
* ``plot_regressor_curve``: the keypoint regressor's training loss and held-out PA-MPJPE
  (``regressor_trainer.train``'s history).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

CURVE_TERMS = ("total", "heatmap", "articulation", "silhouette", "refiner", "feature")


def plot_pck(curves: dict[str, dict], path: str | Path, *, title: str = "3D PCK") -> Path:
    """curves: label -> an ``ErrorSummary.to_dict()``; writes and returns ``path``."""
    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=110)
    for label, summary in curves.items():
        ax.plot(
            summary["pck_thresholds_mm"],
            summary["pck"],
            label=f"{label} (AUC20-50 {summary['auc_20_50']:.3f})",
        )
    ax.axvspan(20, 50, color="0.92", zorder=0)
    ax.set(xlabel="error threshold (mm)", ylabel="3D PCK", title=title, ylim=(0, 1), xlim=(0, 50))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def read_log(path: str | Path) -> list[dict]:
    """The records of a ``log.jsonl`` (later records for a step replace earlier ones, so a
    resumed run's log reads as one run)."""
    by_step: dict[int, dict] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            by_step[record["step"]] = record
    return [by_step[k] for k in sorted(by_step)]


def plot_training_curves(
    logs: dict[str, str | Path], path: str | Path, *, terms=CURVE_TERMS, smooth: int = 5
) -> Path:
    """One panel per loss term, one line per run (moving average over ``smooth`` records)."""
    fig, axes = plt.subplots(2, 3, figsize=(11, 6), dpi=100)
    for ax, term in zip(axes.ravel(), terms, strict=False):
        for label, log_path in logs.items():
            records = [r for r in read_log(log_path) if term in r]
            if not records:
                continue
            steps = [r["step"] for r in records]
            values = _moving_average([r[term] for r in records], smooth)
            ax.plot(steps, values, label=label, linewidth=1)
        ax.set(title=term, xlabel="step")
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.grid(alpha=0.3)
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_regressor_curve(history: dict, path: str | Path) -> Path:
    """Training loss and held-out PA-MPJPE (regressor vs mean pose) of a
    ``regressor_trainer.train`` history; writes and returns ``path``."""
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
    return Path(path)


def _moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
