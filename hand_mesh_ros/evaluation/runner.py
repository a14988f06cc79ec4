"""The evaluation loop: the pipeline on every annotated image, both methods scored.

Per image, ``HandMeshEstimator.estimate`` runs once (with the annotation's K when present,
else assumed intrinsics); ``RecordingDetector`` keeps the MediaPipe detections of that same
run, so both methods see identical detections:

- ours: ``HandEstimate.keypoints_2d`` (21,2 px, the fitted hand's projection) and
  ``keypoints_3d`` (21,3 metres, camera frame) -- so also the wrist's metric depth;
- mediapipe: its 2D landmarks (21,2 px) and its world landmarks (21,3 metres, origin near the
  hand centre, axes roughly the camera's): only root-relative and Procrustes-aligned 3D apply.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hand_mesh_ros.datasets.annotations import Annotation, group_by_image
from hand_mesh_ros.evaluation.scoring import (
    DEFAULT_MAX_MATCH_DISTANCE,
    METHODS,
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


def evaluate(
    annotations: Sequence[Annotation],
    estimator,
    recorder: RecordingDetector,
    *,
    max_match_distance: float = DEFAULT_MAX_MATCH_DISTANCE,
) -> tuple[list[HandScore], dict]:
    """Run ``estimator`` (whose detector is ``recorder``) on every annotated image and score
    both methods. Returns the hand scores (per image, per method, per annotated hand) and run
    facts (images, mean stage timings in ms, and the largest |detected_keypoints_2d -
    MediaPipe landmarks| in px, which must be 0)."""
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
    """Smallest max-abs difference (px) between a hand's detected (21,2) keypoints and any
    detection's landmarks; inf without detections."""
    diffs = [np.abs(hand.detected_keypoints_2d - d.keypoints).max() for d in detections]
    return float(min(diffs)) if diffs else float("inf")
