"""The ``hand-mesh train`` and ``hand-mesh evaluate-model`` subcommands (argument parsing and
the glue around ``trainer.Trainer`` and ``evaluate_model``).

    hand-mesh train --config config/train_synthetic.yaml [--out DIR] [--resume CKPT]
                    [--device auto|cpu|cuda] [--set key=value ...] [--quiet]
    hand-mesh evaluate-model --checkpoint CKPT (--synthetic N [--seed S] |
                    --dataset KIND --root DIR [--split SPLIT]) [--refine-iterations N]
                    [--limit N] [--batch-size B] [--device ...] --out DIR

``evaluate-model`` writes ``<out>/metrics.json`` (``EvaluationResult.summary()`` per
variant: "network" and, with --refine-iterations N > 0, "refined") and ``<out>/pck.png``.
Exit status: 0 ok, 1 failure (one ``error:`` line), 2 usage errors (from argparse).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hand_mesh_ros.devices import DEVICES, resolve_device
from hand_mesh_ros.training.config import load_config

EXIT_OK, EXIT_FAILED = 0, 1
DEFAULT_TEST_SEED = 2024  # the held-apart synthetic test stream (training uses data_seed)
EVAL_KINDS = ("rhd", "stb", "freihand", "synthetic-dir", "annotations")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="YAML training config")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default out/train/<config name>)"
    )
    parser.add_argument(
        "--resume", type=Path, default=None, metavar="CKPT", help="continue from a checkpoint"
    )
    parser.add_argument(
        "--device", choices=DEVICES, default=None, help="overrides the config's device"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a config option (repeatable), e.g. --set stage2_steps=100",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run_train(args: argparse.Namespace) -> int:
    from hand_mesh_ros.training.data import build_training_source
    from hand_mesh_ros.training.trainer import Trainer

    try:
        overrides = list(args.overrides) + ([f"device={args.device}"] if args.device else [])
        cfg = load_config(args.config, overrides)
        device = resolve_device(cfg.device)
        out = args.out or Path("out/train") / (args.config.stem if args.config else "default")
        trainer = Trainer(cfg, build_training_source(cfg), device=device)
        if args.resume is not None:
            trainer.resume(args.resume)
        final = trainer.run(out, quiet=args.quiet)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: train: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        print(f"done: {final} and {out / 'evidence.pt'}", file=sys.stderr)
    return EXIT_OK


def add_evaluate_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="a hand-mesh train checkpoint"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", type=int, metavar="N", help="N rendered test hands")
    source.add_argument("--dataset", choices=EVAL_KINDS, help="a dataset reader (needs --root)")
    parser.add_argument("--root", type=Path, help="dataset folder (annotations: the .jsonl)")
    parser.add_argument("--split", default=None, help="dataset split (reader default: training)")
    parser.add_argument("--seed", type=int, default=DEFAULT_TEST_SEED, help="synthetic stream seed")
    parser.add_argument(
        "--refine-iterations",
        type=int,
        default=0,
        metavar="N",
        help="also evaluate with N iterations of test-time refinement (Eq. 13); 0 = off",
    )
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="first N samples only")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--quiet", action="store_true")


def evaluation_dataset(args: argparse.Namespace, image_size: int):
    """The map-style dataset of HandSamples the arguments name."""
    from hand_mesh_ros.datasets import SyntheticDataset, open_dataset
    from hand_mesh_ros.training.data import synthetic_config

    if args.synthetic is not None:
        if args.synthetic < 1:
            raise ValueError("--synthetic needs N >= 1")
        return SyntheticDataset(synthetic_config(image_size), args.seed, args.synthetic)
    if args.root is None:
        raise ValueError(f"--dataset {args.dataset} needs --root")
    if args.dataset == "annotations":
        from hand_mesh_ros.training.annotations import AnnotationDataset

        return AnnotationDataset(args.root)
    return open_dataset(args.dataset, args.root, args.split)


def run_evaluate_model(args: argparse.Namespace) -> int:
    from hand_mesh_ros.training.data import sequential_batches
    from hand_mesh_ros.training.evaluate_model import evaluate_batches, load_trained_model
    from hand_mesh_ros.training.plots import plot_pck

    try:
        if args.refine_iterations < 0 or args.batch_size < 1:
            raise ValueError("need --refine-iterations >= 0 and --batch-size >= 1")
        device = resolve_device(args.device)
        model, cfg = load_trained_model(args.checkpoint, device)
        dataset = evaluation_dataset(args, cfg.synthetic_image_size)
        if args.limit is not None:
            dataset = LimitedDataset(dataset, args.limit)
        batches = list(
            sequential_batches(dataset, crop_size=cfg.crop_size, batch_size=args.batch_size)
        )
        variants = {"network": 0}
        if args.refine_iterations > 0:
            variants["refined"] = args.refine_iterations
        report = {"checkpoint": str(args.checkpoint), "samples": len(dataset), "variants": {}}
        for name, iterations in variants.items():
            start = time.perf_counter()
            result = evaluate_batches(model, batches, refine_iterations=iterations)
            summary = result.summary()
            summary["refine_iterations"] = iterations
            summary["seconds"] = time.perf_counter() - start
            report["variants"][name] = summary
            if not args.quiet:
                print(_headline(name, summary), file=sys.stderr)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: evaluate-model: {exc}", file=sys.stderr)
        return EXIT_FAILED
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=1))
    curves = {name: v["aligned"] for name, v in report["variants"].items() if "aligned" in v}
    if curves:
        plot_pck(curves, args.out / "pck.png", title=f"3D PCK ({args.checkpoint.parent.name})")
    return EXIT_OK


def _headline(name: str, summary: dict) -> str:
    aligned = summary.get("aligned")
    text = f"{name}: {summary['samples']} samples"
    if aligned:
        text += (
            f", aligned mean {aligned['mean_mm']:.1f} mm, median {aligned['median_mm']:.1f} mm, "
            f"AUC20-50 {aligned['auc_20_50']:.3f}, PA {summary['pa']['mean_mm']:.1f} mm"
        )
    if summary.get("mask_iou") is not None:
        text += f", mask IoU {summary['mask_iou']:.3f}"
    return text


class LimitedDataset:
    """The first ``limit`` items of a map-style dataset."""

    def __init__(self, dataset, limit: int) -> None:
        if limit < 1:
            raise ValueError("--limit needs N >= 1")
        self.dataset, self.limit = dataset, min(limit, len(dataset))

    def __len__(self) -> int:
        return self.limit

    def __getitem__(self, index: int):
        if not 0 <= index < self.limit:
            raise IndexError(index)
        return self.dataset[index]
