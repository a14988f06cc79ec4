"""Two processing threads, one frame apart: while frame t is fitted and published, frame t+1
is decoded and its hands detected. No rclpy here (unit-testable).

    frames --put--> [input slot] --first--> [hand-off slot] --second--> published

Both slots hold only the newest item (``runtime.LatestFrameSlot``): a frame that arrives
while the first stage is busy replaces any waiting one, and a detected frame that the second
stage has not taken when the next one is ready is replaced too; each replaced frame is
reported (``on_stale``), none is queued, so a slow second stage never builds a backlog and
always takes the newest detected frame. The first stage processes frames in arrival order and
the second takes them in that order, so outputs keep the input's order. mediapipe and torch
release the GIL, so on two cores the stages overlap (docs/ros.md has the measurements).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Callable

from hand_mesh_ros.ros.runtime import LatestFrameSlot

POLL_S = 0.2  # an idle stage re-checks for shutdown this often
_PR_SET_NAME = 15  # prctl option: the calling thread's name as top -H and /proc show it


def name_native_thread(name: str) -> None:
    """Give the calling thread ``name`` in the OS too (Linux; at most 15 characters shown), so
    per-thread CPU use (``top -H``, /proc/<pid>/task) says which stage it is."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):  # not glibc-like: the name is only cosmetic
        pass


class OverlappedStages:
    """first(item) -> hand-off or None (the item was dropped; first counted why);
    second(hand_off) -> None. on_stale(detected) is called once per replaced item (detected:
    False in the input slot, True in the hand-off slot), on_error(stage, exception) for an
    exception in a stage (the thread goes on with the next item)."""

    def __init__(
        self,
        first: Callable[[object], object | None],
        second: Callable[[object], None],
        *,
        on_stale: Callable[[bool], None],
        on_error: Callable[[str, Exception], None],
        names: tuple[str, str] = ("first", "second"),
    ) -> None:
        self._first, self._second = first, second
        self._on_stale, self._on_error = on_stale, on_error
        self._names = names
        self._input, self._hand_off = LatestFrameSlot(), LatestFrameSlot()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._input.reopen()
        self._hand_off.reopen()
        self._threads = [
            threading.Thread(target=self._run, args=(self._input, self._first, self._hand_off,
                                                     self._names[0]),
                             name=self._names[0], daemon=True),
            threading.Thread(target=self._run, args=(self._hand_off, self._second, None,
                                                     self._names[1]),
                             name=self._names[1], daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def put(self, item) -> None:
        """Hand in the newest frame (never blocks)."""
        self._put(self._input, item, detected=False)

    def stop(self) -> None:
        """End both threads once the items in them and waiting for them are done (at most
        one per stage). Safe to call when not started."""
        for slot, thread in zip((self._input, self._hand_off), self._threads, strict=False):
            slot.close()
            thread.join()
        self._threads = []

    @property
    def running(self) -> bool:
        return bool(self._threads)

    def _put(self, slot: LatestFrameSlot, item, *, detected: bool) -> None:
        before = slot.replaced
        slot.put(item)
        if slot.replaced > before:
            self._on_stale(detected)

    def _run(self, source: LatestFrameSlot, work, target: LatestFrameSlot | None, name: str):
        name_native_thread(name)
        while True:
            item = source.take(timeout=POLL_S)
            if item is None:
                if source.closed:
                    return
                continue
            try:
                result = work(item)
            except Exception as error:  # never let one frame end the stage
                self._on_error(name, error)
                continue
            if target is not None and result is not None:
                self._put(target, result, detected=True)
