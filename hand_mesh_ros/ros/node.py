"""The ROS 2 estimator node: images in, hands out. Glue only -- parameters, lifecycle, QoS,
conversion, one estimator call per frame, publishing; the work is in ``pipeline``.

Topics (relative names; remap ``image`` / ``camera_info``):
  in   image (sensor_msgs/Image), camera_info (sensor_msgs/CameraInfo), and with
       ``depth_topic`` set the aligned depth (16UC1 / 32FC1, matched by stamp: ``depth_input.py``)
  out  the table in ``topics.py`` (hand/joints, hand/mano, hand/mesh, ...), /diagnostics,
       /tf (the hands' frames, ``conversions.hand_transforms``; ``tf_publisher.py``)
Every output carries the input image's header; a frame without hands gives empty arrays.
Continuity (when warm starts go on, when tracks end) is ``HandTracker``'s: the node hands it
each frame with its stamp.
Frames are processed by two threads one frame apart (``stages.py``): "hand_mesh_detect"
decodes frame t+1 and finds its hands while "hand_mesh_fit" fits and publishes frame t. Each
stage takes the newest frame from a one-frame slot: a frame replaced while waiting is counted
as dropped (stale); the image callback never waits for the estimator. The subscription itself
(QoS matched to the camera, raw or compressed, frames lost before it counted) is
``image_input.py``. Bad frames are dropped with a throttled warning and counted; the node goes
on. Parameters marked live in the config tables change while running (``ros2 param set``),
applied between frames; the others are refused with the reason.
"""

from __future__ import annotations

import gc
import math
import threading
import time
from dataclasses import dataclass

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hand_mesh_ros.imageio import ImageError
from hand_mesh_ros.pipeline import HandMeshEstimator, HandTracker
from hand_mesh_ros.pipeline.estimator import Detections
from hand_mesh_ros.ros import conversions
from hand_mesh_ros.ros.camera_info_input import CameraInfoInput
from hand_mesh_ros.ros.config import CAMERA_INFO_TOPIC, IMAGE_TOPIC, NODE_NAME
from hand_mesh_ros.ros.depth_input import DepthInput
from hand_mesh_ros.ros.image_bridge import compressed_msg_to_rgb8, image_msg_to_rgb8
from hand_mesh_ros.ros.image_input import ImageInput
from hand_mesh_ros.ros.params import changed_configs, declare_parameters, read_parameters
from hand_mesh_ros.ros.runtime import (
    NodeStats,
    StampedCache,
    WarningThrottle,
    stamp_ns,
)
from hand_mesh_ros.ros.stages import OverlappedStages
from hand_mesh_ros.ros.tf_publisher import TfPublisher
from hand_mesh_ros.ros.topics import OUTPUTS

OUTPUT_DEPTH = 5  # keep-last depth of the output topics (reliable)
CAMERA_INFO_WAIT_S = 0.1  # how long a frame waits for the CameraInfo with its own stamp ...
CAMERA_INFO_HISTORY = 10  # ... unless this many CameraInfo in a row were the same (a fixed
# camera: its newest serves; measured, a reliable camera's CameraInfo arrived up to 140 ms
# after its image on one frame in seven, which each then waited); also the messages kept


@dataclass(frozen=True, eq=False)
class DetectedFrame:
    """A frame between the two stages: decoded, its camera and depth found, hands detected."""

    msg: object  # the Image / CompressedImage
    rgb: object  # (H, W, 3) uint8
    camera: object  # CameraIntrinsics or None (assumed field of view)
    depth: object  # (H, W) metres or None
    without_depth: str | None  # why the frame has no depth (DepthInput.for_frame)
    depth_input: DepthInput | None
    detections: Detections
    start: float  # perf_counter when the first stage took the frame
    ready: float  # perf_counter when it was handed to the second stage
    stage_ms: dict  # convert, depth (first-stage milliseconds)


class HandMeshNode(LifecycleNode):
    """Lifecycle node: configure loads the models, activate subscribes, deactivate
    unsubscribes, cleanup releases the models (and GPU memory)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self)
        self._estimator: HandMeshEstimator | None = None
        self._tracker: HandTracker | None = None
        self._inputs = []
        self._image_input: ImageInput | None = None
        self._depth: DepthInput | None = None  # with depth_topic set
        self._pending_configs: tuple | None = None  # live parameter changes, for the stages
        self._pending_lock = threading.Lock()
        self._outputs: dict[str, object] = {}
        self._tf: TfPublisher | None = None  # /tf, the hands' frames
        self._stages = OverlappedStages(
            self._detect_stage,
            self._fit_stage,
            on_stale=lambda detected: self._stats.drop_stale(detected),
            on_error=lambda stage, error: self._warn(
                "estimator_error", f"{stage}: {type(error).__name__}: {error}"
            ),
            names=("hand_mesh_detect", "hand_mesh_fit"),
        )
        self._camera_infos = StampedCache(CAMERA_INFO_HISTORY)  # CameraInfo by stamp (ns)
        self._last_intrinsics: tuple | None = None  # of the newest CameraInfo
        self._unchanged_infos = 0  # CameraInfo in a row with the same intrinsics
        self._stats = NodeStats()
        self._throttle = WarningThrottle(5.0)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = None
        self.config = self.tracker_config = self.node_config = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.get_parameter("auto_start").value:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # ----- lifecycle -----------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config, self.tracker_config, self.node_config = read_parameters(self)
            if self.node_config.torch_threads:
                torch.set_num_threads(self.node_config.torch_threads)
            self._estimator = HandMeshEstimator(self.config)
            self._tf = TfPublisher(self)
        except Exception as error:  # a bad value, a missing or unreadable weights file
            self.get_logger().error(f"configure failed: {type(error).__name__}: {error}")
            self._release()  # what was made before the failure (the models, the /tf publisher)
            return TransitionCallbackReturn.FAILURE
        if self.config.device == "cuda" and self._estimator.device.type != "cuda":
            self.get_logger().warning("device 'cuda' requested but CUDA is not available: CPU")
        self._tracker = HandTracker(self._estimator, self.tracker_config)
        self._throttle = WarningThrottle(self.node_config.warning_throttle_s)
        depth = QoSProfile(depth=OUTPUT_DEPTH)
        self._outputs = {
            name: self.create_lifecycle_publisher(output.message_type, output.topic, depth)
            for name, output in OUTPUTS.items()
        }
        self._diagnostics_timer = self.create_timer(
            self.node_config.diagnostics_period_s, self._publish_diagnostics
        )
        # the models' objects are long-lived: move them out of the garbage collector's sight,
        # or full collections (~150 ms, triggered by each frame's ~5k marker points) stall frames
        gc.collect()
        gc.freeze()
        self.get_logger().info(
            f"configured on {self._estimator.device} (hand model {self._estimator.model.name}: "
            f"{self.config.hand_model})"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._inputs = [
            CameraInfoInput(self, CAMERA_INFO_TOPIC, mode=self.node_config.image_qos,
                            on_message=self._on_camera_info),
        ]
        self._image_input = ImageInput(
            self,
            IMAGE_TOPIC,
            mode=self.node_config.image_qos,
            transport=self.node_config.image_transport,
            on_frame=self._on_image,
            stats=self._stats,
            throttle=self._throttle,
        )
        self._depth = DepthInput.start_for(self, self.node_config, throttle=self._throttle)
        self._stages.start()
        for stream in (*self._inputs, self._image_input):  # CameraInfo first
            stream.start()
        depth = f" with depth from {self._depth.topic}" if self._depth else " (RGB only)"
        self.get_logger().info(f"active: listening on {self._image_input.topic}{depth}")
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
        for stream in (self._image_input, self._depth, *self._inputs):
            if stream is not None:
                stream.stop()
        self._image_input = self._depth = None
        self._inputs = []
        self._stages.stop()

    def _release(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        if self._tf is not None:
            self._tf.destroy()
            self._tf = None
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        if self._estimator is not None:
            device = self._estimator.device
            self._estimator.close()
            self._estimator = self._tracker = None
            self._pending_configs = None
            gc.unfreeze()
            gc.collect()
            if device.type == "cuda":
                import torch

                torch.cuda.empty_cache()

    # ----- input ----------------------------------------------------------------------------
    def _on_camera_info(self, msg: CameraInfo) -> None:
        intrinsics = (msg.width, msg.height, tuple(msg.k), tuple(msg.d), tuple(msg.p))
        same = intrinsics == self._last_intrinsics
        self._unchanged_infos = self._unchanged_infos + 1 if same else 0
        self._last_intrinsics = intrinsics
        self._camera_infos.put(stamp_ns(msg.header), msg)

    def _on_image(self, msg: Image | CompressedImage) -> None:
        self._stages.put(msg)

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """Live changes while configured (applied by the detect stage before its next frame);
        anything goes while unconfigured (read at configure)."""
        if self._estimator is None:
            return SetParametersResult(successful=True)
        changes = {p.name: p.value for p in parameters}
        with self._pending_lock:
            current = self._pending_configs or (self.config, self.tracker_config, self.node_config)
            try:
                self._pending_configs = changed_configs(current, changes)
            except ValueError as error:
                return SetParametersResult(successful=False, reason=str(error))
        self.get_logger().info(f"parameters changed: {changes}")
        return SetParametersResult(successful=True)

    def _apply_pending_configs(self) -> None:
        with self._pending_lock:
            pending, self._pending_configs = self._pending_configs, None
        if pending is None:
            return
        self.config, self.tracker_config, self.node_config = pending
        self._estimator.reconfigure(self.config)
        self._tracker.config = self.tracker_config
        self._throttle.period_s = self.node_config.warning_throttle_s

    def _warn(self, kind: str, text: str) -> None:
        self._stats.drop(kind)
        if self._throttle.ready(kind):
            self.get_logger().warning(f"dropped a frame ({kind}): {text}")

    # ----- processing (two threads, stages.py) ---------------------------------------------
    def _camera_for(self, msg: Image, width: int, height: int):
        """Intrinsics from the frame's CameraInfo; None (assumed FOV) when none arrived yet."""
        # the image's own CameraInfo (the two topics race: wait briefly unless the camera's
        # intrinsics have been fixed), else the newest one
        fixed_camera = (
            self._unchanged_infos >= CAMERA_INFO_HISTORY
            and self._last_intrinsics[:2] == (width, height)  # not a camera just resized
        )
        wait_s = 0.0 if fixed_camera else CAMERA_INFO_WAIT_S
        info = self._camera_infos.get(stamp_ns(msg.header), wait_s=wait_s)
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

    def _detect_stage(self, msg: Image | CompressedImage) -> DetectedFrame | None:
        """First stage: settings, decoding, intrinsics, the aligned depth, the 2D hands."""
        self._apply_pending_configs()
        start = time.perf_counter()
        decode = compressed_msg_to_rgb8 if isinstance(msg, CompressedImage) else image_msg_to_rgb8
        try:
            rgb = decode(msg, max_pixels=self.node_config.max_image_pixels)
        except ImageError as error:
            self._warn("bad_image", str(error))
            return None
        try:
            camera = self._camera_for(msg, rgb.shape[1], rgb.shape[0])
        except ValueError as error:
            self._warn("bad_camera_info", str(error))
            return None
        convert_ms = (time.perf_counter() - start) * 1e3
        depth_input = self._depth  # the aligned depth, or None and why the frame has none
        depth, without_depth = (
            depth_input.for_frame(msg.header, rgb.shape[:2], self.node_config)
            if depth_input is not None
            else (None, None)
        )
        stage_ms = {"convert": convert_ms}
        if depth_input is not None:
            stage_ms["depth"] = (time.perf_counter() - start) * 1e3 - convert_ms  # wait, decode
        detections = self._tracker.detect(rgb, stamp=stamp_ns(msg.header) * 1e-9)
        return DetectedFrame(msg, rgb, camera, depth, without_depth, depth_input, detections,
                             start, time.perf_counter(), stage_ms)

    def _fit_stage(self, frame: DetectedFrame) -> None:
        """Second stage: the hands' fit (tracks, warm starts), the messages, publishing."""
        msg, rgb = frame.msg, frame.rgb
        waited_ms = (time.perf_counter() - frame.ready) * 1e3
        result = self._tracker.fit(rgb, frame.camera, frame.detections,
                                   stamp=stamp_ns(msg.header) * 1e-9, depth=frame.depth)
        t_publish = time.perf_counter()
        try:
            messages = {
                name: OUTPUTS[name].build(result, msg.header, rgb, self.node_config)
                for name, publisher in self._outputs.items()
                if self._wanted(name, publisher)
            }
            tf = (
                conversions.hand_transforms(result, msg.header, prefix=self.node_config.tf_prefix)
                if self.node_config.publish_tf
                else []
            )
        except ValueError as error:  # non-finite values in a result
            self._tracker.reject_last()
            self._warn("invalid_result", str(error))
            return
        for name, message in messages.items():
            self._outputs[name].publish(message)
        self._tf.send(tf)
        now = time.perf_counter()
        stage_ms = {**frame.stage_ms, "handoff_wait": waited_ms, **result.timings_ms}
        stage_ms["publish"] = (now - t_publish) * 1e3
        stage_ms["end_to_end"] = (now - frame.start) * 1e3
        self._stats.frame_done(stage_ms, result.hands, time.monotonic())
        if frame.depth_input is not None:
            frame.depth_input.frame_done(frame.without_depth, result.hands)

    def _wanted(self, name: str, publisher) -> bool:
        """Build this output now? Enabled by its flag, and subscribed if built on demand."""
        output = OUTPUTS[name]
        if output.needs is not None and not getattr(self.node_config, output.needs):
            return False
        return not output.on_demand or publisher.get_subscription_count() > 0

    # ----- diagnostics ----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        values = self._stats.snapshot(time.monotonic())
        device = str(self._estimator.device) if self._estimator is not None else "none"
        values["device"] = device
        values["camera_info"] = "received" if len(self._camera_infos) else "missing"
        if self._image_input is not None:
            values["image_topic"] = self._image_input.topic
            values["image_reliability"] = self._image_input.reliability or "none"
        values.update(self._depth.diagnostics() if self._depth else {"depth_topic": "none"})
        dropped = values["frames_dropped"] - values.get("dropped_stale", 0)
        lost = max(values["frames_lost_in_transport"], values["frames_missed_in_sequence"])
        level, message = DiagnosticStatus.OK, "running"
        if not self._inputs:
            level, message = DiagnosticStatus.WARN, "inactive"
        elif dropped or lost:
            level = DiagnosticStatus.WARN
            message = f"{dropped} bad frames dropped, {lost} frames lost before the node so far"
        elif self._depth is not None and self._depth.problem():
            level, message = DiagnosticStatus.WARN, self._depth.problem()
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

