"""The node's image subscriptions (the colour image, and the aligned depth through
``depth_input.py``): QoS matched to the camera (``image_qos.py``), raw or compressed
transport, and every frame that did not arrive counted.

Counted into the ``stats`` given (a ``StreamCounts``: ``NodeStats`` for the image,
``DepthStats`` for the depth), on /diagnostics as ``frames_lost_in_transport`` /
``depth_lost_in_transport`` (the subscription's message-lost events: samples DDS knows it did
not deliver) and ``frames_missed_in_sequence`` / ``depth_missed_in_sequence`` (gaps in the
publishers' sequence numbers: lost in transport or overwritten in the subscription's queue). A
loss gets one throttled warning per topic naming the remedy.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rclpy.event_handler import SubscriptionEventCallbacks
from sensor_msgs.msg import CompressedImage, Image

from hand_mesh_ros.ros.image_qos import (
    image_qos_profile,
    reliability_for,
    start_qos_checks,
    stop_qos_checks,
)
from hand_mesh_ros.ros.runtime import SequenceGaps, StreamCounts, WarningThrottle

RETIRE_AFTER_S = 2.0  # an old subscription is dropped at the latest this long after the new one
LOSS_REMEDY = (
    "large images across processes: subscribe reliable to a reliable camera (image_qos: auto "
    "does), and give both processes a large-data transport (config/fastdds_large_data.xml via "
    "FASTDDS_DEFAULT_PROFILES_FILE, or FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA): docs/ros.md"
)


class ImageInput:
    """Subscribes ``topic`` (or ``topic``/compressed) on ``node`` and hands every message to
    ``on_frame``; ``mode`` auto | sensor_data | reliable, ``transport`` raw | compressed."""

    def __init__(
        self,
        node,
        topic: str,
        *,
        mode: str,
        transport: str,
        on_frame: Callable[[object], None],
        stats: StreamCounts,
        throttle: WarningThrottle,
    ) -> None:
        self._node, self._mode, self._on_frame = node, mode, on_frame
        self._stats, self._throttle = stats, throttle
        base = node.resolve_topic_name(topic)  # remaps apply to the base name (image_transport)
        self.topic = f"{base}/compressed" if transport == "compressed" else base
        self._type = CompressedImage if transport == "compressed" else Image
        self._gaps = SequenceGaps()
        self._subscriptions: list = []  # the newest last; older ones retire (see _resubscribe)
        self._created = self._newest_delivered = 0  # subscription numbers
        self._since = time.monotonic()  # when the newest subscription was made
        self.reliability: str | None = None
        self._timer = None

    def start(self) -> None:
        self._timer = start_qos_checks(self._node, self._mode, self._resubscribe)

    def stop(self) -> None:
        stop_qos_checks(self._node, self._timer)
        self._timer = None
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions = []
        self.reliability = None

    def _resubscribe(self) -> None:
        """(Re)create the subscription when the reliability it should have changed. Make
        before break: the old one keeps receiving until the new one delivers its first frame
        (or ``RETIRE_AFTER_S`` passed); frames heard by both are dropped as duplicates by their
        sequence numbers."""
        self._retire(force=time.monotonic() - self._since > RETIRE_AFTER_S)
        wanted, kinds = reliability_for(self._node, self.topic, self._mode)
        if wanted == self.reliability:
            return
        index = self._created = self._created + 1
        events = SubscriptionEventCallbacks(
            message_lost=lambda info, index=index: self._on_lost(info, index),
            incompatible_qos=self._on_incompatible,
        )
        self._subscriptions.append(
            self._node.create_subscription(
                self._type,
                self.topic,
                lambda msg, info, index=index: self._on_message(msg, info, index),
                image_qos_profile(wanted),
                event_callbacks=events,
            )
        )
        self.reliability, self._since = wanted, time.monotonic()
        self._node.get_logger().info(
            f"image subscription on {self.topic}: {wanted} (publishers: {kinds or 'none'})"
        )

    def _retire(self, *, force: bool) -> None:
        """Destroy every subscription but the newest once it has delivered (or ``force``)."""
        if len(self._subscriptions) > 1 and (force or self._newest_delivered == self._created):
            for subscription in self._subscriptions[:-1]:
                self._node.destroy_subscription(subscription)
            del self._subscriptions[:-1]

    def _on_message(self, msg, info, index: int) -> None:
        if index < self._newest_delivered:  # an old subscription, after the new one took over
            return
        self._newest_delivered = index
        gid = info.get("publisher_gid")
        key = bytes(gid["data"]) if isinstance(gid, dict) and "data" in gid else None
        before = self._gaps.missed
        missed = self._gaps.add(key, info.get("publication_sequence_number"))
        self._stats.count_lost(in_sequence=self._gaps.missed - before)  # < 0: a late arrival
        if missed is None:  # heard by an old and a new subscription, or late: taken once
            return
        self._stats.count_received()
        if missed:
            self._warn_loss(f"{missed} frame(s) of {self.topic} never reached the node")
        self._on_frame(msg)

    def _on_lost(self, info, index: int) -> None:
        if index < self._created:  # a subscription being replaced: the new one's count holds
            return
        self._stats.count_lost(in_transport=int(info.total_count_change))
        self._warn_loss(f"DDS lost {info.total_count_change} frame(s) of {self.topic}")

    def _on_incompatible(self, info) -> None:
        """A publisher this subscription cannot hear (e.g. best effort vs our reliable); with
        ``auto`` the next QoS check resubscribes."""
        if self._throttle.ready(f"incompatible_qos {self.topic}"):
            self._node.get_logger().warning(
                f"a publisher of {self.topic} has an incompatible QoS "
                f"({info.last_policy_kind}); image_qos={self._mode}"
            )

    def _warn_loss(self, text: str) -> None:
        if self._throttle.ready(f"frames_lost {self.topic}"):
            self._node.get_logger().warning(f"{text}: {LOSS_REMEDY}")

