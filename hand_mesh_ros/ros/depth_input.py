"""The node's aligned depth input (``depth_topic``): an RGB-D camera's depth image aligned to
the colour image, matched to each colour frame by stamp.

Subscription: the same ``ImageInput`` as the colour image (``image_qos`` decides the
reliability, ``auto`` matching the depth publishers'; lost depth frames counted), always raw
``sensor_msgs/Image`` (``compressedDepth`` is not read). The newest ``DEPTH_HISTORY`` depth
messages are kept by stamp, undecoded.

Per colour frame (``for_frame``): the depth with the nearest stamp within
``depth_sync_tolerance_s`` (it may arrive before or after its image: up to ``DEPTH_WAIT_S`` is
waited for it while the depth stream is live), decoded to metres
(``image_bridge.depth_msg_to_metres``: 16UC1 mm, 32FC1 m) and checked to have the image's
size. When one of these fails the frame is processed RGB only, counted by cause (``CAUSES``)
and the cause gets a throttled warning:

  no_match       no depth within the tolerance of the image's stamp (none yet, a stalled
                 depth stream, unsynchronised clocks)
  bad_encoding   not 16UC1 / 32FC1 (e.g. a colourised depth on the topic)
  bad_data       a malformed message (zero size, too large, short step, truncated) or
                 negative depths
  size_mismatch  not the colour image's size: never rescaled (a depth that is not aligned to
                 the colour image is no use; the camera's aligned topic has its size)

After the fit (``frame_done``) the hands' ``HandDepth`` are counted (used, or rejected by
status, with a throttled warning) for /diagnostics (``diagnostics``).
"""

from __future__ import annotations

import time

import numpy as np

from hand_mesh_ros.pipeline.types import DEPTH_USED
from hand_mesh_ros.ros.image_bridge import DepthEncodingError, depth_msg_to_metres
from hand_mesh_ros.ros.image_input import ImageInput
from hand_mesh_ros.ros.runtime import DepthStats, StampedCache, WarningThrottle, stamp_ns

DEPTH_HISTORY = 30  # depth messages kept (1 s at 30 Hz: covers the colour frame's wait)
# how long a colour frame waits for its depth to arrive (only while no depth as new as the
# image is in: a missing depth stream costs each frame this much); 0.1 s was too short now and
# then on a loaded 2-core machine (a frame went RGB only although its depth came, later)
DEPTH_WAIT_S = 0.2
# ... and only while the depth stream is live: after this long without a depth message (or,
# before the first, this long into the colour stream) the frames go on at once (a stopped or
# silent depth stream must not slow every frame by DEPTH_WAIT_S)
DEPTH_STREAM_TIMEOUT_S = 1.0
NO_MATCH, BAD_ENCODING, BAD_DATA, SIZE_MISMATCH = (
    "no_match", "bad_encoding", "bad_data", "size_mismatch"
)
CAUSES = (NO_MATCH, BAD_ENCODING, BAD_DATA, SIZE_MISMATCH)  # why a frame had no depth


def depth_wait_s(last_arrival: float | None, first_frame: float, now: float) -> float:
    """How long a colour frame may wait for its depth: DEPTH_WAIT_S while depth messages keep
    arriving (the newest less than DEPTH_STREAM_TIMEOUT_S ago) or, before the first one, during
    the first DEPTH_STREAM_TIMEOUT_S of colour frames (``first_frame``); else 0. Monotonic s."""
    since = now - (first_frame if last_arrival is None else last_arrival)
    return DEPTH_WAIT_S if since <= DEPTH_STREAM_TIMEOUT_S else 0.0


class DepthInput:
    """Subscribes ``topic`` on ``node`` (``mode``: the ``image_qos`` value) and gives each
    colour frame its aligned depth; counts into ``stats`` (since activation), warns through
    ``throttle``."""

    def __init__(self, node, topic: str, *, mode: str, throttle: WarningThrottle) -> None:
        self._node, self._throttle = node, throttle
        self.stats = DepthStats()
        self._cache = StampedCache(DEPTH_HISTORY)
        self._last_arrival: float | None = None  # time.monotonic() of the newest depth
        self._first_frame: float | None = None  # ... of the first colour frame asking
        self._input = ImageInput(
            node, topic, mode=mode, transport="raw", on_frame=self._on_depth, stats=self.stats,
            throttle=throttle,
        )
        self.topic = self._input.topic

    @classmethod
    def start_for(cls, node, config, *, throttle: WarningThrottle) -> DepthInput | None:
        """The started depth input of ``config.depth_topic`` (a ``NodeConfig``; QoS by its
        ``image_qos``), or None when that is empty (RGB only)."""
        if not config.depth_topic:
            return None
        depth = cls(node, config.depth_topic, mode=config.image_qos, throttle=throttle)
        depth.start()
        return depth

    def start(self) -> None:
        self._input.start()

    def stop(self) -> None:
        self._input.stop()

    def _on_depth(self, msg) -> None:
        self._last_arrival = time.monotonic()
        self._cache.put(stamp_ns(msg.header), msg)

    def for_frame(
        self, header, shape: tuple[int, int], config
    ) -> tuple[np.ndarray | None, str | None]:
        """(depth (H, W) float32 metres, None) for the colour frame of ``header`` and image
        ``shape`` (H, W), or (None, cause) when it has none (module docstring); ``config``:
        the ``NodeConfig`` now (``depth_sync_tolerance_s``, ``max_image_pixels``)."""
        tolerance_s = config.depth_sync_tolerance_s
        stamp, within = stamp_ns(header), round(tolerance_s * 1e9)
        now = time.monotonic()
        if self._first_frame is None:
            self._first_frame = now
        wait_s = depth_wait_s(self._last_arrival, self._first_frame, now)
        found = self._cache.nearest(stamp, within=within, wait_s=wait_s)
        if found is None or abs(found[0] - stamp) > within:
            nearest = "none received yet" if found is None else (
                f"the nearest is {(found[0] - stamp) * 1e-9:+.3f} s away"
            )
            return None, self._without(
                NO_MATCH, f"no depth on {self.topic} within depth_sync_tolerance_s = "
                f"{tolerance_s} s of the image ({nearest})",
            )
        msg = found[1]
        try:
            depth = depth_msg_to_metres(msg, max_pixels=config.max_image_pixels)
        except DepthEncodingError as error:
            return None, self._without(BAD_ENCODING, f"{self.topic}: {error}")
        except ValueError as error:  # ImageError (layout), depthio.DepthError (values)
            return None, self._without(BAD_DATA, f"{self.topic}: {error}")
        if depth.shape != tuple(shape):
            return None, self._without(
                SIZE_MISMATCH, f"the depth on {self.topic} is {depth.shape[1]}x{depth.shape[0]} "
                f"but the image is {shape[1]}x{shape[0]}: not rescaled (subscribe the depth "
                "aligned to the colour image, e.g. /camera/aligned_depth_to_color/image_raw)",
            )
        if msg.header.frame_id != header.frame_id and self._throttle.ready("depth_frame_id"):
            self._node.get_logger().warning(
                f"the depth's frame_id {msg.header.frame_id!r} is not the image's "
                f"{header.frame_id!r}: is {self.topic} aligned to the colour image? (used)"
            )
        return depth, None

    def _without(self, cause: str, text: str) -> str:
        if self._throttle.ready(f"depth_{cause}"):
            self._node.get_logger().warning(f"frame processed without depth ({cause}): {text}")
        return cause

    def frame_done(self, without_cause: str | None, hands) -> None:
        """Count a processed frame (with a depth when ``without_cause`` is None) and its
        hands' use of the depth; warn (throttled) for each hand whose depth was rejected."""
        self.stats.frame_done(without_cause, hands)
        for hand in hands:
            if hand.depth is not None and hand.depth.status != DEPTH_USED:
                if self._throttle.ready("depth_rejected"):
                    self._node.get_logger().warning(
                        f"the depth of a {hand.side} hand was not used: {hand.depth.status} "
                        f"(valid depth on {hand.depth.valid_fraction:.0%} of it); "
                        "placed from the image alone"
                    )

    def problem(self) -> str | None:
        """What is wrong with the depth input (for the /diagnostics level), or None: frames
        without depth because of its encoding, data or size (a misconfigured camera)."""
        counts = self.stats.without()
        bad = [f"{counts[c]} {c}" for c in (BAD_ENCODING, BAD_DATA, SIZE_MISMATCH) if c in counts]
        return "frames processed without depth: " + ", ".join(bad) if bad else None

    def diagnostics(self) -> dict[str, float | int | str]:
        """The depth values of /diagnostics (``DepthStats.snapshot``), topic and QoS first."""
        values: dict[str, float | int | str] = {
            "depth_topic": self.topic,
            "depth_reliability": self._input.reliability or "none",
        }
        values.update(self.stats.snapshot(CAUSES))
        return values
