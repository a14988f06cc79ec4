"""Scoring of predicted hands against annotated ones: matching, per-hand scores, summaries.

Matching: per image and method, predictions are assigned to annotated hands by the Hungarian
method on the mean 2D distance over visible keypoints divided by the annotated box's longer
side (the *box size*); pairs above ``max_distance`` stay unmatched (a miss).

Units: 2D in pixels, 3D in millimetres; (21, ·) arrays are in the core keypoint order of
``topology.py`` (wrist = ``WRIST_KEYPOINT`` is the root of the 3D metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from hand_mesh_ros.datasets.annotations import Annotation
from hand_mesh_ros.metrics import pa_mpjpe, root_relative_mpjpe
from hand_mesh_ros.topology import WRIST_KEYPOINT

PCK_FRACTION = 0.2  # PCK threshold as a fraction of the annotated box's longer side
DEFAULT_MAX_MATCH_DISTANCE = 0.5  # max mean keypoint distance for a match, x box size
METHODS = ("ours", "mediapipe")
ALL_DATASETS = "all"


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


def mean_or_none(values: Sequence[float] | np.ndarray) -> float | None:
    """The mean of ``values`` as a float, or None when there are none."""
    return float(np.mean(values)) if len(values) else None


def summarise(scores: Sequence[HandScore], method: str, dataset: str = ALL_DATASETS) -> Summary:
    """Aggregate one method's hand scores on one dataset (``ALL_DATASETS``: every hand).

    2D errors and PCK are pooled over all visible keypoints of matched hands; the 3D errors
    and the root depth error are means over the matched hands that have them."""
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
        mean_error_px=mean_or_none(errors),
        pck=mean_or_none(inside),
        side_known=len(sides),
        side_accuracy=mean_or_none(sides),
        hands_3d=len(with_3d),
        rr_mpjpe_mm=mean_or_none([s.rr_mpjpe_mm for s in with_3d]),
        pa_mpjpe_mm=mean_or_none([s.pa_mpjpe_mm for s in with_3d]),
        root_depth_error_mm=mean_or_none(depths),
    )


def summarise_all(scores: Sequence[HandScore]) -> list[Summary]:
    """Per dataset (first-appearance order) then overall, each for every method."""
    datasets = list(dict.fromkeys(s.dataset for s in scores)) + [ALL_DATASETS]
    return [summarise(scores, m, d) for d in datasets for m in METHODS]
