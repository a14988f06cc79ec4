"""Depth benchmark: RGB-only vs RGB-D on synthetic hands with exact metric truth.

Scenes (``hand_mesh_ros.synthetic``): the open hand model, left and right alternately, pose
from its prior, hand size uniform in +-2 SD (shape[0], 5 % per SD: +-10 %) and the other
shape components ~N(0,1) clipped to +-2, at 0.3-1.0 m (of the middle knuckle) in front of a
640x480 camera (f = 615 px, a RealSense D435's colour camera), shaded over a procedural
background; the aligned depth is the hand over a tilted wall 1-2 m away through the
RealSense-class ``DepthNoiseModel`` (noise ~ z^2, holes at edges and on dark/bright parts,
1 mm quantisation, a 2 px misalignment).

Measured through the public API only (``HandMeshEstimator``, ``HandTracker``):
  single:   per frame, ``estimate`` with and without depth on the same image and the same
            detections: camera-frame MPJPE, wrist error, PA-MPJPE (mm), detection rate,
            fitted / true hand size (wrist to middle knuckle, and the hand length wrist to
            middle tip along the bones), per distance bin.
  occluded: the same hands with a box held 3-8 cm in front of 20-40 % of the hand (colour
            and depth): the error ratio occluded / unoccluded with depth.
  tracked:  ``HandTracker.update`` over a clip of each side with depth, without, and with
            depth for the first half only (does the learned size keep later RGB-only frames
            metric?): error, jitter (mean |frame-to-frame change - the truth's|, mm), the
            size learned per track, and the cost per tracked frame.

Usage: python benchmarks/bench_depth.py [--frames 200] [--clip-frames 60] [--clip-seed 3]
       [--seed 0] [--threads 2] [--device cpu] [--out docs/benchmarks_depth.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.camera import intrinsics_matrix
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.metrics import pa_mpjpe
from hand_mesh_ros.pipeline import CameraIntrinsics, EstimatorConfig, HandMeshEstimator, HandTracker
from hand_mesh_ros.synthetic import SceneConfig, sample_scene_params
from hand_mesh_ros.synthetic.clip import FRAME_PERIOD_S, background, render_clip, render_frame
from hand_mesh_ros.synthetic.depth_camera import (
    DepthNoiseModel,
    OccluderConfig,
    add_occluder,
    apply_depth_noise,
    sample_wall,
    scene_depth,
)
from hand_mesh_ros.topology import (
    KEYPOINT_PARENTS,
    MIDDLE_MCP_KEYPOINT,
    TIP_KEYPOINTS,
    WRIST_KEYPOINT,
)

IMAGE_SIZE = (480, 640)  # H, W
FOCAL_PX = 615.0  # a RealSense D435 colour camera at 640x480 (~69 deg horizontal FOV)
SCENE = SceneConfig(depth_range=(0.3, 1.0), max_tilt_deg=40.0)
SIZE_SD = 2.0  # shape[0] (overall size, 5 % per SD) uniform in +-SIZE_SD
DISTANCE_BINS = ((0.3, 0.45), (0.45, 0.6), (0.6, 0.8), (0.8, 1.0))  # m, of the middle knuckle
SIDES = ("right", "left")
MIDDLE_TIP_KEYPOINT = TIP_KEYPOINTS[2]
CLIP_SEED = 3  # tracked clips: a view mediapipe detects with the right side label, both sides
MODES = ("rgb", "rgbd", "occluded_rgb", "occluded_rgbd")


@dataclass(frozen=True, eq=False)
class Sample:
    """One synthetic RGB-D frame and its occluded twin (images (H,W,3) uint8, depths (H,W)
    float32 m); truth keypoints (21,3) m camera frame, (21,2) px; distance m."""

    side: str
    distance: float
    truth: HandParams
    keypoints_3d: np.ndarray
    keypoints_2d: np.ndarray
    image: np.ndarray
    depth: np.ndarray
    occluded_image: np.ndarray
    occluded_depth: np.ndarray
    coverage: float


def sized_hand(model, prior, K, generator) -> HandParams:
    """A random scene hand whose size is uniform in +-SIZE_SD, re-centred where it was."""
    params = sample_scene_params(model, prior, 1, K, IMAGE_SIZE, generator=generator, config=SCENE)
    shape = params.shape.clone()
    shape[:, 0] = (2 * torch.rand(1, generator=generator, dtype=shape.dtype) - 1) * SIZE_SD
    sized = replace(params, shape=shape)
    with torch.no_grad():
        before = model(**params.as_kwargs()).keypoints[:, MIDDLE_MCP_KEYPOINT]
        after = model(**sized.as_kwargs()).keypoints[:, MIDDLE_MCP_KEYPOINT]
    return replace(sized, transl=sized.transl + before - after)


def make_sample(index, side, model, prior, K, generator, rng, noise, seed) -> Sample:
    params = sized_hand(model, prior, K, generator)
    frame = render_frame(model, params, K, background(*IMAGE_SIZE, seed * 100_003 + index))
    with torch.no_grad():
        vertices = model(**params.as_kwargs()).vertices[0]
    clean = scene_depth(vertices, model.faces, K.numpy(), IMAGE_SIZE, sample_wall(rng))
    occluded = add_occluder(vertices, model.faces, K.numpy(), frame.image, clean, rng)
    return Sample(
        side=side,
        distance=float(frame.keypoints_3d[MIDDLE_MCP_KEYPOINT, 2]),
        truth=params,
        keypoints_3d=frame.keypoints_3d,
        keypoints_2d=frame.keypoints_2d,
        image=frame.image,
        depth=apply_depth_noise(clean, frame.image, noise, rng),
        occluded_image=occluded.image,
        occluded_depth=apply_depth_noise(occluded.depth, occluded.image, noise, rng),
        coverage=occluded.coverage,
    )


def hand_size(keypoints_3d: np.ndarray) -> float:
    """Wrist to middle knuckle, m."""
    return float(np.linalg.norm(keypoints_3d[MIDDLE_MCP_KEYPOINT] - keypoints_3d[WRIST_KEYPOINT]))


def hand_length(keypoints_3d: np.ndarray) -> float:
    """Wrist to middle fingertip along the bones (pose-invariant hand length), m."""
    length, joint = 0.0, MIDDLE_TIP_KEYPOINT
    while KEYPOINT_PARENTS[joint] >= 0:
        parent = KEYPOINT_PARENTS[joint]
        length += float(np.linalg.norm(keypoints_3d[joint] - keypoints_3d[parent]))
        joint = parent
    return length


def nearest_hand(result, keypoints_2d: np.ndarray):
    """The estimated hand whose 2D keypoints are nearest the truth's (None when none)."""
    if not result.hands:
        return None
    return min(result.hands, key=lambda h: np.linalg.norm(h.keypoints_2d - keypoints_2d, axis=1)
               .mean())


def errors(hand, keypoints_3d: np.ndarray, side: str) -> dict:
    """Camera-frame errors (mm) of one estimate against the truth, size and depth status."""
    pred, truth = torch.tensor(hand.keypoints_3d)[None], torch.tensor(keypoints_3d)[None]
    return {
        "mpjpe_mm": 1000 * float(np.linalg.norm(hand.keypoints_3d - keypoints_3d, axis=1).mean()),
        "wrist_mm": 1000 * float(np.linalg.norm(hand.keypoints_3d[0] - keypoints_3d[0])),
        "pa_mpjpe_mm": 1000 * float(pa_mpjpe(pred, truth)),
        "size_ratio": hand_size(hand.keypoints_3d) / hand_size(keypoints_3d),
        "length_ratio": hand_length(hand.keypoints_3d) / hand_length(keypoints_3d),
        "shape0": float(hand.shape[0]),
        "side_correct": hand.side == side,
        "depth_status": None if hand.depth is None else hand.depth.status,
    }


def estimate_sample(estimator, camera, sample: Sample) -> dict:
    """Per mode, the errors of the hand nearest the truth, or None when none was found."""
    out = {}
    for occluded in (False, True):
        image = sample.occluded_image if occluded else sample.image
        depth = sample.occluded_depth if occluded else sample.depth
        detections = estimator.detect(image)
        for use_depth in (False, True):
            if use_depth:  # the side the depth shows, as ``estimate`` does when it detects
                found = estimator.sides_from_depth(detections, depth, camera)
                result = estimator.estimate(image, camera, detections=found, depth=depth)
            else:
                result = estimator.estimate(image, camera, detections=detections)
            hand = nearest_hand(result, sample.keypoints_2d)
            mode = ("occluded_" if occluded else "") + ("rgbd" if use_depth else "rgb")
            out[mode] = None if hand is None else errors(hand, sample.keypoints_3d, sample.side)
    return out


def summary(rows: list[dict | None]) -> dict:
    """Detection rate and mean / median of each error over the detected rows."""
    found = [r for r in rows if r is not None]
    out = {"n": len(rows), "detected": len(found) / len(rows) if rows else None}
    for key in ("mpjpe_mm", "wrist_mm", "pa_mpjpe_mm", "size_ratio", "length_ratio"):
        values = [r[key] for r in found]
        out[key] = statistics.mean(values) if values else None
        out[f"{key}_median"] = statistics.median(values) if values else None
    if found:
        out["side_correct"] = sum(r["side_correct"] for r in found) / len(found)
        statuses = Counter(r["depth_status"] for r in found if r["depth_status"] is not None)
        if statuses:
            out["depth_status"] = dict(statuses)
    return out


def single_frames(samples: list[Sample], results: list[dict]) -> dict:
    bins = {}
    for lo, hi in DISTANCE_BINS:
        picked = [r for s, r in zip(samples, results, strict=True) if lo <= s.distance < hi
                  or (hi == DISTANCE_BINS[-1][1] and s.distance == hi)]
        bins[f"{lo:.2f}-{hi:.2f}"] = {m: summary([r[m] for r in picked]) for m in MODES}
    overall = {m: summary([r[m] for r in results]) for m in MODES}
    by_side = {side: {m: summary([r[m] for s, r in zip(samples, results, strict=True)
                                  if s.side == side]) for m in MODES} for side in SIDES}
    return {"bins": bins, "all": overall, "by_side": by_side}


def occluder_ratio(results: list[dict]) -> dict:
    """Error ratio occluded / unoccluded over the frames where both were found."""
    out = {}
    for depth_mode in ("rgbd", "rgb"):
        pairs = [(r[depth_mode], r[f"occluded_{depth_mode}"]) for r in results
                 if r[depth_mode] is not None and r[f"occluded_{depth_mode}"] is not None]
        entry = {"pairs": len(pairs)}
        for key in ("mpjpe_mm", "wrist_mm", "pa_mpjpe_mm"):
            if pairs:
                plain = statistics.mean(p[key] for p, _ in pairs)
                occluded = statistics.mean(o[key] for _, o in pairs)
                entry[key] = {"unoccluded": plain, "occluded": occluded,
                              "ratio": occluded / plain}
        out[depth_mode] = entry
    return out


def per_hand(samples: list[Sample], results: list[dict]) -> list[dict]:
    """Per hand: true and fitted size (shape[0] and wrist-to-knuckle ratio)."""
    rows = []
    for s, r in zip(samples, results, strict=True):
        row = {"side": s.side, "distance_m": round(s.distance, 4),
               "true_shape0": round(float(s.truth.shape[0, 0]), 3),
               "coverage": round(s.coverage, 3)}
        for mode in ("rgb", "rgbd"):
            e = r[mode]
            row[f"{mode}_shape0"] = None if e is None else round(e["shape0"], 3)
            row[f"{mode}_size_ratio"] = None if e is None else round(e["size_ratio"], 4)
            row[f"{mode}_length_ratio"] = None if e is None else round(e["length_ratio"], 4)
            row[f"{mode}_mpjpe_mm"] = None if e is None else round(e["mpjpe_mm"], 2)
        rows.append(row)
    return rows


def track_clip(estimator, clip, side: str, depth_frames: int) -> dict:
    """HandTracker over the clip of a ``side`` hand, given depth on its first
    ``depth_frames`` frames."""
    tracker = HandTracker(estimator)
    camera = CameraIntrinsics.from_matrix(clip.K)
    predictions, rows, timings = [], [], []
    for index, frame in enumerate(clip.frames):
        kwargs = {"depth": frame.depth} if index < depth_frames else {}
        t0 = time.perf_counter()
        result = tracker.update(frame.image, camera, stamp=index * FRAME_PERIOD_S, **kwargs)
        wall_ms = (time.perf_counter() - t0) * 1e3
        hand = nearest_hand(result, frame.keypoints_2d)
        predictions.append(None if hand is None else hand.keypoints_3d)
        timings.append({**result.timings_ms, "wall": wall_ms})
        row = None
        if hand is not None:
            row = errors(hand, frame.keypoints_3d, side)
            row.update(track_id=hand.track_id, depth_used=hand.depth_used,
                       true_shape0=float(frame.truth.shape[0, 0]))
        rows.append(row)
    return {"rows": rows, "predictions": predictions, "timings": timings}


def jitter_mm(predictions, clip) -> float | None:
    """Mean over frames and keypoints of |(p_t - p_t-1) - (g_t - g_t-1)|, mm."""
    values = []
    for t in range(1, len(predictions)):
        if predictions[t] is None or predictions[t - 1] is None:
            continue
        change = predictions[t] - predictions[t - 1]
        truth = clip.frames[t].keypoints_3d - clip.frames[t - 1].keypoints_3d
        values.append(1000 * np.linalg.norm(change - truth, axis=1).mean())
    return float(np.mean(values)) if values else None


def learned_sizes(rows: list[dict | None], last: int = 10) -> dict:
    """Per track: frames, median fitted/true size over its last ``last`` frames, shape[0]."""
    tracks: dict[int, list[dict]] = {}
    for r in rows:
        if r is not None:
            tracks.setdefault(r["track_id"], []).append(r)
    return {
        str(tid): {
            "frames": len(rs),
            "size_ratio": statistics.median(r["size_ratio"] for r in rs[-last:]),
            "length_ratio": statistics.median(r["length_ratio"] for r in rs[-last:]),
            "shape0": rs[-1]["shape0"],
            "true_shape0": rs[-1]["true_shape0"],
        }
        for tid, rs in tracks.items()
    }


def clip_summary(run: dict, clip, frames: slice) -> dict:
    rows = run["rows"][frames]
    found = [r for r in rows if r is not None]
    out = {"frames": len(rows), "detected": len(found)}
    for key in ("mpjpe_mm", "wrist_mm", "pa_mpjpe_mm"):
        out[key] = statistics.mean(r[key] for r in found) if found else None
    out["depth_used"] = sum(r["depth_used"] for r in found)
    out["side_correct"] = sum(r["side_correct"] for r in found)
    out["jitter_mm"] = jitter_mm(run["predictions"][frames], replace(
        clip, frames=clip.frames[frames]))
    return out


def mean_timings(timings: list[dict]) -> dict:
    """Mean ms per stage (a stage that did not run counts 0)."""
    keys = sorted({k for t in timings for k in t})
    return {k: statistics.mean(t.get(k, 0.0) for t in timings) for k in keys}


def tracked_clips(estimator, model_for, noise, frames: int, seed: int) -> dict:
    """Per side, the clip of ``seed`` (the same motion mirrored) tracked three ways."""
    out, costs = {}, {"rgb": [], "rgbd": []}
    half = frames // 2
    for side in SIDES:
        model = model_for[side]
        clip = render_clip(model, PosePrior.from_model(model), frames, seed=seed,
                           focal=FOCAL_PX, depth_noise=noise)
        runs = {"rgb": track_clip(estimator, clip, side, 0),
                "rgbd": track_clip(estimator, clip, side, frames),
                "rgbd_then_rgb": track_clip(estimator, clip, side, half)}
        entry = {mode: clip_summary(run, clip, slice(None)) for mode, run in runs.items()}
        entry["second_half_rgb_only"] = {
            "after_rgb_track": clip_summary(runs["rgb"], clip, slice(half, None)),
            "after_rgbd_track": clip_summary(runs["rgbd_then_rgb"], clip, slice(half, None)),
        }
        entry["learned_size"] = {mode: learned_sizes(runs[mode]["rows"]) for mode in runs}
        entry["true_shape0"] = float(clip.frames[0].truth.shape[0, 0])
        out[side] = entry
        for mode in costs:  # the first frame is each run's cold start
            costs[mode] += runs[mode]["timings"][1:]
    cost = {mode: mean_timings(t) for mode, t in costs.items()}
    cost["extra_total_ms"] = cost["rgbd"]["total"] - cost["rgb"]["total"]
    return {"clips": out, "cost_ms": cost}


def fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(report: dict) -> None:
    single = report["single"]
    print(f"\nsingle frames: {report['frames']} ({report['frames_by_side']}), camera-frame "
          "errors mm, mean (median); size / length: fitted over true wrist to middle knuckle /"
          " wrist to middle tip along the bones")
    print(f"{'bin m':11s} {'n':>4s} {'det':>5s} | {'mode':14s} {'MPJPE':>14s} {'wrist':>14s} "
          f"{'PA-MPJPE':>12s} {'size':>6s} {'length':>6s}")
    for name, modes in [*single["bins"].items(), ("all", single["all"])]:
        for mode in MODES:
            s = modes[mode]
            print(f"{name:11s} {s['n']:4d} {fmt(s['detected'], 2):>5s} | {mode:14s} "
                  f"{fmt(s['mpjpe_mm']):>6s} ({fmt(s['mpjpe_mm_median']):>5s}) "
                  f"{fmt(s['wrist_mm']):>6s} ({fmt(s['wrist_mm_median']):>5s}) "
                  f"{fmt(s['pa_mpjpe_mm']):>5s} ({fmt(s['pa_mpjpe_mm_median']):>4s}) "
                  f"{fmt(s['size_ratio'], 3):>6s} {fmt(s['length_ratio'], 3):>6s}")
    for depth_mode, entry in report["occluder"].items():
        m = entry.get("mpjpe_mm")
        if m:
            print(f"occluder ({depth_mode}, {entry['pairs']} pairs): MPJPE {m['unoccluded']:.1f} "
                  f"-> {m['occluded']:.1f} mm, ratio {m['ratio']:.2f}")
    for side, entry in report["tracked"]["clips"].items():
        print(f"\ntracked clip ({side}, true shape0 {entry['true_shape0']:+.2f})")
        for mode in ("rgb", "rgbd", "rgbd_then_rgb"):
            s = entry[mode]
            print(f"  {mode:14s} det {s['detected']}/{s['frames']} MPJPE {fmt(s['mpjpe_mm'])} "
                  f"wrist {fmt(s['wrist_mm'])} PA {fmt(s['pa_mpjpe_mm'])} jitter "
                  f"{fmt(s['jitter_mm'], 2)} depth used {s['depth_used']}")
        later = entry["second_half_rgb_only"]
        print(f"  second half RGB-only, MPJPE: after an RGB track "
              f"{fmt(later['after_rgb_track']['mpjpe_mm'])} mm, after an RGB-D track "
              f"{fmt(later['after_rgbd_track']['mpjpe_mm'])} mm")
        for mode, tracks in entry["learned_size"].items():
            sizes = ", ".join(f"#{t}: {v['size_ratio']:.3f} / {v['length_ratio']:.3f} "
                              f"(shape0 {v['shape0']:+.2f}, "
                              f"{v['frames']} fr)" for t, v in tracks.items())
            print(f"  learned size {mode:14s} {sizes}")
    cost = report["tracked"]["cost_ms"]
    print(f"\ncost per tracked frame ({report['threads']} threads): RGB {cost['rgb']['total']:.1f}"
          f" ms, RGB-D {cost['rgbd']['total']:.1f} ms ({cost['extra_total_ms']:+.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="single RGB-D frames")
    parser.add_argument("--clip-frames", type=int, default=60, help="frames per tracked clip")
    parser.add_argument(
        "--clip-seed", type=int, default=CLIP_SEED,
        help="seed of the tracked clips (default: a view mediapipe finds and labels on both "
        "sides; seed 0's right hand is labelled left, seeds 1-2 are mostly missed at f=615)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="docs/benchmarks_depth.json")
    args = parser.parse_args()
    if "depth" not in inspect.signature(HandTracker.update).parameters:
        parser.error("this hand_mesh_ros has no HandTracker.update(depth=): nothing to measure")
    torch.set_num_threads(args.threads)
    models = {side: load_hand_model(side) for side in SIDES}
    priors = {side: PosePrior.from_model(m) for side, m in models.items()}
    K = intrinsics_matrix(FOCAL_PX, FOCAL_PX, (IMAGE_SIZE[1] - 1) / 2, (IMAGE_SIZE[0] - 1) / 2)
    camera = CameraIntrinsics.from_matrix(K)
    noise, occluder = DepthNoiseModel(), OccluderConfig()
    generator = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    estimator = HandMeshEstimator(EstimatorConfig(device=args.device))
    samples, results = [], []
    t0 = time.perf_counter()
    for index in range(args.frames):
        side = SIDES[index % 2]
        sample = make_sample(index, side, models[side], priors[side], K, generator, rng, noise,
                             args.seed)
        samples.append(sample)
        results.append(estimate_sample(estimator, camera, sample))
        if (index + 1) % 20 == 0:
            print(f"{index + 1}/{args.frames} frames, {time.perf_counter() - t0:.0f} s",
                  flush=True)
    report = {
        "frames": args.frames,
        "frames_by_side": dict(Counter(s.side for s in samples)),
        "seed": args.seed,
        "threads": args.threads,
        "device": str(estimator.device),
        "camera": {"image_size_hw": IMAGE_SIZE, "focal_px": FOCAL_PX},
        "scene": {**dataclasses.asdict(SCENE), "size_sd": SIZE_SD},
        "noise_model": dataclasses.asdict(noise),
        "occluder_config": dataclasses.asdict(occluder),
        "occluder_coverage_mean": statistics.mean(s.coverage for s in samples),
        "estimator_config": dataclasses.asdict(estimator.config),
        "single": single_frames(samples, results),
        "occluder": occluder_ratio(results),
        "clip_seed": args.clip_seed,
        "tracked": tracked_clips(estimator, models, noise, args.clip_frames, args.clip_seed),
        "per_hand": per_hand(samples, results),
    }
    estimator.close()
    print_report(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
