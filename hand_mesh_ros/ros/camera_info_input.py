"""The CameraInfo subscription: the reliability of the camera's CameraInfo publishers, by the
same ``image_qos`` rule as the images (``image_qos.py``).

Measured with the reliable stand-in camera (``camera_stream``, another process, 30 Hz): a
best-effort subscription lost a third of the CameraInfo messages, and each frame whose own
CameraInfo was lost waited for it (``node.CAMERA_INFO_WAIT_S``). A reliable subscription
cannot hear a best-effort publisher (and makes that publisher log an incompatible-QoS
warning), so with ``auto`` it subscribes reliable only while every publisher of the topic is
reliable, re-checked as publishers come and go; when it changes, the new subscription is made
before the old one goes (a CameraInfo heard twice is stored once: by stamp).
"""

from __future__ import annotations

from collections.abc import Callable

from sensor_msgs.msg import CameraInfo

from hand_mesh_ros.ros.image_qos import (
    image_qos_profile,
    reliability_for,
    start_qos_checks,
    stop_qos_checks,
)


class CameraInfoInput:
    """Subscribes ``topic`` on ``node`` (``mode``: the ``image_qos`` value) and gives each
    CameraInfo to ``on_message``."""

    def __init__(self, node, topic: str, *, mode: str, on_message: Callable[[CameraInfo], None]):
        self._node, self._mode, self._on_message = node, mode, on_message
        self.topic = node.resolve_topic_name(topic)
        self.reliability: str | None = None
        self._subscription = None
        self._timer = None

    def start(self) -> None:
        self._timer = start_qos_checks(self._node, self._mode, self._resubscribe)

    def stop(self) -> None:
        stop_qos_checks(self._node, self._timer)
        self._timer = None
        if self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
            self._subscription = None
        self.reliability = None

    def _resubscribe(self) -> None:
        wanted, _ = reliability_for(self._node, self.topic, self._mode)
        if wanted == self.reliability:
            return
        old = self._subscription
        self._subscription = self._node.create_subscription(
            CameraInfo, self.topic, self._on_message, image_qos_profile(wanted)
        )
        if old is not None:
            self._node.destroy_subscription(old)
        self.reliability = wanted
