"""Options of the ROS 2 node itself (the pipeline's are ``pipeline.EstimatorConfig`` and
``pipeline.TrackerConfig``), and its fixed names.

Plain Python, no rclpy: ``config/estimator.yaml`` holds the defaults of all three, and
test/test_config.py checks that they agree with these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass

from hand_mesh_ros.settings import check_settings, setting

IMAGE_QOS_CHOICES = ("auto", "sensor_data", "reliable")
IMAGE_TRANSPORTS = ("raw", "compressed")
NODE_NAME = "hand_mesh_estimator"
IMAGE_TOPIC = "image"  # internal names; remapped to /camera/... by default (node.main, launch)
CAMERA_INFO_TOPIC = "camera_info"
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_CAMERA_INFO_TOPIC = "/camera/camera_info"
# where RGB-D drivers publish depth aligned to colour (realsense2_camera); the node's
# depth_topic is off ("") unless set; the demo publishes its depth here
DEFAULT_DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    auto_start: bool = setting(
        True, "configure and activate on start (no lifecycle manager needed)"
    )
    image_qos: str = setting(
        "auto",
        f"image subscription reliability, one of {IMAGE_QOS_CHOICES}; auto: reliable when "
        "every publisher of the topic is reliable, else best effort (sensor_data)",
        choices=IMAGE_QOS_CHOICES,
    )
    image_transport: str = setting(
        "raw",
        f"one of {IMAGE_TRANSPORTS}; compressed subscribes <image>/compressed "
        "(sensor_msgs/CompressedImage, jpeg or png)",
        choices=IMAGE_TRANSPORTS,
    )
    publish_overlay: bool = setting(
        False, "publish hand/overlay, the image with the meshes drawn", live=True
    )
    publish_tf: bool = setting(
        True, "per tracked hand, /tf frames <tf_prefix>hand_<side>_<track_id> (wrist) and "
        "..._palm (palm centre) from the image's frame_id", live=True,
    )
    tf_prefix: str = setting(
        "", "prepended to the hands' TF frame names (e.g. 'cam1/'); must not start with '/'",
        live=True,
    )
    # hand/points (sensor_msgs/PointCloud2) for collision-aware planners
    points_per_hand: int = setting(
        0, "hand/points: 0 = the mesh vertices, else this many points sampled evenly on each "
        "hand's surface", low=0, high=100_000, live=True,
    )
    points_inflate_m: float = setting(
        0.0, "hand/points: push the points out along the surface normals by this margin, m "
        "(a safety margin for collision checking)", low=0.0, high=0.1, live=True,
    )
    # aligned depth (RGB-D cameras): sensor_msgs/Image 16UC1 (mm) or 32FC1 (m), the colour
    # image's size, matched to each image by stamp
    depth_topic: str = setting(
        "", "aligned depth image topic (e.g. /camera/aligned_depth_to_color/image_raw); "
        "'' = RGB only"
    )
    depth_sync_tolerance_s: float = setting(
        0.0167, "largest stamp difference between an image and its depth, s (half a frame "
        "at 30 Hz)",
        low=0.0, high=1.0, live=True,
    )
    # the fit's tensors are small: one torch thread is as fast as two (docs/ros.md) and leaves
    # the other cores to mediapipe (the detect stage) and the ROS callbacks
    torch_threads: int = setting(
        1, "CPU threads of torch's per-frame work; 0 = torch's default (one per core)",
        low=0, high=256,
    )
    diagnostics_period_s: float = setting(
        1.0, "/diagnostics period, seconds", low=0.05, high=60.0
    )
    warning_throttle_s: float = setting(
        5.0, "one warning per problem kind per period, s", low=0.0, high=3600.0, live=True
    )
    max_image_pixels: int = setting(
        4096 * 4096, "larger images are dropped with a warning", low=1024, high=100_000_000,
        live=True,
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if self.tf_prefix.startswith("/"):  # tf2 rejects frame ids that start with '/'
            raise ValueError(f"tf_prefix must not start with '/', got {self.tf_prefix!r}")
