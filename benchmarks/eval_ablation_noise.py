"""How much of an AUC difference between two checkpoints is test-set sampling noise?

    python benchmarks/eval_ablation_noise.py --test out/synthetic/test \
        out/train/main/checkpoint_0000500.pt out/train/no_self_augment/checkpoint_final.pt ...

Evaluates every checkpoint on the same test hands (``training.evaluate_model``, no
refinement) and prints, for each against the first, the 20-50 mm AUC difference with a 95 %
paired bootstrap interval over test hands (``--resamples`` draws). This covers the choice of
test hands only, not the run-to-run spread of training (one training seed per variant).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from hand_mesh_ros.datasets import open_dataset
from hand_mesh_ros.metrics import auc
from hand_mesh_ros.training.data import sequential_batches
from hand_mesh_ros.training.evaluate_model import evaluate_batches, load_trained_model

BATCH = 16


def per_hand_errors(checkpoint: Path, dataset) -> torch.Tensor:
    """(N, 21) aligned-protocol errors in mm."""
    model, cfg = load_trained_model(checkpoint)
    batches = sequential_batches(dataset, crop_size=cfg.crop_size, batch_size=BATCH)
    return evaluate_batches(model, batches).errors["aligned"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    args = parser.parse_args(argv)
    dataset = open_dataset("synthetic-dir", args.test)
    errors = [per_hand_errors(path, dataset) for path in args.checkpoints]
    generator = torch.Generator().manual_seed(0)
    n = errors[0].shape[0]
    draws = torch.randint(n, (args.resamples, n), generator=generator)
    reference = errors[0]
    for path, other in zip(args.checkpoints[1:], errors[1:], strict=True):
        diffs = torch.tensor(
            [auc(other[d], 20.0, 50.0) - auc(reference[d], 20.0, 50.0) for d in draws]
        )
        low, high = torch.quantile(diffs, torch.tensor([0.025, 0.975], dtype=diffs.dtype))
        point = auc(other, 20.0, 50.0) - auc(reference, 20.0, 50.0)
        print(f"{path}: AUC20-50 difference {point:+.3f} (95 % {low:+.3f} .. {high:+.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
