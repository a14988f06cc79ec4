"""The ``hand-mesh train-regressor`` subcommand: trains the keypoint -> mesh regressor that the
live pipeline uses (``nets/keypoint_regressor.py``, ``regressor_trainer.py``).

    hand-mesh train-regressor [--steps 10000] [--batch 256] [--seed 0] [--lr 1e-3]
                              [--out WEIGHTS] [--curve-dir DIR]
    hand-mesh train-regressor --evaluate WEIGHTS [--seed 0]

The shipped weights were made with ``--steps 10000 --batch 256 --seed 0`` from the repository
root (``docs/regressor.md``). Writes the weights (float16, ``--out``; by default the package's
shipped file, which is then replaced), ``<curve-dir>/training_curve.png`` and
``<curve-dir>/training_log.json`` (losses and held-out metrics), and prints progress.
``--evaluate`` only prints the held-out metrics of a weights file (JSON). Runs on one CPU
thread (much faster than two contended threads on a small machine).
Exit status: 0 ok, 1 failure (one ``error:`` line), 2 usage errors (from argparse).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hand_mesh_ros.nets.keypoint_regressor import DEFAULT_WEIGHTS

EXIT_OK, EXIT_FAILED = 0, 1
DEFAULT_CURVE_DIR = Path("docs/regressor")  # relative to the repository root, the run's folder
LOGGED_ARGS = ("steps", "batch", "seed", "lr", "out", "curve_dir", "evaluate")  # in the log


def add_train_regressor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_WEIGHTS,
        help="weights file to write (default: the shipped weights in the package)",
    )
    parser.add_argument(
        "--curve-dir",
        type=Path,
        default=DEFAULT_CURVE_DIR,
        help=f"folder of training_curve.png and training_log.json (default {DEFAULT_CURVE_DIR})",
    )
    parser.add_argument(
        "--evaluate",
        type=Path,
        default=None,
        help="only print the held-out metrics of these weights",
    )


def run_train_regressor(args: argparse.Namespace) -> int:
    import torch

    from hand_mesh_ros.nets.keypoint_regressor import (
        load_keypoint_regressor,
        save_keypoint_regressor,
    )
    from hand_mesh_ros.training.plots import plot_regressor_curve
    from hand_mesh_ros.training.regressor_trainer import report, train

    torch.set_num_threads(1)
    try:
        if args.evaluate is not None:
            metrics = report(load_keypoint_regressor(args.evaluate), args.seed)
            print(json.dumps(metrics, indent=1))
            return EXIT_OK
        if args.steps < 1 or args.batch < 1:
            raise ValueError("need --steps >= 1 and --batch >= 1")
        regressor, history = train(steps=args.steps, batch=args.batch, seed=args.seed, lr=args.lr)
        save_keypoint_regressor(regressor, args.out)
        args.curve_dir.mkdir(parents=True, exist_ok=True)
        plot_regressor_curve(history, args.curve_dir / "training_curve.png")
        history["args"] = {k: str(v) for k, v in vars(args).items() if k in LOGGED_ARGS}
        (args.curve_dir / "training_log.json").write_text(json.dumps(history, indent=1))
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: train-regressor: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) in "
        f"{history['seconds']:.0f} s"
    )
    return EXIT_OK
