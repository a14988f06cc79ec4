"""The node's ROS parameters: declared with descriptions and ranges, read once, validated.

Defaults come from the two config dataclasses (``EstimatorConfig``, ``NodeConfig``), whose
values equal ``config/estimator.yaml`` (test/test_config.py), so the node, the launch file's
parameter file and the library cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from hand_mesh_ros.pipeline.estimator import DEVICES, EstimatorConfig
from hand_mesh_ros.ros.config import IMAGE_QOS_CHOICES, NodeConfig


@dataclass(frozen=True)
class ParameterSpec:
    description: str
    low: float | None = None  # inclusive range for numbers; None = unbounded / not a number
    high: float | None = None


SPECS: dict[str, ParameterSpec] = {
    "device": ParameterSpec(f"torch device, one of {DEVICES}; cuda falls back to the CPU"),
    "max_hands": ParameterSpec("most hands estimated per image", 1, 8),
    "mirrored_input": ParameterSpec("true for selfie (mirrored) cameras: fixes left/right"),
    "min_detection_confidence": ParameterSpec("mediapipe palm detection threshold", 0.0, 1.0),
    "refine_iterations": ParameterSpec("test-time refinement iterations, new hand", 0, 500),
    "warm_iterations": ParameterSpec("refinement iterations, tracked hand (warm start)", 0, 500),
    "horizontal_fov_deg": ParameterSpec(
        "field of view assumed until a valid CameraInfo arrives, degrees", 10.0, 170.0
    ),
    "max_missed_frames": ParameterSpec("frames a hand track survives undetected", 0, 1000),
    "skeleton_weight": ParameterSpec(
        "weight of the detector's 3D landmarks in refinement", 0.0, 1e4
    ),
    "temporal_weight": ParameterSpec(
        "tracked hands: weight of staying near the last fit", 0.0, 1e6
    ),
    "evidence_weights": ParameterSpec("DHPE ResNet+CPM weights file for 2D keypoints; '' = none"),
    "auto_start": ParameterSpec("configure and activate on start (no lifecycle manager needed)"),
    "image_qos": ParameterSpec(f"image subscription QoS, one of {IMAGE_QOS_CHOICES}"),
    "publish_overlay": ParameterSpec("publish hand/overlay, the image with the meshes drawn"),
    "diagnostics_period_s": ParameterSpec("/diagnostics period, seconds", 0.05, 60.0),
    "warning_throttle_s": ParameterSpec("one warning per problem kind per period, s", 0.0, 3600.0),
    "max_image_pixels": ParameterSpec("larger images are dropped with a warning", 1024, 1e8),
    "track_timeout_s": ParameterSpec(
        "reset hand tracks after a stamp gap this long (or a stamp going back), s", 0.01, 3600.0
    ),
}


def _descriptor(name: str, default) -> ParameterDescriptor:
    spec = SPECS[name]
    descriptor = ParameterDescriptor(name=name, description=spec.description)
    if spec.low is not None and isinstance(default, bool):
        raise TypeError(f"{name}: a range on a boolean parameter")
    if spec.low is not None and isinstance(default, int):
        descriptor.integer_range = [
            IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=0)
        ]
    elif spec.low is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
        ]
    return descriptor


def defaults() -> dict[str, object]:
    """Every parameter's default, from the config dataclasses."""
    values = {f.name: f.default for f in fields(EstimatorConfig)}
    values.update({f.name: f.default for f in fields(NodeConfig)})
    return values


def declare_parameters(node) -> None:
    """Declare every parameter on ``node`` with its description, range and default. Values from
    a parameter file or the command line outside a range are refused by rclpy at start."""
    for name, default in defaults().items():
        node.declare_parameter(name, default, _descriptor(name, default))


def read_parameters(node) -> tuple[EstimatorConfig, NodeConfig]:
    """The declared values as validated configs; ValueError names the bad parameter."""
    values = {name: node.get_parameter(name).value for name in defaults()}
    estimator = {f.name: values[f.name] for f in fields(EstimatorConfig)}
    node_options = {f.name: values[f.name] for f in fields(NodeConfig)}
    return EstimatorConfig(**estimator), NodeConfig(**node_options)
