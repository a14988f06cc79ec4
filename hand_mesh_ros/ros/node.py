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
Frames are processed on a worker thread from a one-frame slot: a frame that arrives while the
previous one is being processed replaces any waiting frame, and the replaced one is counted as
dropped (stale); the image callback never waits for the estimator. The subscription itself
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

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hand_mesh_ros.imageio import ImageError
from hand_mesh_ros.pipeline import HandMeshEstimator, HandTracker
from hand_mesh_ros.ros import conversions
from hand_mesh_ros.ros.config import CAMERA_INFO_TOPIC, IMAGE_TOPIC, NODE_NAME
from hand_mesh_ros.ros.depth_input import DepthInput
from hand_mesh_ros.ros.image_bridge import compressed_msg_to_rgb8, image_msg_to_rgb8
from hand_mesh_ros.ros.image_input import ImageInput
from hand_mesh_ros.ros.params import changed_configs, declare_parameters, read_parameters
from hand_mesh_ros.ros.runtime import (
    LatestFrameSlot,
    NodeStats,
    StampedCache,
    WarningThrottle,
    stamp_ns,
)
from hand_mesh_ros.ros.tf_publisher import TfPublisher
from hand_mesh_ros.ros.topics import OUTPUTS

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
        self._image_input: ImageInput | None = None
        self._depth: DepthInput | None = None  # with depth_topic set
        self._pending_configs: tuple | None = None  # live parameter changes for the worker
        self._pending_lock = threading.Lock()
        self._outputs: dict[str, object] = {}
        self._tf: TfPublisher | None = None  # /tf, the hands' frames
        self._slot = LatestFrameSlot()
        self._worker: threading.Thread | None = None
        self._camera_infos = StampedCache(CAMERA_INFO_HISTORY)  # CameraInfo by stamp (ns)
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
            self.create_subscription(
                CameraInfo, CAMERA_INFO_TOPIC, self._on_camera_info, qos_profile_sensor_data
            ),
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
        self._slot.reopen()
        self._worker = threading.Thread(target=self._work, name="hand_mesh_worker", daemon=True)
        self._worker.start()
        self._image_input.start()
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
        for stream in (self._image_input, self._depth):
            if stream is not None:
                stream.stop()
        self._image_input = self._depth = None
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        self._slot.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None

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
        self._camera_infos.put(stamp_ns(msg.header), msg)

    def _on_image(self, msg: Image | CompressedImage) -> None:
        before = self._slot.replaced
        self._slot.put(msg)
        if self._slot.replaced > before:
            self._stats.drop("stale")

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """Live changes while configured (applied by the worker before its next frame);
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
        # the image's own CameraInfo (the two topics race: wait briefly), else the newest one
        info = self._camera_infos.get(stamp_ns(msg.header), wait_s=CAMERA_INFO_WAIT_S)
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

    def _process(self, msg: Image | CompressedImage) -> None:
        self._apply_pending_configs()
        start = time.perf_counter()
        decode = compressed_msg_to_rgb8 if isinstance(msg, CompressedImage) else image_msg_to_rgb8
        try:
            rgb = decode(msg, max_pixels=self.node_config.max_image_pixels)
        except ImageError as error:
            self._warn("bad_image", str(error))
            return
        try:
            camera = self._camera_for(msg, rgb.shape[1], rgb.shape[0])
        except ValueError as error:
            self._warn("bad_camera_info", str(error))
            return
        convert_ms = (time.perf_counter() - start) * 1e3
        depth_input = self._depth  # the aligned depth, or None and why the frame has none
        depth, without_depth = (
            depth_input.for_frame(msg.header, rgb.shape[:2], self.node_config)
            if depth_input is not None
            else (None, None)
        )
        depth_ms = (time.perf_counter() - start) * 1e3 - convert_ms  # its wait and decoding
        result = self._tracker.update(rgb, camera, stamp=stamp_ns(msg.header) * 1e-9, depth=depth)
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
        stage_ms = {"convert": convert_ms, **({"depth": depth_ms} if depth_input else {})}
        stage_ms.update(result.timings_ms)
        stage_ms["publish"] = (now - t_publish) * 1e3
        stage_ms["end_to_end"] = (now - start) * 1e3
        self._stats.frame_done(stage_ms, result.hands, time.monotonic())
        if depth_input is not None:
            depth_input.frame_done(without_depth, result.hands)

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

