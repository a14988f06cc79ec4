"""The ROS-free image -> hands pipeline: ``HandMeshEstimator`` (the one recipe for a frame)
and ``HandTracker`` (a stream: tracks, warm starts, continuity). Settings in ``config.py``,
results in ``types.py``; the flow of a frame: docs/architecture.md."""

from hand_mesh_ros.pipeline.config import EstimatorConfig, TrackerConfig
from hand_mesh_ros.pipeline.estimator import HandMeshEstimator
from hand_mesh_ros.pipeline.tracker import HandTracker
from hand_mesh_ros.pipeline.types import CameraIntrinsics, FrameResult, HandEstimate

__all__ = [
    "CameraIntrinsics",
    "EstimatorConfig",
    "FrameResult",
    "HandEstimate",
    "HandMeshEstimator",
    "HandTracker",
    "TrackerConfig",
]
