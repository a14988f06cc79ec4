"""The ROS-free image -> hands pipeline: ``HandMeshEstimator`` (per image) and
``HandTracker`` (video: tracks and warm starts). Results in ``types.py``."""

from hand_mesh_ros.pipeline.estimator import EstimatorConfig, HandMeshEstimator
from hand_mesh_ros.pipeline.tracker import HandTracker
from hand_mesh_ros.pipeline.types import CameraIntrinsics, FrameResult, HandEstimate

__all__ = [
    "CameraIntrinsics",
    "EstimatorConfig",
    "FrameResult",
    "HandEstimate",
    "HandMeshEstimator",
    "HandTracker",
]
