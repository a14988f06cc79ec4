"""Evaluate the runs of ``benchmarks/train_ablations.sh`` on the held-apart synthetic test set
and write the figures and numbers of ``docs/training.md``.

    python benchmarks/eval_training.py --runs out/train --test out/synthetic/test \
        --out docs/training [--real ../shared/data/hands/annotations.jsonl]

Evaluated (``training.evaluate_model``): every run's final checkpoint without test-time
refinement; the main run's final checkpoint and its checkpoint at the ablations' length also
with ``--refine-iterations`` of Eq. 13 (the "w/o test-time refinement" ablation); optionally
the main run on the real annotated images (numbers only: those images are not committed).
Writes ``<out>/results.json``, ``<out>/pck_ablations.png``, ``<out>/pck_main.png``,
``<out>/training_curves.png``, ``<out>/self_augment_examples.png`` (the main run's newest
self-augmented instances) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from hand_mesh_ros.datasets import open_dataset
from hand_mesh_ros.training.checkpoint import load_checkpoint
from hand_mesh_ros.training.commands import LimitedDataset
from hand_mesh_ros.training.data import sequential_batches
from hand_mesh_ros.training.evaluate_model import evaluate_batches, load_trained_model
from hand_mesh_ros.training.plots import plot_pck, plot_training_curves
from hand_mesh_ros.training.train_log import overlay_image
from hand_mesh_ros.training.trainer import build_model

ABLATIONS = ("no_self_augment", "no_2d_losses", "constant_shape_weight")
BATCH = 16


def evaluate(model, dataset, refine_iterations: int = 0, *, name: str) -> dict:
    batches = sequential_batches(dataset, crop_size=model.config.crop_size, batch_size=BATCH)
    start = time.perf_counter()
    summary = evaluate_batches(model, batches, refine_iterations=refine_iterations).summary()
    summary["seconds"] = time.perf_counter() - start
    summary["refine_iterations"] = refine_iterations
    print(f"{name}: {headline(summary)} ({summary['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return summary


def untrained_model(checkpoint: Path):
    """The main run's network at step 0 (its seed, no training): the mean-hand baseline."""
    _, cfg = load_trained_model(checkpoint)
    torch.manual_seed(cfg.seed)
    return build_model(cfg, torch.device("cpu")).eval()


def headline(s: dict) -> str:
    a = s["aligned"]
    return (
        f"AUC20-50 {a['auc_20_50']:.3f} AUC0-50 {a['auc_0_50']:.3f} mean {a['mean_mm']:.1f} "
        f"median {a['median_mm']:.1f} rr {s['root_relative']['mean_mm']:.1f} "
        f"PA {s['pa']['mean_mm']:.1f} mm, 2D {s['heatmap_2d_error_px']:.2f} px, "
        f"IoU {s.get('mask_iou') or 0:.3f}"
    )


def pool_figure(checkpoint: Path, path: Path, count: int = 12) -> None:
    """The newest self-augmented instances in a checkpoint's pool, with their keypoints."""
    pool = load_checkpoint(checkpoint)["pool"]
    if pool["count"] == 0:
        return
    newest = [(pool["cursor"] - 1 - i) % pool["count"] for i in range(min(count, pool["count"]))]
    tiles = [
        overlay_image(pool["image"][i].float() / 255.0, pool["keypoints_2d"][i], None, None)
        for i in newest
    ]
    rows = [np.concatenate(tiles[i : i + 6], axis=1) for i in range(0, len(tiles), 6)]
    if len(rows) > 1 and rows[-1].shape != rows[0].shape:
        rows = rows[:-1]
    grid = np.concatenate(rows, axis=0)
    grid = cv2.resize(grid, (grid.shape[1] // 2, grid.shape[0] // 2), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))  # at crop resolution


def table(rows: dict[str, dict]) -> str:
    lines = [
        "| variant | AUC 20-50 | AUC 0-50 | mean (mm) | median (mm) | root-rel. (mm) | "
        "PA (mm) | 2D CPM (px) | mask IoU / P / R |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in rows.items():
        a = s["aligned"]
        mask = "-"
        if s.get("mask_iou") is not None:
            mask = f"{s['mask_iou']:.3f} / {s['mask_precision']:.3f} / {s['mask_recall']:.3f}"
        lines.append(
            f"| {name} | {a['auc_20_50']:.3f} | {a['auc_0_50']:.3f} | {a['mean_mm']:.1f} | "
            f"{a['median_mm']:.1f} | {s['root_relative']['mean_mm']:.1f} | "
            f"{s['pa']['mean_mm']:.1f} | {s['heatmap_2d_error_px']:.2f} | {mask} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--short-step", type=int, default=500, help="the ablations' length")
    parser.add_argument("--refine-iterations", type=int, default=50)
    parser.add_argument("--refine-samples", type=int, default=128)
    parser.add_argument("--real", type=Path, default=None, help="annotations.jsonl of real images")
    args = parser.parse_args(argv)
    test = open_dataset("synthetic-dir", args.test)
    main_run = args.runs / "main"
    final, short = (
        main_run / "checkpoint_final.pt",
        main_run / f"checkpoint_{args.short_step:07d}.pt",
    )
    results: dict = {"test_set": str(args.test), "test_samples": len(test), "variants": {}}
    variants = results["variants"]

    def run(name: str, checkpoint: Path, dataset=test, refine: int = 0) -> dict:
        summary = evaluate(load_trained_model(checkpoint)[0], dataset, refine, name=name)
        summary["checkpoint"] = str(checkpoint)
        return summary

    variants["untrained (mean hand)"] = evaluate(untrained_model(final), test, name="untrained")
    variants["main (final)"] = run("main (final)", final)
    variants[f"main @ {args.short_step}"] = run(f"main @ {args.short_step}", short)
    for name in ABLATIONS:
        checkpoint = args.runs / name / "checkpoint_final.pt"
        if checkpoint.is_file():
            variants[f"{name} @ {args.short_step}"] = run(f"{name} @ {args.short_step}", checkpoint)
    # test-time refinement (Eq. 13) is slow on 2 cores: paired on the first refine_samples
    subset = LimitedDataset(test, args.refine_samples)
    refinement = results["refinement"] = {"samples": len(subset)}
    refinement["main (final)"] = run("main (final), subset", final, subset)
    refinement["main (final) + test-time refinement"] = run(
        "main (final) + refinement, subset", final, subset, args.refine_iterations
    )
    if args.real is not None:
        from hand_mesh_ros.training.annotations import AnnotationDataset

        results["real_images"] = run("real images", final, AnnotationDataset(args.real))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    at_short = {k: v["aligned"] for k, v in variants.items() if f"@ {args.short_step}" in k}
    plot_pck(
        at_short, args.out / "pck_ablations.png", title=f"ablations at {args.short_step} steps"
    )
    main_curves = {k: variants[k]["aligned"] for k in ("untrained (mean hand)", "main (final)")}
    main_curves.update({k: v["aligned"] for k, v in refinement.items() if k != "samples"})
    plot_pck(main_curves, args.out / "pck_main.png", title="main run (synthetic test set)")
    logs = {p.parent.name: p for p in sorted(args.runs.glob("*/log.jsonl"))}
    plot_training_curves(logs, args.out / "training_curves.png")
    pool_figure(final, args.out / "self_augment_examples.png")
    print(table(variants))
    print(table({k: v for k, v in refinement.items() if k != "samples"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
