"""The ROS 2 estimator node: images in, hands out. Glue only -- parameters, lifecycle, QoS,
conversion, one estimator call per frame, publishing; the work is in ``pipeline``.

Topics (relative names; remap ``image`` / ``camera_info``):
  in   image (sensor_msgs/Image), camera_info (sensor_msgs/CameraInfo)
  out  hand/joints (HandJointsArray), hand/mano (HandManoArray), hand/mesh (MarkerArray),
       hand/mesh_indexed (HandMeshArray), hand/joint_markers (MarkerArray, for RViz),
       hand/overlay (Image, optional), /diagnostics
Every output carries the input image's header; a frame without hands gives empty arrays.
Frames are processed on a worker thread from a one-frame slot: a frame that arrives while the
previous one is being processed replaces any waiting frame, and the replaced one is counted as
dropped (stale). Bad frames are dropped with a throttled warning and counted; the node goes on.
"""

from __future__ import annotations

import gc
import math
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

from hand_mesh_ros.imageio import ImageError
from hand_mesh_ros.msg import HandJointsArray, HandManoArray, HandMeshArray
from hand_mesh_ros.pipeline.estimator import HandMeshEstimator
from hand_mesh_ros.pipeline.tracker import HandTracker
from hand_mesh_ros.ros import conversions
from hand_mesh_ros.ros.config import (
    CAMERA_INFO_TOPIC,
    IMAGE_TOPIC,
    NODE_NAME,
)
from hand_mesh_ros.ros.image_bridge import image_msg_to_rgb8
from hand_mesh_ros.ros.params import declare_parameters, read_parameters
from hand_mesh_ros.ros.runtime import LatestFrameSlot, NodeStats, WarningThrottle

OUTPUT_DEPTH = 5  # keep-last depth of the output topics (reliable)
CAMERA_INFO_WAIT_S = 0.1  # how long a frame waits for the CameraInfo with its own stamp
CAMERA_INFO_HISTORY = 10  # recent CameraInfo messages kept, matched to images by stamp
WORKER_POLL_S = 0.2  # the worker re-checks for shutdown this often when idle


class HandMeshNode(LifecycleNode):
    """Lifecycle node: configure loads the models, activate subscribes, deactivate
    unsubscribes, cleanup releases the models (and GPU memory)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self)
        self._estimator: HandMeshEstimator | None = None
        self._tracker: HandTracker | None = None
        self._inputs = []
        self._outputs: dict[str, object] = {}
        self._slot = LatestFrameSlot()
        self._worker: threading.Thread | None = None
        self._camera_infos: dict[int, CameraInfo] = {}  # stamp ns -> message, newest last
        self._camera_info_arrived = threading.Condition()
        self._last_input: tuple[int, int, int] | None = None  # stamp ns, width, height
        self._stats = NodeStats()
        self._throttle = WarningThrottle(5.0)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = None
        self.config = self.node_config = None
        if self.get_parameter("auto_start").value:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # ----- lifecycle -----------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config, self.node_config = read_parameters(self)
            self._estimator = HandMeshEstimator(self.config)
        except Exception as error:  # a bad value, a missing or unreadable weights file
            self.get_logger().error(f"configure failed: {type(error).__name__}: {error}")
            return TransitionCallbackReturn.FAILURE
        if self.config.device == "cuda" and self._estimator.device.type != "cuda":
            self.get_logger().warning("device 'cuda' requested but CUDA is not available: CPU")
        self._tracker = HandTracker(self._estimator)
        self._throttle = WarningThrottle(self.node_config.warning_throttle_s)
        depth = QoSProfile(depth=OUTPUT_DEPTH)
        self._outputs = {
            "joints": self.create_lifecycle_publisher(HandJointsArray, "hand/joints", depth),
            "mano": self.create_lifecycle_publisher(HandManoArray, "hand/mano", depth),
            "mesh": self.create_lifecycle_publisher(MarkerArray, "hand/mesh", depth),
            "joint_markers": self.create_lifecycle_publisher(
                MarkerArray, "hand/joint_markers", depth
            ),
            "mesh_indexed": self.create_lifecycle_publisher(
                HandMeshArray, "hand/mesh_indexed", depth
            ),
        }
        if self.node_config.publish_overlay:
            self._outputs["overlay"] = self.create_lifecycle_publisher(Image, "hand/overlay", depth)
        self._diagnostics_timer = self.create_timer(
            self.node_config.diagnostics_period_s, self._publish_diagnostics
        )
        # the models' objects are long-lived: move them out of the garbage collector's sight,
        # or full collections (~150 ms, triggered by each frame's ~5k marker points) stall frames
        gc.collect()
        gc.freeze()
        self.get_logger().info(
            f"configured on {self._estimator.device} (hand model {self._estimator.model.name})"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.node_config.image_qos == "reliable":
            image_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        else:
            image_qos = qos_profile_sensor_data
        self._inputs = [
            self.create_subscription(Image, IMAGE_TOPIC, self._on_image, image_qos),
            self.create_subscription(
                CameraInfo, CAMERA_INFO_TOPIC, self._on_camera_info, qos_profile_sensor_data
            ),
        ]
        self._slot.reopen()
        self._worker = threading.Thread(target=self._work, name="hand_mesh_worker", daemon=True)
        self._worker.start()
        topic = self.resolve_topic_name(IMAGE_TOPIC)
        self.get_logger().info(f"active: listening on {topic}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_input(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        self._slot.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self._tracker is not None:
            self._tracker.reset()  # tracks do not survive a pause
        self._last_input = None

    def _release(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        if self._estimator is not None:
            device = self._estimator.device
            self._estimator.close()
            self._estimator = self._tracker = None
            gc.unfreeze()
            gc.collect()
            if device.type == "cuda":
                import torch

                torch.cuda.empty_cache()

    # ----- input ----------------------------------------------------------------------------
    def _on_camera_info(self, msg: CameraInfo) -> None:
        with self._camera_info_arrived:
            self._camera_infos[_stamp_ns(msg.header)] = msg
            while len(self._camera_infos) > CAMERA_INFO_HISTORY:
                self._camera_infos.pop(next(iter(self._camera_infos)))
            self._camera_info_arrived.notify_all()

    def _camera_info_for(self, stamp: int) -> CameraInfo | None:
        """The CameraInfo with the image's stamp (waiting briefly for it: the two topics race),
        else the newest one, else None."""
        with self._camera_info_arrived:
            self._camera_info_arrived.wait_for(
                lambda: stamp in self._camera_infos, timeout=CAMERA_INFO_WAIT_S
            )
            if stamp in self._camera_infos:
                return self._camera_infos[stamp]
            return next(reversed(self._camera_infos.values()), None)

    def _on_image(self, msg: Image) -> None:
        self._stats.count_received()
        before = self._slot.replaced
        self._slot.put(msg)
        if self._slot.replaced > before:
            self._stats.drop("stale")

    def _warn(self, kind: str, text: str) -> None:
        self._stats.drop(kind)
        if self._throttle.ready(kind):
            self.get_logger().warning(f"dropped a frame ({kind}): {text}")

    # ----- processing (worker thread) -------------------------------------------------------
    def _work(self) -> None:
        while rclpy.ok():
            msg = self._slot.take(timeout=WORKER_POLL_S)
            if msg is None:
                if self._slot.closed:
                    return
                continue
            try:
                self._process(msg)
            except Exception as error:  # never let one frame kill the node
                self._warn("estimator_error", f"{type(error).__name__}: {error}")

    def _camera_for(self, msg: Image, width: int, height: int):
        """Intrinsics from the frame's CameraInfo; None (assumed FOV) when none arrived yet."""
        info = self._camera_info_for(_stamp_ns(msg.header))
        if info is None:
            if self._throttle.ready("no_camera_info"):
                self.get_logger().warning(
                    f"no CameraInfo on {self.resolve_topic_name(CAMERA_INFO_TOPIC)} yet: "
                    f"assuming a {self.config.horizontal_fov_deg} deg horizontal field of view"
                )
            return None
        if info.width and info.height and (info.width, info.height) != (width, height):
            raise ValueError(
                f"CameraInfo is for {info.width}x{info.height} but the image is {width}x{height}"
            )
        return conversions.camera_info_to_intrinsics(info)

    def _reset_tracks_on_jump(self, msg: Image, width: int, height: int) -> None:
        """Warm starts only within one continuous stream (see NodeConfig.track_timeout_s)."""
        stamp = _stamp_ns(msg.header)
        last, self._last_input = self._last_input, (stamp, width, height)
        if last is None:
            return
        gap_s = (stamp - last[0]) * 1e-9
        if gap_s < 0 or gap_s > self.node_config.track_timeout_s or last[1:] != (width, height):
            self._tracker.reset()

    def _process(self, msg: Image) -> None:
        start = time.perf_counter()
        try:
            rgb = image_msg_to_rgb8(msg, max_pixels=self.node_config.max_image_pixels)
        except ImageError as error:
            self._warn("bad_image", str(error))
            return
        try:
            camera = self._camera_for(msg, rgb.shape[1], rgb.shape[0])
        except ValueError as error:
            self._warn("bad_camera_info", str(error))
            return
        convert_ms = (time.perf_counter() - start) * 1e3
        self._reset_tracks_on_jump(msg, rgb.shape[1], rgb.shape[0])
        result = self._tracker.update(rgb, camera)
        t_publish = time.perf_counter()
        try:
            messages = {  # cheap flat arrays: always built (they also validate the result)
                "joints": conversions.joints_array(result, msg.header),
                "mano": conversions.mano_array(result, msg.header),
                "mesh_indexed": conversions.mesh_array(result, msg.header),
            }
            # thousands of Point objects or a drawn image: only when someone listens
            optional = {
                "mesh": lambda: conversions.mesh_markers(result, msg.header),
                "joint_markers": lambda: conversions.joint_markers(result, msg.header),
                "overlay": lambda: conversions.overlay_image(rgb, result, msg.header),
            }
            for name, build in optional.items():
                output = self._outputs.get(name)
                if output is not None and output.get_subscription_count() > 0:
                    messages[name] = build()
        except ValueError as error:  # non-finite values in a result
            self._tracker.reset()
            self._warn("invalid_result", str(error))
            return
        for name, message in messages.items():
            self._outputs[name].publish(message)
        now = time.perf_counter()
        stage_ms = {"convert": convert_ms, **result.timings_ms}
        stage_ms["publish"] = (now - t_publish) * 1e3
        stage_ms["end_to_end"] = (now - start) * 1e3
        self._stats.frame_done(stage_ms, result.hands, time.monotonic())

    # ----- diagnostics ----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        values = self._stats.snapshot(time.monotonic())
        device = str(self._estimator.device) if self._estimator is not None else "none"
        values["device"] = device
        values["camera_info"] = "received" if self._camera_infos else "missing"
        dropped = values["frames_dropped"] - values.get("dropped_stale", 0)
        level, message = DiagnosticStatus.OK, "running"
        if not self._inputs:
            level, message = DiagnosticStatus.WARN, "inactive"
        elif dropped:
            level, message = DiagnosticStatus.WARN, f"{dropped} bad frames dropped so far"
        loss = values["refine_final_loss_last"]
        if isinstance(loss, float) and math.isnan(loss):
            values["refine_final_loss_last"] = "none"
        self._diagnostics.publish(
            conversions.diagnostic_array(
                self.get_clock().now().to_msg(),
                hardware_id=device,
                values=values,
                level=level,
                message=message,
            )
        )

    @property
    def stats(self) -> NodeStats:
        return self._stats


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
