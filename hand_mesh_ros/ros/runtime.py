"""Plain-Python helpers the node runs on: the newest-frame slot, the stamp-keyed caches
(CameraInfo, depth), per-kind warning throttle, the publishers' sequence-gap counter and the
counters and latencies reported on /diagnostics (``NodeStats``; the depth stream's and the
fits' use of it, ``DepthStats``). No rclpy here (unit-testable)."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from hand_mesh_ros.pipeline.types import DEPTH_DISAGREES, DEPTH_NONE, DEPTH_TOO_FEW, DEPTH_USED


def stamp_ns(header) -> int:
    """Nanoseconds of a std_msgs/Header's stamp (messages are matched by it)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class LatestFrameSlot:
    """Holds only the newest unprocessed frame. A frame replaced before the stage took it is
    stale: it is dropped and counted, so the node never builds a backlog."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item = None
        self._closed = False
        self.replaced = 0  # stale frames dropped

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.replaced += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float | None = None):
        """The newest item (clearing the slot), or None on timeout or after close()."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
            self._item = None


class StampedCache:
    """The most recent ``size`` messages by stamp (e.g. CameraInfo, matched to images)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: dict[int, object] = {}  # stamp -> message, newest last
        self._arrived = threading.Condition()

    def put(self, stamp: int, item) -> None:
        with self._arrived:
            self._items.pop(stamp, None)
            self._items[stamp] = item
            while len(self._items) > self._size:
                self._items.pop(next(iter(self._items)))
            self._arrived.notify_all()

    def get(self, stamp: int, *, wait_s: float = 0.0):
        """The item with this stamp (waiting up to ``wait_s`` for it), else the newest, else
        None."""
        with self._arrived:
            self._arrived.wait_for(lambda: stamp in self._items, timeout=wait_s)
            if stamp in self._items:
                return self._items[stamp]
            return next(reversed(self._items.values()), None)

    def nearest(self, stamp: int, *, within: int, wait_s: float = 0.0) -> tuple[int, object]:
        """(stamp, item) of the item whose stamp is nearest to ``stamp``, or None when the cache
        is empty. Waits up to ``wait_s`` for an item within ``within`` of ``stamp`` to arrive,
        but not once an item later than ``stamp + within`` is in (items arrive in stamp order,
        so no match can follow it). The caller checks the returned stamp against ``within``."""

        def settled() -> bool:
            return any(s >= stamp - within for s in self._items)

        with self._arrived:
            self._arrived.wait_for(settled, timeout=wait_s)
            if not self._items:
                return None
            best = min(self._items, key=lambda s: abs(s - stamp))
            return best, self._items[best]

    def __len__(self) -> int:
        with self._arrived:
            return len(self._items)


class WarningThrottle:
    """True at most once per ``period_s`` for each kind of problem (bad encoding, NaN, ...)."""

    def __init__(self, period_s: float, clock=time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._last: dict[str, float] = {}

    def ready(self, kind: str) -> bool:
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.period_s:
            return False
        self._last[kind] = now
        return True


class SequenceGaps:
    """Frames that never reached the image callback, from the publishers' sequence numbers
    (DDS numbers each writer's samples 1, 2, 3, ...): a jump from n to n + k means k - 1
    frames were lost in transport or overwritten in the subscription's queue. Counted per
    publisher (a restarted driver is a new writer, with a new id). While the node switches
    subscriptions (``image_input.py``) a frame can arrive twice, or late through the other
    subscription after a newer one: a duplicate is refused, a late one is un-counted."""

    MAX_REMEMBERED = 1000  # missing numbers kept per publisher to recognise late arrivals

    def __init__(self) -> None:
        self._last: dict[object, int] = {}
        self._missing: dict[object, set[int]] = {}
        self.missed = 0

    def add(self, publisher, sequence: int | None) -> int | None:
        """Record a frame; returns how many frames of this publisher were missed before it,
        0 for a late frame that had been counted missing (no longer counted), or None for a
        frame (or a later one) already seen: a duplicate or out of order, to be dropped."""
        if sequence is None or sequence <= 0:  # the middleware gives no numbers
            return 0
        last = self._last.get(publisher)
        missing = self._missing.setdefault(publisher, set())
        if last is not None and sequence <= last:
            if sequence in missing:  # it did arrive, after a newer one: not lost (but stale)
                missing.discard(sequence)
                self.missed -= 1
            return None
        self._last[publisher] = sequence
        gap = sequence - last - 1 if last is not None else 0
        if gap:
            missing.update(range(max(last + 1, sequence - self.MAX_REMEMBERED), sequence))
            while len(missing) > self.MAX_REMEMBERED:
                missing.discard(min(missing))
        self.missed += gap
        return gap


@dataclass
class StreamCounts:
    """What an ``ImageInput`` counts of its stream (received, lost) -- the interface it is
    given as ``stats``; thread-safe updates."""

    received: int = 0
    lost_in_transport: int = 0  # the subscription's message-lost events (DDS)
    missed_in_sequence: int = 0  # publishers' sequence gaps (lost or overwritten in DDS)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_received(self) -> None:
        with self._lock:
            self.received += 1

    def count_lost(self, *, in_transport: int = 0, in_sequence: int = 0) -> None:
        with self._lock:
            self.lost_in_transport += in_transport
            self.missed_in_sequence += in_sequence


@dataclass
class NodeStats(StreamCounts):
    """Counters since activation plus the latest frame's figures (thread-safe updates)."""

    processed: int = 0
    stale_after_detect: int = 0  # of the stale frames, those replaced after detection
    hands: int = 0
    dropped: Counter = field(default_factory=Counter)  # kind -> frames
    stage_ms: dict[str, float] = field(default_factory=dict)  # last processed frame
    refine_iterations: int = 0
    refine_loss: float = float("nan")
    _window: list[float] = field(default_factory=list, repr=False)  # processing end times

    def drop(self, kind: str, frames: int = 1) -> None:
        with self._lock:
            self.dropped[kind] += frames

    def drop_stale(self, detected: bool) -> None:
        """A frame replaced by a newer one before a stage took it (counted ``stale``; also
        in ``stale_after_detect`` when it was replaced after detection, waiting for the fit:
        which of the two stages is the bottleneck)."""
        with self._lock:
            self.dropped["stale"] += 1
            self.stale_after_detect += detected

    def frame_done(self, stage_ms: dict[str, float], hands, now: float) -> None:
        with self._lock:
            self.processed += 1
            self.hands = len(hands)
            self.stage_ms = dict(stage_ms)
            if hands:
                self.refine_iterations = max(h.refine_iterations for h in hands)
                self.refine_loss = max(h.refine_loss for h in hands)
            self._window = [t for t in self._window if now - t <= 5.0] + [now]

    def frames_per_second(self, now: float) -> float:
        """Processed frames per second over the last 5 s."""
        with self._lock:
            recent = [t for t in self._window if now - t <= 5.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def snapshot(self, now: float) -> dict[str, str | float | int]:
        with self._lock:
            values: dict[str, str | float | int] = {
                "frames_received": self.received,
                "frames_processed": self.processed,
                "frames_lost_in_transport": self.lost_in_transport,
                "frames_missed_in_sequence": self.missed_in_sequence,
                "frames_dropped": sum(self.dropped.values()),
                "frames_stale_after_detect": self.stale_after_detect,
                "hands_last_frame": self.hands,
                "refine_iterations_last": self.refine_iterations,
                "refine_final_loss_last": self.refine_loss,
            }
            values.update({f"dropped_{k}": v for k, v in sorted(self.dropped.items())})
            values.update({f"latency_{k}_ms": round(v, 2) for k, v in self.stage_ms.items()})
        values["frames_per_second"] = round(self.frames_per_second(now), 2)
        return values


# HandDepth.status -> the key of its count on /diagnostics (hands_depth_<key>)
DEPTH_STATUS_KEYS = {
    DEPTH_USED: "used",
    DEPTH_TOO_FEW: "rejected_too_few_valid_pixels",
    DEPTH_DISAGREES: "rejected_disagrees_with_image",
    DEPTH_NONE: "rejected_no_depth",
}


@dataclass
class DepthStats(StreamCounts):
    """The aligned depth stream (received, lost: ``StreamCounts``, for its ``ImageInput``),
    the processed frames with a depth and without one by cause, and how the fits used it: per
    hand its ``HandDepth`` status, valid-pixel fraction and residual (means since
    activation). Thread-safe updates."""

    frames_with: int = 0
    frames_without: Counter = field(default_factory=Counter)  # cause -> frames
    hands: Counter = field(default_factory=Counter)  # DEPTH_STATUS_KEYS value -> hands
    _valid_fraction: list[float] = field(default_factory=lambda: [0.0, 0])  # sum, count
    _residual_mm: list[float] = field(default_factory=lambda: [0.0, 0])  # sum, count

    def frame_done(self, without_cause: str | None, hands) -> None:
        """A processed frame: with a depth (``without_cause`` None) or without it, and the
        ``HandEstimate``s of its result."""
        with self._lock:
            if without_cause is None:
                self.frames_with += 1
            else:
                self.frames_without[without_cause] += 1
            for hand in hands:
                depth = hand.depth
                if depth is None:  # the frame had no depth
                    continue
                key = DEPTH_STATUS_KEYS.get(depth.status, "rejected_other")
                self.hands[key] += 1
                _add(self._valid_fraction, depth.valid_fraction)
                if depth.used:
                    _add(self._residual_mm, depth.residual_mm)

    def without(self) -> dict[str, int]:
        """cause -> processed frames that had no depth for it (a copy)."""
        with self._lock:
            return dict(self.frames_without)

    def snapshot(self, causes: tuple[str, ...]) -> dict[str, float | int | str]:
        """The /diagnostics values; every cause in ``causes`` and every hand status is listed,
        0 when it never happened (the means are "none" before any hand had a depth)."""
        with self._lock:
            values: dict[str, float | int | str] = {
                "depth_received": self.received,
                "depth_lost_in_transport": self.lost_in_transport,
                "depth_missed_in_sequence": self.missed_in_sequence,
                "frames_with_depth": self.frames_with,
            }
            for cause in dict.fromkeys((*causes, *sorted(self.frames_without))):
                values[f"frames_without_depth_{cause}"] = self.frames_without[cause]
            for key in dict.fromkeys((*DEPTH_STATUS_KEYS.values(), *sorted(self.hands))):
                values[f"hands_depth_{key}"] = self.hands[key]
            values["depth_valid_fraction_mean"] = _mean(self._valid_fraction)
            values["depth_residual_mm_mean"] = _mean(self._residual_mm)
        return values


def _add(total: list[float], value: float) -> None:
    if math.isfinite(value):
        total[0] += float(value)
        total[1] += 1


def _mean(total: list[float]) -> float | str:
    return round(total[0] / total[1], 4) if total[1] else "none"
