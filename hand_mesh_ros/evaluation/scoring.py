"""Scoring of predicted hands against annotated ones: matching, per-hand scores, summaries.

Matching: per image and method, predictions are assigned to annotated hands by the Hungarian
method on the mean 2D distance over visible keypoints divided by the annotated box's longer
side (the *box size*); pairs above ``max_distance`` stay unmatched (a miss).

Metric frames: root-relative (wrist subtracted), Procrustes-aligned (similarity: scale,
rotation, translation) and, for metric camera-frame predictions only (ours; MediaPipe's world
landmarks are hand-centred), the camera frame itself, the wrist's position and its depth,
also as a percentage of the annotated wrist distance (z).

Aligned depth: on images whose annotation names a depth image, ours also runs with it
(method ``DEPTH_METHOD``); ``summarise_depth`` compares it with ours RGB-only on exactly those
hands (``HandScore.depth_image``).

Units: 2D in pixels, 3D in millimetres; (21, ·) arrays are in the core keypoint order of
``topology.py`` (wrist = ``WRIST_KEYPOINT`` is the root of the 3D metrics). Per-joint arrays
are (21,) with NaN where the joint does not count (invisible in 2D, no 3D, a miss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from hand_mesh_ros.datasets.annotations import Annotation
from hand_mesh_ros.metrics import procrustes_align, root_relative_mpjpe
from hand_mesh_ros.pipeline.types import DEPTH_USED
from hand_mesh_ros.topology import FINGERS, NUM_KEYPOINTS, WRIST_KEYPOINT

PCK_FRACTION = 0.2  # PCK threshold as a fraction of the annotated box's longer side
DEFAULT_MAX_MATCH_DISTANCE = 0.5  # max mean keypoint distance for a match, x box size
METHODS = ("ours", "mediapipe")
DEPTH_METHOD = "ours+depth"  # ours with the annotation's aligned depth image (RGB-D)
DEPTH_COMPARED = ("ours", DEPTH_METHOD)  # the rows of the depth comparison
ALL_DATASETS = "all"
# keypoint groups of the per-finger table: the wrist alone, then each finger's 4 keypoints
# (core order: thumb 1-4, index 5-8, middle 9-12, ring 13-16, little 17-20)
KEYPOINT_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (("wrist", (WRIST_KEYPOINT,)),) + tuple(
    (finger, tuple(range(1 + 4 * i, 5 + 4 * i))) for i, finger in enumerate(FINGERS)
)


@dataclass(frozen=True, eq=False)
class Prediction:
    """One method's output for one hand: keypoints_2d (21,2) pixels; keypoints_3d_mm (21,3)
    millimetres or None; root_depth_mm: the wrist's camera-frame depth, None if not metric."""

    keypoints_2d: np.ndarray
    side: str
    keypoints_3d_mm: np.ndarray | None
    root_depth_mm: float | None
    depth_status: str | None = None  # RGB-D fits: ``HandDepth.status`` ("used" or why not)


@dataclass(frozen=True, eq=False)
class HandScore:
    """Scores of one method on one annotated hand. errors_px: (N,) pixel errors over the
    visible keypoints (empty when missed); joint_errors_px (21,) the same per keypoint, NaN
    where invisible or missed; pa_joint_errors_mm (21,) Procrustes-aligned 3D error per
    keypoint, NaN without 3D. cam_mpjpe_mm: camera-frame MPJPE; root_depth_error_mm /
    root_depth_error_pct: |z_wrist - z_wrist annotated| in mm / in % of the annotated z;
    depth_bias_pct: the signed (z_wrist - z_annotated) / z_annotated in % (> 0: too far);
    wrist_error_mm: |wrist - wrist annotated| in 3D (camera frame, mm).
    3D fields are None where they do not apply (the camera-frame ones: non-metric methods).
    depth_image: the annotated image has an aligned depth image; depth_status: how the
    RGB-D fit used it (``DEPTH_METHOD`` only, else None)."""

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
    joint_errors_px: np.ndarray = field(default_factory=lambda: _nan_joints())
    pa_joint_errors_mm: np.ndarray = field(default_factory=lambda: _nan_joints())
    cam_mpjpe_mm: float | None = None
    root_depth_error_pct: float | None = None
    depth_bias_pct: float | None = None
    wrist_error_mm: float | None = None
    depth_image: bool = False
    depth_status: str | None = None

    @property
    def pck(self) -> np.ndarray:
        """(N,) bool: each visible keypoint within PCK_FRACTION x box size."""
        return self.errors_px <= PCK_FRACTION * self.box_size


@dataclass(frozen=True)
class Summary:
    """Aggregated scores of one method on one dataset (or ``ALL_DATASETS``); None: no data.
    depth_used: matched hands whose fit used the aligned depth (``DEPTH_METHOD``)."""

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
    cam_mpjpe_mm: float | None = None
    root_depth_error_pct: float | None = None
    depth_bias_pct: float | None = None
    wrist_error_mm: float | None = None
    depth_used: int = 0


@dataclass(frozen=True)
class JointSummary:
    """Per-keypoint means of one method on one dataset (or ``ALL_DATASETS``) over its matched
    hands: error_px (21,) 2D pixels over the hands where the keypoint is visible;
    pa_error_mm (21,) Procrustes-aligned 3D mm over the hands with 3D; NaN: no data."""

    dataset: str
    method: str
    error_px: tuple[float, ...]
    pa_error_mm: tuple[float, ...]


def _nan_joints() -> np.ndarray:
    return np.full(NUM_KEYPOINTS, np.nan)


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
    return float(rr), float(pa_joint_errors_mm(pred_mm, target_mm).mean())


def pa_joint_errors_mm(pred_mm: np.ndarray, target_mm: np.ndarray) -> np.ndarray:
    """(21,) per-keypoint error (mm) of (21,3) ``pred_mm`` after its similarity (Procrustes)
    alignment to ``target_mm``; the mean is the PA-MPJPE."""
    pred = torch.as_tensor(pred_mm, dtype=torch.float64)[None]
    target = torch.as_tensor(target_mm, dtype=torch.float64)[None]
    return (procrustes_align(pred, target) - target).norm(dim=-1)[0].numpy()


def camera_frame_errors(pred_mm: np.ndarray, target_mm: np.ndarray) -> dict[str, float]:
    """Camera-frame errors of a metric (21,3) prediction (mm, OpenCV frame): ``cam_mpjpe_mm``
    (mean joint distance, no alignment), ``root_depth_error_mm`` (|z_wrist - z_wrist true|),
    ``root_depth_error_pct`` (the same / z_wrist true x 100), ``depth_bias_pct`` (signed,
    > 0 when the prediction is too far) and ``wrist_error_mm`` (|wrist - wrist true|, 3D)."""
    pred, target = np.asarray(pred_mm, np.float64), np.asarray(target_mm, np.float64)
    z_pred, z_true = pred[WRIST_KEYPOINT, 2], target[WRIST_KEYPOINT, 2]
    bias = 100.0 * (z_pred - z_true) / z_true
    return {
        "cam_mpjpe_mm": float(np.linalg.norm(pred - target, axis=-1).mean()),
        "root_depth_error_mm": float(abs(z_pred - z_true)),
        "root_depth_error_pct": float(abs(bias)),
        "depth_bias_pct": float(bias),
        "wrist_error_mm": float(np.linalg.norm(pred[WRIST_KEYPOINT] - target[WRIST_KEYPOINT])),
    }


def score_hand(method: str, annotation: Annotation, prediction: Prediction | None) -> HandScore:
    """Scores of one method's (matched) prediction, or a miss when ``prediction`` is None."""
    base = dict(
        name=annotation.name,
        dataset=annotation.dataset,
        method=method,
        box_size=annotation.box_size,
        depth_image=annotation.depth is not None,
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
    rr = pa = None
    pa_joints = _nan_joints()
    camera: dict[str, float | None] = dict.fromkeys(
        (
            "cam_mpjpe_mm",
            "root_depth_error_mm",
            "root_depth_error_pct",
            "depth_bias_pct",
            "wrist_error_mm",
        )
    )
    target = annotation.keypoints_3d_mm
    if target is not None and prediction.keypoints_3d_mm is not None:
        rr, pa = pose_errors_mm(prediction.keypoints_3d_mm, target)
        pa_joints = pa_joint_errors_mm(prediction.keypoints_3d_mm, target)
    if target is not None and prediction.root_depth_mm is not None:  # metric: camera frame
        camera.update(camera_frame_errors(prediction.keypoints_3d_mm, target))
    side_ok = None if annotation.side is None else prediction.side == annotation.side
    joint_errors = _nan_joints()
    joint_errors[annotation.visible] = keypoint_errors_px(prediction.keypoints_2d, annotation)
    return HandScore(
        **base,
        detected=True,
        errors_px=joint_errors[annotation.visible],
        side_correct=side_ok,
        rr_mpjpe_mm=rr,
        pa_mpjpe_mm=pa,
        joint_errors_px=joint_errors,
        pa_joint_errors_mm=pa_joints,
        depth_status=prediction.depth_status,
        **camera,
    )


def mean_or_none(values: Sequence[float] | np.ndarray) -> float | None:
    """The mean of ``values`` as a float, or None when there are none."""
    return float(np.mean(values)) if len(values) else None


def summarise(scores: Sequence[HandScore], method: str, dataset: str = ALL_DATASETS) -> Summary:
    """Aggregate one method's hand scores on one dataset (``ALL_DATASETS``: every hand).

    2D errors and PCK are pooled over all visible keypoints of matched hands; the 3D errors
    and the camera-frame errors are means over the matched hands that have them."""
    mine = _selected(scores, method, dataset)
    found = [s for s in mine if s.detected]
    errors = np.concatenate([s.errors_px for s in found]) if found else np.zeros(0)
    inside = np.concatenate([s.pck for s in found]) if found else np.zeros(0, bool)
    sides = [s.side_correct for s in found if s.side_correct is not None]
    with_3d = [s for s in found if s.pa_mpjpe_mm is not None]
    metric = [s for s in found if s.cam_mpjpe_mm is not None]
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
        root_depth_error_mm=mean_or_none([s.root_depth_error_mm for s in metric]),
        cam_mpjpe_mm=mean_or_none([s.cam_mpjpe_mm for s in metric]),
        root_depth_error_pct=mean_or_none([s.root_depth_error_pct for s in metric]),
        depth_bias_pct=mean_or_none([s.depth_bias_pct for s in metric]),
        wrist_error_mm=mean_or_none([s.wrist_error_mm for s in metric]),
        depth_used=sum(s.depth_status == DEPTH_USED for s in found),
    )


def summarise_all(scores: Sequence[HandScore]) -> list[Summary]:
    """Per dataset (first-appearance order) then overall, each for every method of
    ``METHODS`` (the RGB-D runs are ``summarise_depth``'s)."""
    datasets = list(dict.fromkeys(s.dataset for s in scores)) + [ALL_DATASETS]
    return [summarise(scores, m, d) for d in datasets for m in METHODS]


def summarise_depth(scores: Sequence[HandScore]) -> list[Summary]:
    """Ours RGB-only vs ours RGB-D (``DEPTH_COMPARED``) over the annotated hands whose image
    has an aligned depth image, per dataset that has some (first-appearance order) then
    overall; [] when no image has depth."""
    with_depth = [s for s in scores if s.depth_image]
    if not with_depth:
        return []
    datasets = list(dict.fromkeys(s.dataset for s in with_depth)) + [ALL_DATASETS]
    return [summarise(with_depth, m, d) for d in datasets for m in DEPTH_COMPARED]


def _selected(scores: Sequence[HandScore], method: str, dataset: str) -> list[HandScore]:
    return [s for s in scores if s.method == method and dataset in (ALL_DATASETS, s.dataset)]


def _nanmean_rows(rows: list[np.ndarray]) -> tuple[float, ...]:
    """Column means of (21,) rows ignoring NaN; NaN for a column without values."""
    if not rows:
        return tuple(_nan_joints())
    stacked = np.stack(rows)
    counts = np.isfinite(stacked).sum(0)
    sums = np.where(np.isfinite(stacked), stacked, 0.0).sum(0)
    return tuple(float(v) for v in np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))


def summarise_joints(
    scores: Sequence[HandScore], method: str, dataset: str = ALL_DATASETS
) -> JointSummary:
    """Per-keypoint mean 2D (px) and PA-aligned 3D (mm) errors of one method's matched hands
    (each keypoint over the hands where it counts)."""
    found = [s for s in _selected(scores, method, dataset) if s.detected]
    return JointSummary(
        dataset=dataset,
        method=method,
        error_px=_nanmean_rows([s.joint_errors_px for s in found]),
        pa_error_mm=_nanmean_rows([s.pa_joint_errors_mm for s in found]),
    )


def group_means(values: Sequence[float]) -> dict[str, float]:
    """Means of (21,) per-keypoint values over each group of ``KEYPOINT_GROUPS`` (NaN-aware:
    NaN only when the whole group is NaN)."""
    array = np.asarray(values, dtype=np.float64)
    means = {}
    for name, joints in KEYPOINT_GROUPS:
        part = array[list(joints)]
        part = part[np.isfinite(part)]
        means[name] = float(part.mean()) if part.size else float("nan")
    return means
