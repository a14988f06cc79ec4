"""The evaluation loop: the pipeline on every annotated image, both methods scored.

Per image, ``HandMeshEstimator.estimate`` runs once (with the annotation's K when present,
else assumed intrinsics); ``RecordingDetector`` keeps the MediaPipe detections of that same
run, so both methods see identical detections:

- ours: ``HandEstimate.keypoints_2d`` (21,2 px, the fitted hand's projection) and
  ``keypoints_3d`` (21,3 metres, camera frame) -- so also the wrist's metric depth;
- mediapipe: its 2D landmarks (21,2 px) and its world landmarks (21,3 metres, origin near the
  hand centre, axes roughly the camera's): only root-relative and Procrustes-aligned 3D apply;
- ours+depth (``DEPTH_METHOD``), on images whose annotation names an aligned depth image
  (``depthio.read_depth``: 16-bit mm PNG or .npy metres): the same estimator on the same
  detections, given that depth -- so RGB-only and RGB-D are compared on the same hands.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hand_mesh_ros.datasets.annotations import Annotation, group_by_image
from hand_mesh_ros.depthio import DepthError, read_depth
from hand_mesh_ros.evaluation.scoring import (
    DEFAULT_MAX_MATCH_DISTANCE,
    DEPTH_METHOD,
    HandScore,
    Prediction,
    match_hands,
    score_hand,
)
from hand_mesh_ros.imageio import read_image
from hand_mesh_ros.pipeline.types import CameraIntrinsics
from hand_mesh_ros.topology import WRIST_KEYPOINT

MM_PER_M = 1000.0


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


def make_estimator(config) -> tuple[object, RecordingDetector]:
    """(HandMeshEstimator, its RecordingDetector around MediaPipe) for an ``EstimatorConfig``.

    The detector and estimator modules are imported here, not at the top: loading MediaPipe
    takes seconds and the CLI imports this package to register ``evaluate``'s options."""
    from hand_mesh_ros.detect import MediapipeConfig, MediapipeHandDetector
    from hand_mesh_ros.pipeline.estimator import HandMeshEstimator

    recorder = RecordingDetector(
        MediapipeHandDetector(
            MediapipeConfig(
                max_hands=config.max_hands,
                mirrored_input=config.mirrored_input,
                min_detection_confidence=config.min_detection_confidence,
            )
        )
    )
    return HandMeshEstimator(config, detector=recorder), recorder


def prediction_from_estimate(hand) -> Prediction:
    """Our prediction from a ``HandEstimate`` (keypoints_3d: metres, camera frame)."""
    keypoints_3d_mm = np.asarray(hand.keypoints_3d, dtype=np.float64) * MM_PER_M
    return Prediction(
        keypoints_2d=np.asarray(hand.keypoints_2d, dtype=np.float64),
        side=hand.side,
        keypoints_3d_mm=keypoints_3d_mm,
        root_depth_mm=float(keypoints_3d_mm[WRIST_KEYPOINT, 2]),
        depth_status=None if hand.depth is None else hand.depth.status,
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
    return None if annotation.K is None else CameraIntrinsics.from_matrix(annotation.K)


def depth_path_of(image_path, anns: Sequence[Annotation]):
    """The aligned depth image of an annotated image (None without); DepthError when its
    annotation lines name different ones."""
    paths = list(dict.fromkeys(a.depth for a in anns))
    if len(paths) > 1:
        named = ", ".join("none" if p is None else str(p) for p in paths)
        raise DepthError(image_path, f"its annotation lines name different depth images: {named}")
    return paths[0]


def evaluate(
    annotations: Sequence[Annotation],
    estimator,
    recorder: RecordingDetector,
    *,
    max_match_distance: float = DEFAULT_MAX_MATCH_DISTANCE,
) -> tuple[list[HandScore], dict]:
    """Run ``estimator`` (whose detector is ``recorder``) on every annotated image and score
    both methods, and ours again with the aligned depth where the annotation names one.
    Returns the hand scores (per image, per method, per annotated hand) and run facts
    (images, images_with_depth, mean stage timings in ms of the RGB-only and of the RGB-D
    runs, and the largest |detected_keypoints_2d - MediaPipe landmarks| in px, which must
    be 0). DepthError for an unusable depth image (unreadable, another size)."""
    scores: list[HandScore] = []
    timings: dict[str, list[float]] = {}
    depth_timings: dict[str, list[float]] = {}
    mismatch = 0.0
    groups = group_by_image(annotations)
    with_depth = 0
    for image_path, anns in groups.items():
        image, camera = read_image(image_path), camera_from_annotation(anns[0])
        depth_path = depth_path_of(image_path, anns)
        depth = None if depth_path is None else read_depth(depth_path, shape=image.shape[:2])
        found = estimator.detect(image)  # once: every run sees the same detections
        result = estimator.estimate(image, camera=camera, detections=found)
        _add_timings(timings, result.timings_ms)
        detections = recorder.last
        for hand in result.hands:
            mismatch = max(mismatch, _nearest_landmark_difference(hand, detections))
        predictions = {
            "ours": [prediction_from_estimate(h) for h in result.hands],
            "mediapipe": [prediction_from_detection(d) for d in detections],
        }
        if depth is not None:
            with_depth += 1
            rgbd = estimator.estimate(image, camera=camera, depth=depth, detections=found)
            _add_timings(depth_timings, rgbd.timings_ms)
            predictions[DEPTH_METHOD] = [prediction_from_estimate(h) for h in rgbd.hands]
        for method, preds in predictions.items():
            matches = match_hands([p.keypoints_2d for p in preds], anns, max_match_distance)
            for ann, index in zip(anns, matches, strict=True):
                scores.append(score_hand(method, ann, None if index is None else preds[index]))
    facts = {
        "images": len(groups),
        "images_with_depth": with_depth,
        "mean_timings_ms": _means(timings),
        "mean_timings_ms_depth": _means(depth_timings),
        "max_landmark_difference_px": mismatch,
    }
    return scores, facts


def _add_timings(timings: dict[str, list[float]], frame_ms: dict[str, float]) -> None:
    for stage, ms in frame_ms.items():
        timings.setdefault(stage, []).append(ms)


def _means(timings: dict[str, list[float]]) -> dict[str, float]:
    return {stage: float(np.mean(values)) for stage, values in timings.items()}


def _nearest_landmark_difference(hand, detections) -> float:
    """Smallest max-abs difference (px) between a hand's detected (21,2) keypoints and any
    detection's landmarks; inf without detections."""
    diffs = [np.abs(hand.detected_keypoints_2d - d.keypoints).max() for d in detections]
    return float(min(diffs)) if diffs else float("inf")
