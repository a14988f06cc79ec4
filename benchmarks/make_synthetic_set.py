"""Render a synthetic hand set to disk (``datasets.write_dataset``) for training or testing.

    python benchmarks/make_synthetic_set.py --out data/synthetic/train --count 4000 --seed 1000
    python benchmarks/make_synthetic_set.py --out data/synthetic/test --count 500 --seed 2024

The images are ``--image-size`` px squares from ``datasets.SyntheticGenerator`` with its
default distribution (``training.data.synthetic_config``); sample i of seed s is the same as
``hand-mesh evaluate-model --synthetic N --seed s`` and the trainer's in-memory synthetic set
render. Training and test sets use different seeds, so they share no hand.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hand_mesh_ros.datasets import SyntheticDataset, write_dataset
from hand_mesh_ros.training.data import synthetic_config

PROGRESS_EVERY = 250  # samples between progress lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--image-size", type=int, default=192)
    args = parser.parse_args(argv)
    dataset = SyntheticDataset(synthetic_config(args.image_size), args.seed, args.count)
    start = time.perf_counter()

    def samples():
        for i in range(len(dataset)):
            if i % PROGRESS_EVERY == 0:
                print(f"{i}/{len(dataset)} {time.perf_counter() - start:.0f} s", file=sys.stderr)
            yield dataset[i]

    written = write_dataset(args.out, samples())
    print(f"wrote {written} samples to {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
