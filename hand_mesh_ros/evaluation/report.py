"""Reporting of evaluation scores: the fixed-width table, the run line, the JSON report.

JSON report (``--json``): ``annotations`` (the file's path), ``config`` (the estimator's
settings plus ``max_match_distance`` and ``pck_fraction``), ``run`` (the run facts of
``runner.evaluate`` plus ``seconds`` and ``device_used``), ``summaries`` (every ``Summary``
row) and ``hands`` (every ``HandScore``, its (N,) errors reduced to ``mean_error_px``, ``pck``
and ``visible_keypoints``). 2D in pixels, 3D in millimetres, timings in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from hand_mesh_ros.evaluation.scoring import (
    METHODS,
    PCK_FRACTION,
    HandScore,
    Summary,
    mean_or_none,
    summarise_all,
)


def _cell(value: float | None, fmt: str, missing: str = "-") -> str:
    return missing if value is None else format(value, fmt)


def format_table(summaries: Sequence[Summary]) -> str:
    """A fixed-width text table of summaries (one row per dataset and method)."""
    header = (
        f"{'dataset':<11} {'method':<9} {'det':>6} {'2D px':>6} {'PCK@.2':>6} "
        f"{'side':>5} {'3D':>3} {'RR-MPJPE':>8} {'PA-MPJPE':>8} {'depth':>6}"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        side = "-" if s.side_accuracy is None else f"{round(s.side_accuracy * s.side_known)}"
        side = side if side == "-" else f"{side}/{s.side_known}"
        no_depth = "n/a" if s.method == "mediapipe" and s.hands_3d else "-"
        lines.append(
            f"{s.dataset:<11} {s.method:<9} {f'{s.detected}/{s.hands}':>6} "
            f"{_cell(s.mean_error_px, '.1f'):>6} {_cell(s.pck, '.3f'):>6} {side:>5} "
            f"{s.hands_3d:>3} {_cell(s.rr_mpjpe_mm, '.1f'):>8} "
            f"{_cell(s.pa_mpjpe_mm, '.1f'):>8} "
            f"{_cell(s.root_depth_error_mm, '.1f', no_depth):>6}"
        )
    return "\n".join(lines)


def format_run_line(hands: int, facts: dict, config: dict) -> str:
    """One line of run facts: images, hands, device, iterations, mean pipeline time (ms)."""
    return (
        f"{facts['images']} images, {hands} hands, device "
        f"{facts['device_used']}, {config['refine_iterations']} refinement iterations; mean "
        f"pipeline time {facts['mean_timings_ms'].get('total', float('nan')):.0f} ms per "
        f"image. PCK threshold: {PCK_FRACTION} x the annotated box's longer side; 3D in mm."
    )


def hand_record(score: HandScore) -> dict:
    """One hand's scores as JSON-ready values (errors_px reduced to its mean and PCK)."""
    record = asdict(score)
    record.pop("errors_px")
    record["mean_error_px"] = mean_or_none(score.errors_px)
    record["pck"] = mean_or_none(score.pck)
    record["visible_keypoints"] = int(score.errors_px.size)
    return record


def write_report(
    path: Path,
    *,
    annotations: Path,
    config: dict,
    facts: dict,
    summaries: Sequence[Summary],
    scores: Sequence[HandScore],
) -> None:
    """Write the JSON report (layout: this module's docstring), creating the folder."""
    report = {
        "annotations": str(annotations),
        "config": config,
        "run": facts,
        "summaries": [asdict(s) for s in summaries],
        "hands": [hand_record(s) for s in scores],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def report(
    scores: Sequence[HandScore],
    facts: dict,
    config: dict,
    *,
    annotations: Path,
    json_path: Path | None,
) -> None:
    """Print the table and the run line; write the JSON report when ``json_path`` is set."""
    summaries = summarise_all(scores)
    print(format_table(summaries))
    print(format_run_line(len(scores) // len(METHODS), facts, config))
    if json_path is not None:
        write_report(
            json_path,
            annotations=annotations,
            config=config,
            facts=facts,
            summaries=summaries,
            scores=scores,
        )
