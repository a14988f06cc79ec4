"""Reporting of evaluation scores: the fixed-width table, the run line, the JSON report.

JSON report (``--json``): ``annotations`` (the file's path), ``config`` (the estimator's
settings plus ``max_match_distance`` and ``pck_fraction``), ``run`` (the run facts of
``runner.evaluate`` plus ``seconds`` and ``device_used``), ``summaries`` (every ``Summary``
row), ``per_joint`` (every ``JointSummary``: per dataset and overall, per method, 21 values
each in the keypoint order ``keypoint_names``, null = no data, with ``per_finger_*``: the
same reduced to ``KEYPOINT_GROUPS``), ``depth_comparison`` (``summarise_depth``: ours
RGB-only and ours+depth, ``Summary`` rows over the hands whose image has an aligned depth
image; [] when none has) and ``hands`` (every ``HandScore``, the ours+depth ones included, its
(N,) errors reduced to ``mean_error_px``, ``pck`` and ``visible_keypoints``, its (21,) arrays
as lists with null for NaN). 2D in pixels, 3D in millimetres, depth errors also in % of the
annotated wrist distance, timings in milliseconds.

Printed: the summary table (``format_table``), the run line, the depth comparison when some
images have depth (``format_depth_table``), and the per-keypoint and per-finger tables over
all hands (``format_joint_table``). Camera-frame columns (cam-MPJPE, depth, depth %, bias %)
read "n/a" for MediaPipe, whose world landmarks are hand-centred.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hand_mesh_ros.evaluation.scoring import (
    ALL_DATASETS,
    DEPTH_METHOD,
    KEYPOINT_GROUPS,
    METHODS,
    PCK_FRACTION,
    HandScore,
    JointSummary,
    Summary,
    group_means,
    mean_or_none,
    summarise_all,
    summarise_depth,
    summarise_joints,
)
from hand_mesh_ros.topology import KEYPOINT_NAMES


def _cell(value: float | None, fmt: str, missing: str = "-") -> str:
    return missing if value is None or math.isnan(value) else format(value, fmt)


def format_table(summaries: Sequence[Summary]) -> str:
    """A fixed-width text table of summaries (one row per dataset and method). Columns after
    PA-MPJPE are camera-frame: cam-MPJPE (mm), depth (wrist, mm), depth % (of the annotated
    distance) and bias % (signed, > 0: too far); "n/a" for a method without metric 3D."""
    width = max([11] + [len(s.dataset) for s in summaries])
    header = (
        f"{'dataset':<{width}} {'method':<9} {'det':>7} {'2D px':>6} {'PCK@.2':>6} "
        f"{'side':>7} {'3D':>3} {'RR-MPJPE':>8} {'PA-MPJPE':>8} {'depth':>6} "
        f"{'cam-MPJPE':>9} {'depth%':>6} {'bias%':>6}"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        side = "-" if s.side_accuracy is None else f"{round(s.side_accuracy * s.side_known)}"
        side = side if side == "-" else f"{side}/{s.side_known}"
        no_depth = "n/a" if s.hands_3d else "-"
        lines.append(
            f"{s.dataset:<{width}} {s.method:<9} {f'{s.detected}/{s.hands}':>7} "
            f"{_cell(s.mean_error_px, '.1f'):>6} {_cell(s.pck, '.3f'):>6} {side:>7} "
            f"{s.hands_3d:>3} {_cell(s.rr_mpjpe_mm, '.1f'):>8} "
            f"{_cell(s.pa_mpjpe_mm, '.1f'):>8} "
            f"{_cell(s.root_depth_error_mm, '.1f', no_depth):>6} "
            f"{_cell(s.cam_mpjpe_mm, '.1f', no_depth):>9} "
            f"{_cell(s.root_depth_error_pct, '.1f', no_depth):>6} "
            f"{_cell(s.depth_bias_pct, '+.1f', no_depth):>6}"
        )
    return "\n".join(lines)


def format_depth_table(rows: Sequence[Summary]) -> str:
    """The RGB-only vs RGB-D table (``summarise_depth`` rows), camera-frame errors first:
    cam-MPJPE, wrist (3D position) and depth (wrist z) in mm, depth % of the annotated
    distance, bias % (signed), PA-MPJPE mm; ``used``: hands whose fit used the depth."""
    width = max([11] + [len(s.dataset) for s in rows])
    header = (
        f"{'dataset':<{width}} {'method':<10} {'det':>7} {'3D':>3} {'used':>4} "
        f"{'cam-MPJPE':>9} {'wrist':>6} {'depth':>6} {'depth%':>6} {'bias%':>6} "
        f"{'PA-MPJPE':>8}"
    )
    lines = [header, "-" * len(header)]
    for s in rows:
        used = str(s.depth_used) if s.method == DEPTH_METHOD else "-"
        lines.append(
            f"{s.dataset:<{width}} {s.method:<10} {f'{s.detected}/{s.hands}':>7} "
            f"{s.hands_3d:>3} {used:>4} {_cell(s.cam_mpjpe_mm, '.1f'):>9} "
            f"{_cell(s.wrist_error_mm, '.1f'):>6} {_cell(s.root_depth_error_mm, '.1f'):>6} "
            f"{_cell(s.root_depth_error_pct, '.1f'):>6} {_cell(s.depth_bias_pct, '+.1f'):>6} "
            f"{_cell(s.pa_mpjpe_mm, '.1f'):>8}"
        )
    return "\n".join(lines)


def format_joint_table(joints: Sequence[JointSummary]) -> str:
    """Per-keypoint then per-finger table: 2D px and PA-aligned 3D mm for each method, side
    by side (``joints``: one JointSummary per method, same dataset)."""
    header = f"{'keypoint':<11}" + "".join(
        f" {f'{j.method} 2D':>12} {f'{j.method} PA':>12}" for j in joints
    )
    lines = [f"per keypoint ({joints[0].dataset}): 2D px, PA-aligned 3D mm", header]
    lines.append("-" * len(header))
    for k, name in enumerate(KEYPOINT_NAMES):
        cells = "".join(
            f" {_cell(j.error_px[k], '.1f'):>12} {_cell(j.pa_error_mm[k], '.1f'):>12}"
            for j in joints
        )
        lines.append(f"{name:<11}{cells}")
    lines.append("-" * len(header))
    groups = [(group_means(j.error_px), group_means(j.pa_error_mm)) for j in joints]
    for name, _ in KEYPOINT_GROUPS:
        cells = "".join(
            f" {_cell(px[name], '.1f'):>12} {_cell(mm[name], '.1f'):>12}" for px, mm in groups
        )
        lines.append(f"{name:<11}{cells}")
    return "\n".join(lines)


def _json_value(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _json_values(values) -> list[float | None]:
    """Per-keypoint values as a JSON list, NaN -> null."""
    return [_json_value(v) for v in values]


def joint_record(joint: JointSummary) -> dict:
    """One JointSummary as JSON-ready values, with its per-finger means."""
    px, mm = group_means(joint.error_px), group_means(joint.pa_error_mm)
    return {
        "dataset": joint.dataset,
        "method": joint.method,
        "error_px": _json_values(joint.error_px),
        "pa_error_mm": _json_values(joint.pa_error_mm),
        "per_finger_error_px": {name: _json_value(v) for name, v in px.items()},
        "per_finger_pa_error_mm": {name: _json_value(v) for name, v in mm.items()},
    }


def joint_summaries(scores: Sequence[HandScore]) -> list[JointSummary]:
    """Per dataset (first-appearance order) then overall, each for every method."""
    datasets = list(dict.fromkeys(s.dataset for s in scores)) + [ALL_DATASETS]
    return [summarise_joints(scores, m, d) for d in datasets for m in METHODS]


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
    record["joint_errors_px"] = _json_values(score.joint_errors_px)
    record["pa_joint_errors_mm"] = _json_values(score.pa_joint_errors_mm)
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
        "depth_comparison": [asdict(s) for s in summarise_depth(scores)],
        "keypoint_names": list(KEYPOINT_NAMES),
        "per_joint": [joint_record(j) for j in joint_summaries(scores)],
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
    """Print the tables and the run line; write the JSON report when ``json_path`` is set."""
    summaries = summarise_all(scores)
    print(format_table(summaries))
    print(format_run_line(sum(s.method == METHODS[0] for s in scores), facts, config))
    depth_rows = summarise_depth(scores)
    if depth_rows:
        print()
        print(
            f"with aligned depth ({facts.get('images_with_depth', '?')} images): ours "
            "RGB-only vs RGB-D on the same hands, camera frame, mm"
        )
        print(format_depth_table(depth_rows))
    print()
    print(format_joint_table([summarise_joints(scores, m) for m in METHODS]))
    if json_path is not None:
        write_report(
            json_path,
            annotations=annotations,
            config=config,
            facts=facts,
            summaries=summaries,
            scores=scores,
        )
