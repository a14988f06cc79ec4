"""``hand-mesh evaluate``: our pipeline vs MediaPipe's own landmarks on annotated images.

The command line only: options, exit status (0, or 2 for a missing or malformed annotation
file, an unreadable image or an unusable depth image) and the wiring of ``runner`` (the
loop) to ``report`` (output).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from hand_mesh_ros.datasets.annotations import load_annotations
from hand_mesh_ros.depthio import DepthError
from hand_mesh_ros.evaluation.report import report
from hand_mesh_ros.evaluation.runner import evaluate, make_estimator
from hand_mesh_ros.evaluation.scoring import DEFAULT_MAX_MATCH_DISTANCE, PCK_FRACTION
from hand_mesh_ros.imageio import ImageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hand-mesh evaluate``."""
    parser.add_argument(
        "annotations", type=Path, help="annotations .jsonl (format: docs/evaluation.md)"
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="torch device for the pipeline (default: auto)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        metavar="N",
        help="refinement iterations per hand (default: the estimator's, 50)",
    )
    parser.add_argument(
        "--max-match-distance",
        type=float,
        default=DEFAULT_MAX_MATCH_DISTANCE,
        help="max mean keypoint distance for a detection to match an annotated "
        "hand, as a fraction of its box's longer side (default: %(default)s)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="OUT",
        help="write all numbers (summaries and per-hand scores) to OUT",
    )


def run(args: argparse.Namespace) -> int:
    """``hand-mesh evaluate``: prints the table; 0 on success, 2 on bad input."""
    from hand_mesh_ros.pipeline.estimator import EstimatorConfig  # loaded only to run

    try:
        annotations = load_annotations(args.annotations)
        overrides = {} if args.iterations is None else {"refine_iterations": args.iterations}
        config = EstimatorConfig(device=args.device, **overrides)
    except (OSError, ValueError) as exc:
        print(f"hand-mesh evaluate: {exc}", file=sys.stderr)
        return 2
    estimator, recorder = make_estimator(config)
    start = time.perf_counter()
    try:
        scores, facts = evaluate(
            annotations, estimator, recorder, max_match_distance=args.max_match_distance
        )
    except (OSError, ImageError, DepthError) as exc:
        print(f"hand-mesh evaluate: {exc}", file=sys.stderr)
        return 2
    finally:
        estimator.close()
    facts.update(seconds=time.perf_counter() - start, device_used=str(estimator.device))
    config_record = {
        **asdict(config),
        "max_match_distance": args.max_match_distance,
        "pck_fraction": PCK_FRACTION,
    }
    report(scores, facts, config_record, annotations=args.annotations, json_path=args.json)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hand_mesh_ros.evaluation`` (the same as ``hand-mesh evaluate``)."""
    parser = argparse.ArgumentParser(prog="hand-mesh evaluate", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
