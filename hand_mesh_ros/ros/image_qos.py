"""The image subscription's QoS: matched to the camera's publishers (``image_qos: auto``).

Measured here (Fast DDS from the pip wheels, two processes, 640x480 rgb8 at 30 Hz): a
best-effort stream delivers ~2% of the frames, a reliable one 100%, and a best-effort
subscriber of a reliable publisher ~3% -- so subscribing best effort to a reliable camera
throws most frames away. ``auto`` subscribes reliable when every publisher of the topic is
reliable (a reliable subscription cannot receive from a best-effort publisher) and best effort
otherwise, re-evaluated as publishers come and go. The queue is a few frames deep so that a
short stall of the executor thread does not overwrite frames in DDS; the node's newest-frame
slot still keeps only the newest.
"""

from __future__ import annotations

from collections.abc import Iterable

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

IMAGE_QUEUE_DEPTH = 3  # frames DDS may hold for the image callback (the slot keeps one)
RELIABLE, BEST_EFFORT = "reliable", "best_effort"
QOS_CHECK_PERIOD_S = 0.1  # auto: how often the publishers' reliability is re-read


def start_qos_checks(node, mode: str, resubscribe):
    """Subscribe now (``resubscribe()``) and, in ``auto`` mode, re-check the publishers'
    reliability every ``QOS_CHECK_PERIOD_S``; returns the timer (None when not auto)."""
    resubscribe()
    return node.create_timer(QOS_CHECK_PERIOD_S, resubscribe) if mode == "auto" else None


def stop_qos_checks(node, timer) -> None:
    """Stop the re-checks ``start_qos_checks`` started (``timer`` may be None)."""
    if timer is not None:
        node.destroy_timer(timer)


def reliability_for(node, topic: str, mode: str) -> tuple[str, list[str]]:
    """The reliability to subscribe ``topic`` with now (``choose_reliability`` over its
    current publishers) and the publishers' own reliabilities (for logging)."""
    publishers = node.get_publishers_info_by_topic(topic)
    policies = [p.qos_profile.reliability for p in publishers]
    return choose_reliability(mode, policies), sorted({p.name.lower() for p in policies})


def choose_reliability(mode: str, publishers: Iterable[ReliabilityPolicy]) -> str:
    """"reliable" or "best_effort" for ``mode`` (auto | sensor_data | reliable) and the
    reliability of the topic's current publishers. With none yet, auto subscribes best effort,
    which hears publishers of either kind until the first one is seen."""
    if mode == "reliable":
        return RELIABLE
    if mode == "sensor_data":
        return BEST_EFFORT
    if mode != "auto":
        raise ValueError(f"image_qos must be auto, sensor_data or reliable, got {mode!r}")
    publishers = list(publishers)
    reliable = bool(publishers) and all(p == ReliabilityPolicy.RELIABLE for p in publishers)
    return RELIABLE if reliable else BEST_EFFORT


def image_qos_profile(reliability: str) -> QoSProfile:
    """Keep-last ``IMAGE_QUEUE_DEPTH``, volatile, with the given reliability."""
    reliable = reliability == RELIABLE
    policy = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=IMAGE_QUEUE_DEPTH,
        reliability=policy,
        durability=DurabilityPolicy.VOLATILE,
    )
