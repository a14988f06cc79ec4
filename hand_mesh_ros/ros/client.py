"""The camera side of the node, for the demo, the benchmark and the tests: publishes images and
CameraInfo (and, for an RGB-D camera, the aligned depth) as a camera driver does, and collects
the node's outputs keyed by image stamp.

Runs the node and the client on one executor in a background thread (``NodeRunner``), so the
images really travel over DDS between two rclpy nodes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from hand_mesh_ros.ros.config import DEFAULT_CAMERA_INFO_TOPIC, DEFAULT_IMAGE_TOPIC
from hand_mesh_ros.ros.image_bridge import metres_to_depth_msg, rgb8_to_image_msg
from hand_mesh_ros.ros.topics import CLIENT_OUTPUTS, OUTPUTS


def stamp_key(header: Header) -> int:
    """Nanoseconds of a header's stamp (outputs are matched to inputs by it)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def make_header(stamp_ns: int, frame_id: str) -> Header:
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return header


def rgb_image_msg(rgb: np.ndarray, header: Header) -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image rgb8 (no padding). The pixels are handed to
    rclpy as an array.array: from bytes its serialisation takes 16x longer (37 vs 2.3 ms for
    640 x 480), time a camera-side node in this process would steal from the estimator."""
    return rgb8_to_image_msg(rgb, header)


def camera_info_msg(K: np.ndarray, width: int, height: int, header: Header) -> CameraInfo:
    """Pinhole CameraInfo without distortion for intrinsics K (3, 3)."""
    K = np.asarray(K, dtype=np.float64)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return CameraInfo(
        header=header,
        width=width,
        height=height,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=K.ravel().tolist(),
        r=np.eye(3).ravel().tolist(),
        p=P.ravel().tolist(),
    )


@dataclass
class Received:
    """Outputs of one input frame: topic name -> message, and arrival times (perf_counter)."""

    messages: dict[str, object] = field(default_factory=dict)
    arrival: dict[str, float] = field(default_factory=dict)


class EstimatorClient(Node):
    """Publishes images + CameraInfo (+ the aligned depth on ``depth_topic``, when given;
    nothing with ``image_topic`` None: the camera is another process); records every output
    message by its stamp."""

    def __init__(
        self,
        *,
        image_topic: str | None = DEFAULT_IMAGE_TOPIC,
        camera_info_topic: str = DEFAULT_CAMERA_INFO_TOPIC,
        name: str = "hand_mesh_camera",
        namespace: str = "",
        max_kept: int = 1000,
        outputs: tuple[str, ...] = CLIENT_OUTPUTS,
        depth_topic: str | None = None,
    ) -> None:
        super().__init__(name)
        self.max_kept = max_kept  # outputs of this many most recent stamps are kept
        self.image_pub = self.info_pub = None  # a listener only (a camera in another process)
        if image_topic is not None:
            self.image_pub = self.create_publisher(Image, image_topic, qos_profile_sensor_data)
            self.info_pub = self.create_publisher(
                CameraInfo, camera_info_topic, qos_profile_sensor_data
            )
        self.depth_pub = (
            self.create_publisher(Image, depth_topic, qos_profile_sensor_data)
            if depth_topic
            else None
        )
        self._lock = threading.Lock()
        self.received: dict[int, Received] = {}
        self.sent: dict[int, float] = {}  # stamp -> publish time (perf_counter)
        self.diagnostics: list[DiagnosticArray] = []
        for key in outputs:
            topic = OUTPUTS[key].topic
            self.create_subscription(
                OUTPUTS[key].message_type,
                f"{namespace}/{topic}" if namespace else f"/{topic}",
                lambda msg, key=key: self._record(key, msg),
                QoSProfile(depth=50),
            )
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def _record(self, key: str, msg) -> None:
        header = msg.header if hasattr(msg, "header") else _marker_header(msg)
        if header is None:
            return
        now = time.perf_counter()
        with self._lock:
            entry = self.received.setdefault(stamp_key(header), Received())
            entry.messages[key] = msg
            entry.arrival[key] = now
            while len(self.received) > self.max_kept:
                self.received.pop(next(iter(self.received)))
            del self.diagnostics[: -self.max_kept]

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self.diagnostics.append(msg)

    def publish_frame(
        self,
        rgb: np.ndarray,
        K: np.ndarray | None,
        stamp_ns: int,
        frame_id: str,
        *,
        depth: np.ndarray | Image | None = None,
    ) -> Header:
        """Publish CameraInfo (when K is given), the depth (when given: (H, W) metres, sent as
        16UC1 mm, or a ready depth message) then the image, all with the same header."""
        header = make_header(stamp_ns, frame_id)
        h, w = rgb.shape[:2]
        if K is not None:
            self.info_pub.publish(camera_info_msg(K, w, h, header))
        if depth is not None:
            if self.depth_pub is None:
                raise ValueError("a depth was given but this client has no depth_topic")
            self.depth_pub.publish(
                depth if isinstance(depth, Image) else metres_to_depth_msg(depth, header)
            )
        self.publish_image(rgb_image_msg(rgb, header))
        return header

    def publish_image(self, msg: Image) -> None:
        with self._lock:
            self.sent[stamp_key(msg.header)] = time.perf_counter()
            while len(self.sent) > self.max_kept:
                self.sent.pop(next(iter(self.sent)))
        self.image_pub.publish(msg)

    def outputs(self, stamp_ns: int) -> Received | None:
        with self._lock:
            return self.received.get(stamp_ns)

    def messages_of(self, key: str) -> list[tuple[int, object]]:
        """(stamp, message) of every kept output ``key`` (e.g. "joints"), by stamp."""
        with self._lock:
            found = [(s, r.messages[key]) for s, r in self.received.items() if key in r.messages]
        return sorted(found, key=lambda item: item[0])

    def wait_for(self, stamp_ns: int, timeout: float, topics=CLIENT_OUTPUTS) -> Received:
        """Block until every topic in ``topics`` arrived for this stamp; TimeoutError if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.outputs(stamp_ns)
            if entry is not None and all(t in entry.messages for t in topics):
                return entry
            time.sleep(0.005)
        got = sorted(self.outputs(stamp_ns).messages) if self.outputs(stamp_ns) else []
        raise TimeoutError(f"outputs for stamp {stamp_ns} not all received in {timeout} s: {got}")

    def latest_diagnostics(self) -> dict[str, str]:
        """key -> value of the newest /diagnostics status from the estimator ({} if none)."""
        with self._lock:
            arrays = list(self.diagnostics)
        for array in reversed(arrays):
            for status in array.status:
                if status.name.startswith("hand_mesh_ros"):
                    return {kv.key: kv.value for kv in status.values}
        return {}


def _marker_header(msg: MarkerArray) -> Header | None:
    return msg.markers[0].header if msg.markers else None


class NodeRunner:
    """Spins the given nodes on one executor in a background thread."""

    def __init__(self, *nodes: Node) -> None:
        self.executor = SingleThreadedExecutor()
        for node in nodes:
            self.executor.add_node(node)
        self._thread = threading.Thread(target=self._spin, daemon=True, name="ros_spin")
        self._stop = threading.Event()
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.executor.shutdown()
