"""``hand-mesh evaluate``: our pipeline vs MediaPipe's own landmarks on annotated images.

Input: a JSON-lines file in the format of ``shared/data/hands/annotations.jsonl`` (one hand
per line: ``image`` relative to the file's folder, ``dataset``, ``side``, ``kp2d`` 21 x
[u, v, visible] pixels, ``kp3d`` 21 x 3 millimetres in the OpenCV camera frame or null, ``K``
3x3 or null, ``bbox`` [x, y, w, h]). Several lines may name the same image.

Per image, ``HandMeshEstimator.estimate`` runs once (with the annotation's K when present,
else assumed intrinsics); the MediaPipe detections of that same run are recorded, so both
methods see identical detections. Two methods are scored:

- ours: ``HandEstimate.keypoints_2d`` (the fitted hand's projection) and ``keypoints_3d``
  (metres, camera frame) -- so also the wrist's metric depth.
- mediapipe: its 2D landmarks and its world landmarks (metres, origin near the hand centre,
  axes roughly the camera's): only root-relative and Procrustes-aligned 3D errors apply.

Matching: per image and method, detections are assigned to annotated hands by the Hungarian
method on the mean 2D distance over visible keypoints divided by the annotated box's longer
side (the *box size*); pairs above ``max_match_distance`` stay unmatched (a miss).

Metrics (per dataset and overall; 2D and 3D over matched hands only):
- detection rate: matched hands / annotated hands;
- 2D error: mean pixel distance over all visible keypoints of matched hands (pooled);
- PCK@0.2: fraction of those keypoints within 0.2 x box size of the annotation;
- side accuracy: over matched hands whose side is annotated;
- RR-MPJPE: mean 3D joint error (mm) after subtracting the wrist from both skeletons;
- PA-MPJPE: mean 3D joint error (mm) after a similarity (Procrustes) alignment;
- root depth error: mean |z_wrist - z_wrist annotated| (mm); "n/a" for mediapipe.
Means over hands for the 3D metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from hand_mesh_ros.imageio import ImageError, read_image
from hand_mesh_ros.metrics import pa_mpjpe, root_relative_mpjpe
from hand_mesh_ros.pipeline.types import CameraIntrinsics
from hand_mesh_ros.topology import NUM_KEYPOINTS, SIDES, WRIST_KEYPOINT

PCK_FRACTION = 0.2  # PCK threshold as a fraction of the annotated box's longer side
DEFAULT_MAX_MATCH_DISTANCE = 0.5  # max mean keypoint distance for a match, x box size
MM_PER_M = 1000.0
METHODS = ("ours", "mediapipe")
ALL_DATASETS = "all"


@dataclass(frozen=True, eq=False)
class Annotation:
    """One annotated hand.

    keypoints_2d: (21,2) pixels; visible: (21,) bool; keypoints_3d_mm: (21,3) millimetres,
    OpenCV camera frame, or None; K: (3,3) intrinsics or None; bbox: (x, y, w, h) pixels.
    """

    name: str
    image: Path
    dataset: str
    side: str | None
    keypoints_2d: np.ndarray
    visible: np.ndarray
    keypoints_3d_mm: np.ndarray | None
    K: np.ndarray | None
    bbox: tuple[float, float, float, float]

    @property
    def box_size(self) -> float:
        """The annotated box's longer side (pixels): the 2D normaliser."""
        return float(max(self.bbox[2], self.bbox[3]))


@dataclass(frozen=True, eq=False)
class Prediction:
    """One method's output for one hand: keypoints_2d (21,2) pixels; keypoints_3d_mm (21,3)
    millimetres or None; root_depth_mm: the wrist's camera-frame depth, None if not metric."""

    keypoints_2d: np.ndarray
    side: str
    keypoints_3d_mm: np.ndarray | None
    root_depth_mm: float | None


@dataclass(frozen=True, eq=False)
class HandScore:
    """Scores of one method on one annotated hand. errors_px: (N,) pixel errors over the
    visible keypoints (empty when missed); 3D fields None where they do not apply."""

    name: str
    dataset: str
    method: str
    detected: bool
    errors_px: np.ndarray
    box_size: float
    side_correct: bool | None
    rr_mpjpe_mm: float | None
    pa_mpjpe_mm: float | None
    root_depth_error_mm: float | None

    @property
    def pck(self) -> np.ndarray:
        """(N,) bool: each visible keypoint within PCK_FRACTION x box size."""
        return self.errors_px <= PCK_FRACTION * self.box_size


@dataclass(frozen=True)
class Summary:
    """Aggregated scores of one method on one dataset (or ``ALL_DATASETS``); None: no data."""

    dataset: str
    method: str
    hands: int
    detected: int
    detection_rate: float
    keypoints: int
    mean_error_px: float | None
    pck: float | None
    side_known: int
    side_accuracy: float | None
    hands_3d: int
    rr_mpjpe_mm: float | None
    pa_mpjpe_mm: float | None
    root_depth_error_mm: float | None


def parse_annotation(record: dict, root: Path) -> Annotation:
    """One JSON record -> Annotation; image paths are relative to ``root``."""
    kp2d = np.asarray(record["kp2d"], dtype=np.float64)
    if kp2d.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"kp2d must be 21 x [u, v, visible], got shape {kp2d.shape}")
    side = record.get("side")
    if side is not None and side not in SIDES:
        raise ValueError(f"side must be one of {SIDES} or null, got {side!r}")
    kp3d = None if record.get("kp3d") is None else np.asarray(record["kp3d"], np.float64)
    if kp3d is not None and kp3d.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"kp3d must be 21 x 3, got shape {kp3d.shape}")
    K = None if record.get("K") is None else np.asarray(record["K"], dtype=np.float64)
    if K is not None and K.shape != (3, 3):
        raise ValueError(f"K must be 3 x 3, got shape {K.shape}")
    bbox = tuple(float(v) for v in record["bbox"])
    if len(bbox) != 4 or max(bbox[2], bbox[3]) <= 0:
        raise ValueError(f"bbox must be [x, y, w, h] with a positive size, got {bbox}")
    return Annotation(
        name=str(record.get("name", record["image"])),
        image=root / record["image"],
        dataset=str(record.get("dataset", "unknown")),
        side=side,
        keypoints_2d=kp2d[:, :2],
        visible=kp2d[:, 2] > 0,
        keypoints_3d_mm=kp3d,
        K=K,
        bbox=bbox,
    )


def load_annotations(path: str | Path) -> list[Annotation]:
    """All hands of a JSON-lines file; errors name the line. Blank lines are skipped."""
    path = Path(path)
    annotations = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            annotations.append(parse_annotation(json.loads(line), path.parent))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: bad annotation: {exc!r}") from exc
    if not annotations:
        raise ValueError(f"{path}: no annotations")
    return annotations


def group_by_image(annotations: Sequence[Annotation]) -> dict[Path, list[Annotation]]:
    """Annotations per image, in first-appearance order."""
    groups: dict[Path, list[Annotation]] = {}
    for ann in annotations:
        groups.setdefault(ann.image, []).append(ann)
    return groups


def keypoint_errors_px(keypoints_2d: np.ndarray, annotation: Annotation) -> np.ndarray:
    """(N,) pixel distances between predicted (21,2) and annotated keypoints, visible only."""
    diff = np.asarray(keypoints_2d, dtype=np.float64) - annotation.keypoints_2d
    return np.linalg.norm(diff[annotation.visible], axis=-1)


def match_hands(
    predictions: Sequence[np.ndarray],
    annotations: Sequence[Annotation],
    max_distance: float = DEFAULT_MAX_MATCH_DISTANCE,
) -> list[int | None]:
    """For each annotation, the index of its matched (21,2) prediction or None.

    Cost: mean visible-keypoint distance / annotated box size; minimum total cost assignment
    (Hungarian); matches whose cost exceeds ``max_distance`` are dropped."""
    matches: list[int | None] = [None] * len(annotations)
    if not predictions or not annotations:
        return matches
    cost = np.array([[_match_cost(p, a) for p in predictions] for a in annotations])
    finite_cost = np.where(np.isfinite(cost), cost, max_distance + 1e6)
    for row, col in zip(*linear_sum_assignment(finite_cost), strict=True):
        if cost[row, col] <= max_distance:
            matches[row] = int(col)
    return matches


def _match_cost(keypoints_2d: np.ndarray, annotation: Annotation) -> float:
    """Mean visible-keypoint distance / box size; inf without visible keypoints or when
    the prediction is not finite (never matched)."""
    errors = keypoint_errors_px(keypoints_2d, annotation)
    cost = errors.mean() / annotation.box_size if errors.size else np.inf
    return float(cost) if np.isfinite(cost) else np.inf


def pose_errors_mm(pred_mm: np.ndarray, target_mm: np.ndarray) -> tuple[float, float]:
    """(root-relative MPJPE, PA-MPJPE) in mm of (21,3) skeletons (wrist = root)."""
    pred = torch.as_tensor(pred_mm, dtype=torch.float64)[None]
    target = torch.as_tensor(target_mm, dtype=torch.float64)[None]
    rr = root_relative_mpjpe(pred, target, root=WRIST_KEYPOINT)
    return float(rr), float(pa_mpjpe(pred, target))


def score_hand(method: str, annotation: Annotation, prediction: Prediction | None) -> HandScore:
    """Scores of one method's (matched) prediction, or a miss when ``prediction`` is None."""
    base = dict(
        name=annotation.name,
        dataset=annotation.dataset,
        method=method,
        box_size=annotation.box_size,
    )
    if prediction is None:
        return HandScore(
            **base,
            detected=False,
            errors_px=np.zeros(0),
            side_correct=None,
            rr_mpjpe_mm=None,
            pa_mpjpe_mm=None,
            root_depth_error_mm=None,
        )
    rr = pa = depth = None
    target = annotation.keypoints_3d_mm
    if target is not None and prediction.keypoints_3d_mm is not None:
        rr, pa = pose_errors_mm(prediction.keypoints_3d_mm, target)
    if target is not None and prediction.root_depth_mm is not None:
        depth = abs(prediction.root_depth_mm - float(target[WRIST_KEYPOINT, 2]))
    side_ok = None if annotation.side is None else prediction.side == annotation.side
    return HandScore(
        **base,
        detected=True,
        errors_px=keypoint_errors_px(prediction.keypoints_2d, annotation),
        side_correct=side_ok,
        rr_mpjpe_mm=rr,
        pa_mpjpe_mm=pa,
        root_depth_error_mm=depth,
    )


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def summarise(scores: Sequence[HandScore], method: str, dataset: str = ALL_DATASETS) -> Summary:
    """Aggregate one method's hand scores on one dataset (``ALL_DATASETS``: every hand)."""
    mine = [s for s in scores if s.method == method and dataset in (ALL_DATASETS, s.dataset)]
    found = [s for s in mine if s.detected]
    errors = np.concatenate([s.errors_px for s in found]) if found else np.zeros(0)
    inside = np.concatenate([s.pck for s in found]) if found else np.zeros(0, bool)
    sides = [s.side_correct for s in found if s.side_correct is not None]
    with_3d = [s for s in found if s.pa_mpjpe_mm is not None]
    depths = [s.root_depth_error_mm for s in found if s.root_depth_error_mm is not None]
    return Summary(
        dataset=dataset,
        method=method,
        hands=len(mine),
        detected=len(found),
        detection_rate=len(found) / len(mine) if mine else 0.0,
        keypoints=int(errors.size),
        mean_error_px=_mean(errors),
        pck=_mean(inside),
        side_known=len(sides),
        side_accuracy=_mean(sides),
        hands_3d=len(with_3d),
        rr_mpjpe_mm=_mean([s.rr_mpjpe_mm for s in with_3d]),
        pa_mpjpe_mm=_mean([s.pa_mpjpe_mm for s in with_3d]),
        root_depth_error_mm=_mean(depths),
    )


def summarise_all(scores: Sequence[HandScore]) -> list[Summary]:
    """Per dataset (first-appearance order) then overall, each for every method."""
    datasets = list(dict.fromkeys(s.dataset for s in scores)) + [ALL_DATASETS]
    return [summarise(scores, m, d) for d in datasets for m in METHODS]


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


# --- running the pipeline ------------------------------------------------------------------


class RecordingDetector:
    """Wraps a detector and keeps the detections of its last call (MediaPipe's own output,
    including the world landmarks), so the baseline is scored on the pipeline's own run."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self.last: tuple = ()

    def detect(self, image_rgb: np.ndarray) -> list:
        self.last = tuple(self.detector.detect(image_rgb))
        return list(self.last)

    def close(self) -> None:
        self.detector.close()


def prediction_from_estimate(hand) -> Prediction:
    """Our prediction from a ``HandEstimate`` (keypoints_3d: metres, camera frame)."""
    kp3d_mm = np.asarray(hand.keypoints_3d, dtype=np.float64) * MM_PER_M
    return Prediction(
        keypoints_2d=np.asarray(hand.keypoints_2d, dtype=np.float64),
        side=hand.side,
        keypoints_3d_mm=kp3d_mm,
        root_depth_mm=float(kp3d_mm[WRIST_KEYPOINT, 2]),
    )


def prediction_from_detection(detection) -> Prediction:
    """MediaPipe's prediction from a ``Detection2D`` (world landmarks: metres, hand-centred)."""
    world = detection.world_keypoints
    return Prediction(
        keypoints_2d=np.asarray(detection.keypoints, dtype=np.float64),
        side=detection.side,
        keypoints_3d_mm=None if world is None else np.asarray(world, np.float64) * MM_PER_M,
        root_depth_mm=None,
    )


def camera_from_annotation(annotation: Annotation) -> CameraIntrinsics | None:
    """The annotation's K as intrinsics, or None (the estimator then assumes a camera)."""
    K = annotation.K
    if K is None:
        return None
    return CameraIntrinsics(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))


def evaluate(
    annotations: Sequence[Annotation],
    estimator,
    recorder: RecordingDetector,
    *,
    max_match_distance: float = DEFAULT_MAX_MATCH_DISTANCE,
) -> tuple[list[HandScore], dict]:
    """Run ``estimator`` (whose detector is ``recorder``) on every annotated image and score
    both methods. Returns the hand scores and run facts (images, mean timings in ms, and the
    largest |detected_keypoints_2d - MediaPipe landmarks|, which must be 0)."""
    scores: list[HandScore] = []
    timings: dict[str, list[float]] = {}
    mismatch = 0.0
    groups = group_by_image(annotations)
    for image_path, anns in groups.items():
        result = estimator.estimate(read_image(image_path), camera=camera_from_annotation(anns[0]))
        for stage, ms in result.timings_ms.items():
            timings.setdefault(stage, []).append(ms)
        detections = recorder.last
        for hand in result.hands:
            mismatch = max(mismatch, _nearest_landmark_difference(hand, detections))
        predictions = {
            "ours": [prediction_from_estimate(h) for h in result.hands],
            "mediapipe": [prediction_from_detection(d) for d in detections],
        }
        for method in METHODS:
            preds = predictions[method]
            matches = match_hands([p.keypoints_2d for p in preds], anns, max_match_distance)
            for ann, index in zip(anns, matches, strict=True):
                scores.append(score_hand(method, ann, None if index is None else preds[index]))
    facts = {
        "images": len(groups),
        "mean_timings_ms": {k: float(np.mean(v)) for k, v in timings.items()},
        "max_landmark_difference_px": mismatch,
    }
    return scores, facts


def _nearest_landmark_difference(hand, detections) -> float:
    """Smallest max-abs difference between a hand's detected keypoints and any detection."""
    diffs = [np.abs(hand.detected_keypoints_2d - d.keypoints).max() for d in detections]
    return float(min(diffs)) if diffs else float("inf")


# --- command line --------------------------------------------------------------------------


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


def _hand_record(score: HandScore) -> dict:
    record = asdict(score)
    record.pop("errors_px")
    record["mean_error_px"] = _mean(score.errors_px)
    record["pck"] = _mean(score.pck)
    record["visible_keypoints"] = int(score.errors_px.size)
    return record


def run(args: argparse.Namespace) -> int:
    """``hand-mesh evaluate``: prints the table; 0 on success, 2 on bad input."""
    from hand_mesh_ros.detect import MediapipeConfig, MediapipeHandDetector
    from hand_mesh_ros.pipeline.estimator import EstimatorConfig, HandMeshEstimator

    try:
        annotations = load_annotations(args.annotations)
        overrides = {} if args.iterations is None else {"refine_iterations": args.iterations}
        config = EstimatorConfig(device=args.device, **overrides)
    except (OSError, ValueError) as exc:
        print(f"hand-mesh evaluate: {exc}", file=sys.stderr)
        return 2
    recorder = RecordingDetector(
        MediapipeHandDetector(
            MediapipeConfig(
                max_hands=config.max_hands,
                mirrored_input=config.mirrored_input,
                min_detection_confidence=config.min_detection_confidence,
            )
        )
    )
    estimator = HandMeshEstimator(config, detector=recorder)
    start = time.perf_counter()
    try:
        scores, facts = evaluate(
            annotations, estimator, recorder, max_match_distance=args.max_match_distance
        )
    except (OSError, ImageError) as exc:
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
    _report(scores, facts, config_record, args)
    return 0


def _report(scores: Sequence[HandScore], facts: dict, config: dict, args) -> None:
    """Print the table and a line of run facts; write the JSON report when asked."""
    summaries = summarise_all(scores)
    print(format_table(summaries))
    print(
        f"{facts['images']} images, {len(scores) // len(METHODS)} hands, device "
        f"{facts['device_used']}, {config['refine_iterations']} refinement iterations; mean "
        f"pipeline time {facts['mean_timings_ms'].get('total', float('nan')):.0f} ms per "
        f"image. PCK threshold: {PCK_FRACTION} x the annotated box's longer side; 3D in mm."
    )
    if args.json is not None:
        report = {
            "annotations": str(args.annotations),
            "config": config,
            "run": facts,
            "summaries": [asdict(s) for s in summaries],
            "hands": [_hand_record(s) for s in scores],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hand_mesh_ros.evaluation`` (the same as ``hand-mesh evaluate``)."""
    parser = argparse.ArgumentParser(prog="hand-mesh evaluate", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
