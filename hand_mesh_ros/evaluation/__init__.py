"""``hand-mesh evaluate``: our pipeline vs MediaPipe's own landmarks on annotated images.

Input: the annotated-hands JSON lines of ``datasets/annotations.py`` (the format of
``shared/data/hands/annotations.jsonl``). Per image the pipeline runs once and both methods
(ours, mediapipe) are scored on the same detections. Modules, one job each:

- ``scoring``: matching predictions to annotated hands, per-hand scores, summaries;
- ``report``: the text table, the run line, the JSON report;
- ``runner``: the recording detector and the loop of the pipeline over the images;
- ``cli``: the options of ``hand-mesh evaluate`` and ``python -m hand_mesh_ros.evaluation``.

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

from hand_mesh_ros.evaluation.cli import add_arguments, main, run
from hand_mesh_ros.evaluation.report import format_table, write_report
from hand_mesh_ros.evaluation.runner import (
    RecordingDetector,
    camera_from_annotation,
    evaluate,
    make_estimator,
)
from hand_mesh_ros.evaluation.scoring import (
    ALL_DATASETS,
    DEFAULT_MAX_MATCH_DISTANCE,
    METHODS,
    PCK_FRACTION,
    HandScore,
    Prediction,
    Summary,
    keypoint_errors_px,
    match_hands,
    pose_errors_mm,
    score_hand,
    summarise,
    summarise_all,
)

__all__ = [
    "ALL_DATASETS",
    "DEFAULT_MAX_MATCH_DISTANCE",
    "METHODS",
    "PCK_FRACTION",
    "HandScore",
    "Prediction",
    "RecordingDetector",
    "Summary",
    "add_arguments",
    "camera_from_annotation",
    "evaluate",
    "format_table",
    "keypoint_errors_px",
    "main",
    "make_estimator",
    "match_hands",
    "pose_errors_mm",
    "run",
    "score_hand",
    "summarise",
    "summarise_all",
    "write_report",
]
