"""The node's aligned depth (``depth_topic``): depth messages -> metres, the stamp match, the
counters of /diagnostics, and the node over real DDS -- an RGB-D camera in another process
(``camera_stream --depth-topic``) and bad depth streams published beside the images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
pytest.importorskip("hand_mesh_ros.msg", reason="hand_mesh_ros messages not built")

from ros_harness import running_node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from hand_mesh_ros.depthio import DepthError  # noqa: E402
from hand_mesh_ros.imageio import ImageError  # noqa: E402
from hand_mesh_ros.pipeline.types import (  # noqa: E402
    DEPTH_DISAGREES,
    DEPTH_TOO_FEW,
    DEPTH_USED,
    HandDepth,
)
from hand_mesh_ros.ros.depth_input import (  # noqa: E402
    CAUSES,
    DEPTH_STREAM_TIMEOUT_S,
    DEPTH_WAIT_S,
    depth_wait_s,
)
from hand_mesh_ros.ros.image_bridge import (  # noqa: E402
    DepthEncodingError,
    depth_msg_to_metres,
    metres_to_depth_msg,
)
from hand_mesh_ros.ros.runtime import DepthStats, StampedCache  # noqa: E402

MS = 1_000_000  # ns


# ----- depth messages -> metres -------------------------------------------------------------
def _raw_depth(values: np.ndarray, encoding: str, *, pad: int = 0, big_endian=False) -> Image:
    """A depth message with ``pad`` bytes at the end of each row."""
    h, w = values.shape
    rows = values.astype(values.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
    row_bytes = w * values.itemsize
    data = b"".join(rows[r * row_bytes:(r + 1) * row_bytes] + b"\xab" * pad for r in range(h))
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(big_endian))
    msg.step, msg.data = row_bytes + pad, data
    return msg


def test_16uc1_millimetres_become_metres_with_0_for_no_data():
    mm = np.array([[0, 1, 500], [1234, 65535, 0]], dtype=np.uint16)
    for big_endian in (False, True):
        depth = depth_msg_to_metres(
            _raw_depth(mm, "16UC1", pad=4, big_endian=big_endian), min_side=1
        )
        assert depth.dtype == np.float32 and depth.shape == (2, 3)
        np.testing.assert_allclose(depth, mm / 1000.0, rtol=1e-6)
        assert depth[0, 0] == 0 and depth[1, 2] == 0


def test_32fc1_metres_with_nan_inf_and_0_as_no_data():
    m = np.array([[0.45, np.nan, np.inf], [0.0, 1.25, -np.inf]], dtype=np.float32)
    depth = depth_msg_to_metres(_raw_depth(m, "32FC1", pad=8), min_side=1)
    np.testing.assert_array_equal(depth, np.array([[0.45, 0, 0], [0, 1.25, 0]], np.float32))


def test_depth_messages_round_trip_as_a_camera_publishes_them():
    rng = np.random.default_rng(0)
    metres = rng.uniform(0.3, 2.0, size=(48, 64))
    metres[rng.random(metres.shape) < 0.1] = 0.0  # holes
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    mm = metres_to_depth_msg(metres, header)
    assert (mm.encoding, mm.step, mm.header.frame_id) == ("16UC1", 128, header.frame_id)
    assert (mm.header.stamp.sec, mm.header.stamp.nanosec) == (12, 345)
    back = depth_msg_to_metres(mm)
    assert np.abs(back - metres).max() <= 0.0005 + 1e-6  # rounded to millimetres
    assert ((back == 0) == (metres == 0)).all()
    exact = depth_msg_to_metres(metres_to_depth_msg(metres, header, "32FC1"))
    np.testing.assert_allclose(exact, metres, rtol=1e-6)


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "8UC1", "bgr8", "16SC1", ""])
def test_other_encodings_are_refused_as_not_a_depth(encoding):
    msg = _raw_depth(np.zeros((4, 4), np.uint16), "16UC1")
    msg.encoding = encoding
    with pytest.raises(DepthEncodingError, match=f"{encoding!r} is not a depth"):
        depth_msg_to_metres(msg, min_side=1)


def test_malformed_depth_messages_are_refused_with_the_reason():
    short = _raw_depth(np.ones((4, 4), np.uint16), "16UC1")
    short.data = bytes(short.data)[:20]
    with pytest.raises(ImageError, match="truncated: 20 bytes, expected 32"):
        depth_msg_to_metres(short, min_side=1)
    narrow = _raw_depth(np.ones((4, 4), np.float32), "32FC1")
    narrow.step = 12
    with pytest.raises(ImageError, match="step 12 < width"):
        depth_msg_to_metres(narrow, min_side=1)
    with pytest.raises(ImageError, match="zero-size"):
        depth_msg_to_metres(Image(encoding="16UC1"))
    negative = _raw_depth(np.full((4, 4), -0.5, np.float32), "32FC1")
    with pytest.raises(DepthError, match="negative depth"):
        depth_msg_to_metres(negative, min_side=1)


# ----- matching by stamp --------------------------------------------------------------------
def test_nearest_stamp_within_the_tolerance_before_or_after_the_image():
    cache = StampedCache(5)
    for stamp in (100 * MS, 133 * MS, 166 * MS):
        cache.put(stamp, f"depth {stamp // MS}")
    assert cache.nearest(140 * MS, within=17 * MS) == (133 * MS, "depth 133")  # before
    assert cache.nearest(160 * MS, within=17 * MS) == (166 * MS, "depth 166")  # after
    assert cache.nearest(300 * MS, within=17 * MS)[0] == 166 * MS  # the caller sees: too far
    assert StampedCache(5).nearest(1, within=0) is None


def test_a_frame_waits_for_a_depth_arriving_after_it_but_not_for_one_that_cannot_come():
    cache = StampedCache(5)
    cache.put(100 * MS, "old")
    later = threading.Timer(0.05, cache.put, args=(200 * MS, "late"))
    later.start()
    start = time.monotonic()
    assert cache.nearest(200 * MS, within=10 * MS, wait_s=2.0) == (200 * MS, "late")
    assert time.monotonic() - start < 1.0  # woke when it arrived
    # a depth later than the window is already in: no match can follow, no waiting
    start = time.monotonic()
    assert cache.nearest(150 * MS, within=10 * MS, wait_s=2.0)[0] in (100 * MS, 200 * MS)
    assert time.monotonic() - start < 0.5
    # only older depths: waits the whole wait_s, then returns the nearest (too far)
    start = time.monotonic()
    assert cache.nearest(400 * MS, within=10 * MS, wait_s=0.2) == (200 * MS, "late")
    assert time.monotonic() - start >= 0.19


def test_frames_wait_for_their_depth_only_while_the_depth_stream_is_live():
    late = DEPTH_STREAM_TIMEOUT_S + 0.1
    assert depth_wait_s(None, 10.0, 10.2) == DEPTH_WAIT_S  # the first frames: it may come
    assert depth_wait_s(None, 10.0, 10.0 + late) == 0.0  # never any depth: frames go on at once
    assert depth_wait_s(20.0, 10.0, 20.5) == DEPTH_WAIT_S  # the depth stream is live
    assert depth_wait_s(20.0, 10.0, 20.0 + late) == 0.0  # it stopped


# ----- the counters of /diagnostics ---------------------------------------------------------
class _Hand:
    def __init__(self, depth):
        self.depth = depth


def test_depth_stats_count_frames_by_cause_and_hands_by_status_with_means():
    stats = DepthStats()
    assert stats.snapshot(CAUSES)["depth_valid_fraction_mean"] == "none"
    stats.frame_done(None, [_Hand(HandDepth(True, DEPTH_USED, 0.8, 4.0, 1.05)),
                            _Hand(HandDepth(False, DEPTH_DISAGREES, 0.4))])
    stats.frame_done(None, [_Hand(HandDepth(True, DEPTH_USED, 0.6, 2.0, 0.97))])
    stats.frame_done(None, [_Hand(HandDepth(False, DEPTH_TOO_FEW, 0.02))])
    stats.frame_done("no_match", [_Hand(None)])
    stats.frame_done("size_mismatch", [])
    stats.frame_done("no_match", [])
    stats.count_received()
    stats.count_lost(in_transport=2, in_sequence=3)
    values = stats.snapshot(CAUSES)
    assert values == {
        "depth_received": 1,
        "depth_lost_in_transport": 2,
        "depth_missed_in_sequence": 3,
        "frames_with_depth": 3,
        "frames_without_depth_no_match": 2,
        "frames_without_depth_bad_encoding": 0,
        "frames_without_depth_bad_data": 0,
        "frames_without_depth_size_mismatch": 1,
        "hands_depth_used": 2,
        "hands_depth_rejected_too_few_valid_pixels": 1,
        "hands_depth_rejected_disagrees_with_image": 1,
        "hands_depth_rejected_no_depth": 0,
        "depth_valid_fraction_mean": pytest.approx((0.8 + 0.4 + 0.6 + 0.02) / 4, abs=1e-4),
        "depth_residual_mm_mean": 3.0,  # over the hands whose depth was used
    }
    assert stats.without() == {"no_match": 2, "size_mismatch": 1}


# ----- the node over real DDS ---------------------------------------------------------------
FRAME_ID = "camera_color_optical_frame"
TIMEOUT_S = 60.0  # a cold start on a loaded 2-core machine; generous on purpose
NODE_PARAMETERS = {"device": "cpu", "warning_throttle_s": 0.0, "diagnostics_period_s": 0.2}


def _domain() -> int:
    return 50 + os.getpid() % 50


def _diagnostics_after(client, processed: int, timeout: float = 10.0) -> dict[str, str]:
    """The newest /diagnostics values once they count ``processed`` frames."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        values = client.latest_diagnostics()
        if int(values.get("frames_processed", -1)) >= processed:
            time.sleep(0.5)  # one more period: the counters of that last frame are in
            return client.latest_diagnostics()
        time.sleep(0.05)
    raise TimeoutError(f"/diagnostics never counted {processed} frames: {values}")


def _wait_reliable(client, timeout: float = 20.0) -> None:
    """Until /diagnostics say that the image and the depth are subscribed reliable."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        values = client.latest_diagnostics()
        if values.get("image_reliability") == values.get("depth_reliability") == "reliable":
            return
        time.sleep(0.05)
    raise TimeoutError(f"not subscribed reliable: {client.latest_diagnostics()}")


def _seen(client, key: str) -> set[str]:
    """Every value of ``key`` on the estimator's /diagnostics so far."""
    with client._lock:
        arrays = list(client.diagnostics)
    return {
        kv.value for a in arrays for s in a.status if s.name.startswith("hand_mesh_ros")
        for kv in s.values if kv.key == key
    }


@pytest.fixture(scope="module")
def clip():
    """Three frames of the embedded clip with their aligned noisy depth, 640x480."""
    from hand_mesh_ros import load_hand_model
    from hand_mesh_ros.handmodel.prior import PosePrior
    from hand_mesh_ros.synthetic.clip import render_clip
    from hand_mesh_ros.synthetic.depth_camera import DepthNoiseModel

    model = load_hand_model("right")
    return render_clip(
        model, PosePrior.from_model(model), 3, seed=0, depth_noise=DepthNoiseModel()
    )


def _wrist_error_mm(hand, frame) -> float:
    wrist = np.asarray(hand.joints_3d, dtype=np.float64).reshape(21, 3)[0]
    return 1000 * float(np.linalg.norm(wrist - frame.keypoints_3d[0]))


def test_an_rgbd_camera_in_another_process_gives_hands_placed_with_its_depth(clip):
    """camera_stream publishes the clip's first frame and its 16UC1 depth, reliable, at 10 Hz;
    every frame the node processes has its depth, the hands say so and are metric."""
    frames = 30
    parameters = {**NODE_PARAMETERS, "depth_topic": "/xd/depth"}
    with running_node(_domain(), "xd", parameters, client_publishes=False) as (node, client):
        camera = subprocess.run(
            [sys.executable, "-m", "hand_mesh_ros.ros.camera_stream", "--frames", str(frames),
             "--rate", "10", "--clip-frames", "1", "--image-topic", "/xd/image_raw",
             "--camera-info-topic", "/xd/info", "--depth-topic", "/xd/depth",
             "--wait-subscribers", "20"],
            capture_output=True, text=True, timeout=120,
            env=dict(os.environ, ROS_DOMAIN_ID=str(_domain())),
        )
        assert camera.returncode == 0, camera.stderr[-2000:]
        summary = json.loads(camera.stdout.strip().splitlines()[-1])
        assert summary["all_acknowledged"] and summary["subscribers"] == 1
        assert (summary["depth_topic"], summary["depth_encoding"]) == ("/xd/depth", "16UC1")
        time.sleep(1.0)  # the last frame's processing
        processed = node.stats.processed
        diagnostics = _diagnostics_after(client, processed)
        joints = client.messages_of("joints")
    assert processed >= 3, node.stats.snapshot(time.monotonic())
    assert diagnostics["depth_topic"] == "/xd/depth"
    # image_qos auto: as the camera's (while it streamed; "none" or best effort after it left)
    assert "reliable" in _seen(client, "depth_reliability")
    assert "reliable" in _seen(client, "image_reliability")
    # reliable once matched (the first frames may go while the subscription turns reliable)
    received = int(diagnostics["depth_received"])
    assert frames - 5 <= received <= frames, diagnostics
    # every processed frame had its depth, but for those whose depth never arrived -- or, on a
    # loaded 2-core machine, arrived more than DEPTH_WAIT_S after its image (seen once in a
    # suite run: one frame RGB only, counted, all depths received)
    no_match = int(diagnostics["frames_without_depth_no_match"])
    assert int(diagnostics["frames_with_depth"]) + no_match == processed, diagnostics
    assert no_match <= frames - received + max(1, processed // 10), diagnostics
    assert all(int(diagnostics[f"frames_without_depth_{c}"]) == 0 for c in CAUSES[1:])
    hands = [(stamp, hand) for stamp, msg in joints for hand in msg.hands]
    assert len(joints) == processed and len(hands) >= processed - 1, diagnostics
    used = sum(hand.depth_used for _, hand in hands)
    assert used >= 0.8 * len(hands) - no_match, [h.depth_used for _, h in hands]
    # the stream repeats the clip's first frame (the same seed and size as ``clip``)
    errors = [_wrist_error_mm(hand, clip.frames[0]) for _, hand in hands if hand.depth_used]
    assert np.median(errors) < 15.0, errors  # metric: placed by the depth (RGB only: ~45 mm)
    assert int(diagnostics["hands_depth_used"]) == used, diagnostics  # messages and /diagnostics
    assert 0.5 < float(diagnostics["depth_valid_fraction_mean"]) <= 1.0
    assert 0.0 < float(diagnostics["depth_residual_mm_mean"]) < 15.0


class _RgbdCamera:
    """A camera-side node publishing image, CameraInfo and depth, reliable (as RGB-D drivers
    do), on /dd/...; ``send`` publishes one frame, the depth first."""

    def __init__(self):
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo

        self.node = Node("rgbd_camera")
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.image = self.node.create_publisher(Image, "/dd/image_raw", qos)
        self.info = self.node.create_publisher(CameraInfo, "/dd/info", qos)
        self.depth = self.node.create_publisher(Image, "/dd/depth", qos)

    def send(self, frame, K, stamp_ns: int, depth: Image | None) -> None:
        from hand_mesh_ros.ros.client import camera_info_msg, make_header, rgb_image_msg

        header = make_header(stamp_ns, FRAME_ID)
        h, w = frame.image.shape[:2]
        self.info.publish(camera_info_msg(K, w, h, header))
        if depth is not None:
            self.depth.publish(depth)
        self.image.publish(rgb_image_msg(frame.image, header))


def test_bad_depth_is_counted_by_cause_and_the_frame_is_processed_rgb_only(clip):
    """Good 16UC1 and 32FC1 depths are used; a colour image on the depth topic, a depth of
    another size, a depth 50 ms off and no depth at all each give an RGB-only frame, counted
    by its cause; an all-zero depth and one not aligned to the image reach the fit, which
    rejects them for the hand (counted by status); the node goes on (a good depth after them
    is used again)."""
    K = clip.K.double().numpy()
    cameras = []

    def camera():
        cameras.append(_RgbdCamera())
        return cameras[0].node

    first, period = 1_900_000_000_000_000_000, 100_000_000
    cases = ("16UC1", "32FC1", "colour", "320x240", "50 ms off", "none", "zeros", "shifted",
             "16UC1")
    plan = []  # (clip frame, stamp, depth message or None, depth_used expected)
    for index, case in enumerate(cases):
        frame, stamp = clip.frames[index % 3], first + index * period
        plan.append((frame, stamp, _depth_msg(case, frame, stamp), case in ("16UC1", "32FC1")))
    parameters = {**NODE_PARAMETERS, "depth_topic": "/dd/depth"}
    with running_node(
        _domain(), "dd", parameters, extra_nodes=(camera,), client_publishes=False
    ) as (node, client, _):
        _wait_reliable(client)  # image_qos auto: subscribed reliable, as the camera publishes
        for frame, stamp, depth, _ in plan:
            cameras[0].send(frame, K, stamp, depth)
            client.wait_for(stamp, TIMEOUT_S)
        diagnostics = _diagnostics_after(client, len(plan))
        joints = dict(client.messages_of("joints"))
    for _, stamp, _, expect_used in plan:
        (hand,) = joints[stamp].hands  # every frame answered, with its hand
        assert hand.depth_used is expect_used, ((stamp - first) // period, diagnostics)
    assert int(diagnostics["frames_processed"]) == len(plan), diagnostics
    # with a depth: 16UC1, 32FC1, zeros, shifted, 16UC1
    assert int(diagnostics["frames_with_depth"]) == 5, diagnostics
    assert int(diagnostics["frames_without_depth_bad_encoding"]) == 1
    assert int(diagnostics["frames_without_depth_size_mismatch"]) == 1
    assert int(diagnostics["frames_without_depth_no_match"]) == 2
    assert int(diagnostics["frames_without_depth_bad_data"]) == 0
    assert int(diagnostics["depth_received"]) == 8
    assert int(diagnostics["hands_depth_used"]) == 3
    assert int(diagnostics["hands_depth_rejected_too_few_valid_pixels"]) == 1  # zeros
    assert int(diagnostics["hands_depth_rejected_disagrees_with_image"]) == 1  # shifted
    assert int(diagnostics["frames_dropped"]) == 0  # RGB only, not dropped
    assert "reliable" in _seen(client, "depth_reliability")
    # the level says what is wrong (a misconfigured depth topic), and how often
    status = next(
        s for a in reversed(client.diagnostics) for s in a.status if s.name.startswith("hand")
    )
    assert status.level == b"\x01"  # WARN
    assert status.message == (
        "frames processed without depth: 1 bad_encoding, 1 size_mismatch"
    )
    for frame, stamp, _, expect_used in plan:
        if expect_used:  # metric with the depth
            assert _wrist_error_mm(joints[stamp].hands[0], frame) < 15.0


def _depth_msg(case: str, frame, stamp: int) -> Image | None:
    """The depth message of a test case for a clip frame with this stamp."""
    import cv2

    from hand_mesh_ros.ros.client import make_header, rgb_image_msg

    header = make_header(stamp, FRAME_ID)
    if case in ("16UC1", "32FC1"):
        return metres_to_depth_msg(frame.depth, header, case)
    if case == "colour":  # the colour image on the depth topic (a wrong topic name): bad_encoding
        return rgb_image_msg(frame.image, header)
    if case == "320x240":  # size_mismatch
        small = cv2.resize(frame.depth, (320, 240), interpolation=cv2.INTER_NEAREST)
        return metres_to_depth_msg(small, header)
    if case == "zeros":  # all "no data": the hand's depth is rejected (too few valid pixels)
        return metres_to_depth_msg(np.zeros_like(frame.depth), header)
    if case == "shifted":  # not aligned: the wall where the image has the hand (disagrees)
        return metres_to_depth_msg(np.roll(frame.depth, 200, axis=1), header)
    if case == "50 ms off":  # no_match: the tolerance is 16.7 ms
        return metres_to_depth_msg(frame.depth, make_header(stamp + 50_000_000, FRAME_ID))
    assert case == "none"  # no_match: no depth at all
    return None
