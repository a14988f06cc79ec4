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
- camera-frame (metric methods only, "n/a" for mediapipe, whose world landmarks are
  hand-centred): cam-MPJPE (mm, no alignment), root depth error |z_wrist - z_wrist annotated|
  (mm and % of the annotated z), the signed depth bias (%, > 0: too far) and the wrist's 3D
  position error (mm, in the JSON and the depth comparison).
- aligned depth: on images whose annotation names a depth image (optional ``depth`` field),
  ours runs again with it (``DEPTH_METHOD``, "ours+depth"), and ``summarise_depth`` /
  ``format_depth_table`` compare RGB-only and RGB-D on those hands (lines without depth are
  evaluated RGB-only; mediapipe's numbers do not change).
Means over hands for the 3D metrics. Per keypoint and per finger (wrist, thumb, ..., little):
mean 2D px and PA-aligned 3D mm of each method (``summarise_joints``, ``format_joint_table``).
"""

from __future__ import annotations

from hand_mesh_ros.evaluation.cli import add_arguments, main, run
from hand_mesh_ros.evaluation.report import (
    format_depth_table,
    format_joint_table,
    format_table,
    write_report,
)
from hand_mesh_ros.evaluation.runner import (
    RecordingDetector,
    camera_from_annotation,
    evaluate,
    make_estimator,
)
from hand_mesh_ros.evaluation.scoring import (
    ALL_DATASETS,
    DEFAULT_MAX_MATCH_DISTANCE,
    DEPTH_METHOD,
    KEYPOINT_GROUPS,
    METHODS,
    PCK_FRACTION,
    HandScore,
    JointSummary,
    Prediction,
    Summary,
    camera_frame_errors,
    group_means,
    keypoint_errors_px,
    match_hands,
    pa_joint_errors_mm,
    pose_errors_mm,
    score_hand,
    summarise,
    summarise_all,
    summarise_depth,
    summarise_joints,
)

__all__ = [
    "ALL_DATASETS",
    "DEFAULT_MAX_MATCH_DISTANCE",
    "DEPTH_METHOD",
    "KEYPOINT_GROUPS",
    "METHODS",
    "PCK_FRACTION",
    "HandScore",
    "JointSummary",
    "Prediction",
    "RecordingDetector",
    "Summary",
    "add_arguments",
    "camera_from_annotation",
    "camera_frame_errors",
    "evaluate",
    "format_depth_table",
    "format_joint_table",
    "format_table",
    "group_means",
    "keypoint_errors_px",
    "main",
    "make_estimator",
    "match_hands",
    "pa_joint_errors_mm",
    "pose_errors_mm",
    "run",
    "score_hand",
    "summarise",
    "summarise_all",
    "summarise_depth",
    "summarise_joints",
    "write_report",
]
