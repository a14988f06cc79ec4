"""Options of the ROS 2 node itself (the estimator's are ``pipeline.EstimatorConfig``).

Plain Python, no rclpy: ``config/estimator.yaml`` holds the defaults of both, and
test/test_config.py checks that they agree with these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_QOS_CHOICES = ("sensor_data", "reliable")
NODE_NAME = "hand_mesh_estimator"
IMAGE_TOPIC = "image"  # internal names; remapped to /camera/... by default (node.main, launch)
CAMERA_INFO_TOPIC = "camera_info"
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_CAMERA_INFO_TOPIC = "/camera/camera_info"


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    auto_start: bool = True  # configure + activate on start (simple use, no lifecycle manager)
    image_qos: str = "sensor_data"  # sensor_data: best effort, keep last 1 | reliable
    publish_overlay: bool = False  # debug image on hand/overlay
    diagnostics_period_s: float = 1.0
    warning_throttle_s: float = 5.0  # one warning per problem kind per period
    max_image_pixels: int = 4096 * 4096  # larger images are dropped with a warning
    # hand tracks (warm starts) are reset when the input jumps: a stamp gap longer than this,
    # a stamp going backwards (a bag restarting) or a new image size
    track_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if self.image_qos not in IMAGE_QOS_CHOICES:
            raise ValueError(
                f"image_qos must be one of {IMAGE_QOS_CHOICES}, got {self.image_qos!r}"
            )
        if not 0.05 <= self.diagnostics_period_s <= 60.0:
            raise ValueError(
                f"diagnostics_period_s must be in [0.05, 60], got {self.diagnostics_period_s}"
            )
        if not 0.0 <= self.warning_throttle_s <= 3600.0:
            raise ValueError(
                f"warning_throttle_s must be in [0, 3600], got {self.warning_throttle_s}"
            )
        if not 0.01 <= self.track_timeout_s <= 3600.0:
            raise ValueError(f"track_timeout_s must be in [0.01, 3600], got {self.track_timeout_s}")
        if not 1024 <= self.max_image_pixels <= 100_000_000:
            raise ValueError(
                f"max_image_pixels must be in [1024, 1e8], got {self.max_image_pixels}"
            )
