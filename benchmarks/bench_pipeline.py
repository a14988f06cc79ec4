"""Pipeline benchmark on a synthetic rendered clip with known ground truth.

Runs the full pipeline (mediapipe detection, DHPE keypoint regression, PnP placement,
test-time refinement) on every frame of a clip rendered from the open hand model, twice:
  cold:    HandMeshEstimator.estimate per frame (every frame from scratch)
  tracked: HandTracker.update (warm-started from the previous frame)
and prints per-stage times, frames/s, accuracy against the truth (2D px, PA-MPJPE and
root-relative MPJPE in mm, wrist depth error in mm) and jitter: the mean magnitude of the
frame-to-frame acceleration of the 3D keypoints minus the truth's (mm per frame^2).

Usage: python benchmarks/bench_pipeline.py [--frames 40] [--seed 0] [--threads 2]
       [--device cpu|cuda] [--palm-search-frames N] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics

import numpy as np
import torch

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.metrics import pa_mpjpe, root_relative_mpjpe
from hand_mesh_ros.pipeline import (
    CameraIntrinsics,
    EstimatorConfig,
    HandMeshEstimator,
    HandTracker,
    TrackerConfig,
)
from hand_mesh_ros.synthetic.clip import FRAME_PERIOD_S, render_clip

STAGES = ("detect", "regress", "align", "refine", "total")


def run(process, clip, camera) -> dict:
    """process(image, camera, index) -> FrameResult for every frame of the clip."""
    rows, predictions = [], []
    for index, frame in enumerate(clip.frames):
        result = process(frame.image, camera, index)
        hand = result.hands[0] if result.hands else None
        predictions.append(None if hand is None else hand.keypoints_3d)
        row = {s: result.timings_ms.get(s, 0.0) for s in STAGES}
        if hand is not None:
            truth = torch.tensor(frame.keypoints_3d)[None]
            pred = torch.tensor(hand.keypoints_3d)[None]
            row.update(
                kp2d_px=float(
                    np.linalg.norm(hand.keypoints_2d - frame.keypoints_2d, axis=1).mean()
                ),
                pa_mpjpe_mm=1000 * float(pa_mpjpe(pred, truth)),
                rr_mpjpe_mm=1000 * float(root_relative_mpjpe(pred, truth)),
                depth_err_mm=1000 * abs(hand.keypoints_3d[0, 2] - frame.keypoints_3d[0, 2]),
                iterations=hand.refine_iterations,
            )
        rows.append(row)
    return summarise(rows, predictions, clip)


def mediapipe_scores(detector, clip) -> dict:
    """mediapipe's own landmarks on the same frames: 2D px and world-landmark PA-MPJPE and
    root-relative MPJPE (its world landmarks are metric but hand-centred: no depth)."""
    px, pa, rr, predictions = [], [], [], []
    for frame in clip.frames:
        found = detector.detect(frame.image)
        if not found or found[0].world_keypoints is None:
            predictions.append(None)
            continue
        d = found[0]
        truth = torch.tensor(frame.keypoints_3d)[None]
        world = torch.tensor(d.world_keypoints)[None]
        px.append(float(np.linalg.norm(d.keypoints - frame.keypoints_2d, axis=1).mean()))
        pa.append(1000 * float(pa_mpjpe(world, truth)))
        rr.append(1000 * float(root_relative_mpjpe(world, truth)))
        # hand-centred: add the truth's wrist so that only the articulation's jitter counts
        predictions.append(d.world_keypoints - d.world_keypoints[0] + frame.keypoints_3d[0])
    return {
        "detected": len(px),
        "kp2d_px": statistics.mean(px) if px else None,
        "pa_mpjpe_mm": statistics.mean(pa) if pa else None,
        "rr_mpjpe_mm": statistics.mean(rr) if rr else None,
        "jitter_mm": jitter_mm(predictions, clip),
    }


def jitter_mm(predictions, clip) -> float | None:
    """Mean |acceleration error| of the 3D keypoints over frames with three detections."""
    errors = []
    for t in range(2, len(predictions)):
        window = predictions[t - 2 : t + 1]
        if any(p is None for p in window):
            continue
        truth = [clip.frames[t - k].keypoints_3d for k in (2, 1, 0)]
        acc = window[2] - 2 * window[1] + window[0]
        acc_truth = truth[2] - 2 * truth[1] + truth[0]
        errors.append(1000 * np.linalg.norm(acc - acc_truth, axis=1).mean())
    return float(np.mean(errors)) if errors else None


def summarise(rows, predictions, clip) -> dict:
    found = [r for r in rows if "kp2d_px" in r]
    out = {"frames": len(rows), "detected": len(found)}
    for stage in STAGES:
        out[f"{stage}_ms"] = statistics.mean(r[stage] for r in rows[1:] or rows)
    out["frames_per_s"] = 1000.0 / out["total_ms"]
    for key in ("kp2d_px", "pa_mpjpe_mm", "rr_mpjpe_mm", "depth_err_mm", "iterations"):
        out[key] = statistics.mean(r[key] for r in found) if found else None
    out["jitter_mm"] = jitter_mm(predictions, clip)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--temporal-weight",
        type=float,
        default=None,
        help="override EstimatorConfig.temporal_weight",
    )
    parser.add_argument(
        "--warm-iterations", type=int, default=None, help="override EstimatorConfig.warm_iterations"
    )
    parser.add_argument(
        "--palm-search-frames", type=int, default=None,
        help="override TrackerConfig.palm_search_frames (> 1: follow tracked hands' landmarks)",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_hand_model("right")
    clip = render_clip(model, PosePrior.from_model(model), args.frames, seed=args.seed)
    camera = CameraIntrinsics.from_matrix(clip.K)
    overrides = {}
    if args.temporal_weight is not None:
        overrides["temporal_weight"] = args.temporal_weight
    if args.warm_iterations is not None:
        overrides["warm_iterations"] = args.warm_iterations
    estimator = HandMeshEstimator(EstimatorConfig(device=args.device, **overrides))
    tracker = HandTracker(
        estimator,
        TrackerConfig()
        if args.palm_search_frames is None
        else TrackerConfig(palm_search_frames=args.palm_search_frames),
    )
    report = {
        "clip": f"{args.frames} frames 640x480, seed {args.seed}",
        "device": str(estimator.device),
        "threads": args.threads,
        "config": dataclasses.asdict(estimator.config),
        "tracker_config": dataclasses.asdict(tracker.config),
        "cold": run(lambda image, camera, _: estimator.estimate(image, camera), clip, camera),
        "tracked": run(
            lambda image, camera, i: tracker.update(image, camera, stamp=i * FRAME_PERIOD_S),
            clip,
            camera,
        ),
        "mediapipe": mediapipe_scores(estimator.detector, clip),
    }
    estimator.close()
    for mode in ("cold", "tracked", "mediapipe"):
        r = report[mode]
        print(
            f"{mode:8s} "
            + " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
