"""The node's two overlapped processing stages (``ros/stages.py``, no DDS needed): they run at
the same time, outputs keep the input order, only the newest frame waits at each slot (the
replaced ones are reported), a failing item does not stop a stage, stop() ends both threads."""

import threading
import time

from hand_mesh_ros.ros.stages import OverlappedStages


class Recorder:
    def __init__(self, first_s: float = 0.0, second_s: float = 0.0) -> None:
        self.first_s, self.second_s = first_s, second_s
        self.first_seen, self.second_seen, self.errors = [], [], []
        self.stale = 0
        self.stale_detected = 0
        self.busy = {"first": threading.Event(), "second": threading.Event()}
        self.overlapped = False
        self.lock = threading.Lock()

    def first(self, item):
        self.busy["first"].set()
        self.overlapped |= self.busy["second"].is_set()
        time.sleep(self.first_s)
        self.busy["first"].clear()
        if item == "drop":
            return None
        if item == "boom":
            raise RuntimeError("bad frame")
        self.first_seen.append(item)
        return item

    def second(self, item):
        self.busy["second"].set()
        self.overlapped |= self.busy["first"].is_set()
        time.sleep(self.second_s)
        self.busy["second"].clear()
        self.second_seen.append(item)

    def count_stale(self, detected):
        with self.lock:
            self.stale += 1
            self.stale_detected += detected

    def stages(self) -> OverlappedStages:
        return OverlappedStages(
            self.first, self.second, on_stale=self.count_stale,
            on_error=lambda stage, error: self.errors.append((stage, str(error))),
        )


def _settle(recorder, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(recorder.second_seen) + recorder.stale < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_every_frame_passes_in_order_when_the_stages_keep_up():
    recorder = Recorder()
    stages = recorder.stages()
    stages.start()
    for i in range(50):  # each frame once the stages are done with the last: they keep up
        stages.put(i)
        _settle(recorder, i + 1)
    stages.stop()
    assert recorder.second_seen == list(range(50)) and recorder.stale == 0


def test_a_slow_second_stage_gets_the_newest_frames_in_order_and_the_rest_are_counted():
    recorder = Recorder(first_s=0.005, second_s=0.05)
    stages = recorder.stages()
    stages.start()
    sent = 60
    for i in range(sent):
        stages.put(i)
        time.sleep(0.01)  # 100 Hz in, ~20 Hz out
    time.sleep(0.2)
    stages.stop()
    seen = recorder.second_seen
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # in order, no repeats
    assert 5 < len(seen) < sent / 2
    assert seen[-1] >= sent - 2  # the newest frame was taken last, not an old one
    assert len(seen) + recorder.stale == sent  # every frame processed or counted stale
    assert recorder.stale_detected > 0  # the slow second stage: detected frames replaced
    assert recorder.overlapped  # the first stage worked while the second did


def test_dropped_and_failing_frames_do_not_stop_the_stages():
    recorder = Recorder()
    stages = recorder.stages()
    stages.start()
    for item in (1, "drop", 2, "boom", 3):
        stages.put(item)
        time.sleep(0.05)
    _settle(recorder, 3)
    stages.stop()
    assert recorder.second_seen == [1, 2, 3]
    assert recorder.errors == [("first", "bad frame")]


def test_stop_ends_both_threads_and_start_runs_again():
    recorder = Recorder(second_s=0.02)
    stages = recorder.stages()
    stages.start()
    stages.put(1)
    time.sleep(0.05)
    before = threading.active_count()
    stages.stop()
    assert not stages.running and threading.active_count() == before - 2
    stages.stop()  # again: nothing to do
    stages.start()
    stages.put(2)
    _settle(recorder, 2)
    stages.stop()
    assert recorder.second_seen == [1, 2]
