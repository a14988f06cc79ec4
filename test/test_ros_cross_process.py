"""A camera in another process (as every robot's driver is) streaming full-size images at
30 Hz to the node over real DDS: every frame from a reliable camera reaches the node, and
what a best-effort one loses is counted, on the node's stats and on /diagnostics."""

import json
import os
import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
pytest.importorskip("hand_mesh_ros.msg", reason="hand_mesh_ros messages not built")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from hand_mesh_ros.ros.node import HandMeshNode  # noqa: E402

FRAMES, RATE_HZ, SIZE = 90, 30.0, "640x480"
SETTLE_S = 3.0


@pytest.fixture(scope="module")
def domain():
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    domain_id = 150 + os.getpid() % 50
    rclpy.init(domain_id=domain_id)
    yield domain_id
    rclpy.shutdown()


def _stream(domain_id: int, camera_reliability: str, image_qos: str = "auto", *,
            transport: str = "raw", frames: int = FRAMES, after=()):
    """Run the node here and the camera process; returns (camera summary, stats, diagnostics).
    ``after``: messages published from this process once the camera ended, 0.5 s apart (so
    the node handles each before the next: none replaces another in the newest-frame slot)."""
    node = HandMeshNode(
        "hand_mesh_cross_process",
        parameter_overrides=[
            Parameter("device", value="cpu"),
            Parameter("image_qos", value=image_qos),
            Parameter("image_transport", value=transport),
            Parameter("diagnostics_period_s", value=0.2),
            Parameter("warning_throttle_s", value=0.0),
        ],
        cli_args=["--ros-args", "-r", "image:=/xp/image_raw", "-r", "camera_info:=/xp/info"],
    )
    diagnostics = []
    listener = rclpy.create_node("xp_diagnostics")
    listener.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(listener)
    camera = subprocess.Popen(
        [sys.executable, "-m", "hand_mesh_ros.ros.camera_stream", "--frames", str(frames),
         "--rate", str(RATE_HZ), "--size", SIZE, "--reliability", camera_reliability,
         "--transport", transport,
         "--image-topic", "/xp/image_raw", "--camera-info-topic", "/xp/info",
         # a reliable camera waits (up to 20 s) until the node listens reliably, unless the
         # node is told to listen best effort
         "--wait-subscribers", "0" if image_qos == "sensor_data" else "20"],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, ROS_DOMAIN_ID=str(domain_id)),
    )
    try:
        publisher = None
        if after:
            topic = "/xp/image_raw/compressed" if transport == "compressed" else "/xp/image_raw"
            publisher = listener.create_publisher(type(after[0]), topic, 5)
        deadline, pending = None, list(after)
        while deadline is None or time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if deadline is None and camera.poll() is not None:
                deadline = time.monotonic() + SETTLE_S + 0.5 * len(pending)
                next_send = time.monotonic() + 0.5
            if pending and deadline is not None and time.monotonic() > next_send:
                publisher.publish(pending.pop())
                next_send = time.monotonic() + 0.5
        summary = json.loads(camera.stdout.read().strip().splitlines()[-1])
        stats = node.stats.snapshot(time.monotonic())
    finally:
        camera.kill()
        node._stop_input()
        executor.shutdown()
        node.destroy_node()
        listener.destroy_node()
    values, reliabilities = {}, set()
    for array in diagnostics:
        for status in array.status:
            if status.name.startswith("hand_mesh_ros"):
                values = {kv.key: kv.value for kv in status.values}
                if int(values.get("frames_received", 0)):  # while the camera streamed
                    reliabilities.add(values.get("image_reliability"))
    values["reliabilities_seen"] = reliabilities
    return summary, stats, values


def test_a_reliable_camera_in_another_process_delivers_every_frame(domain):
    summary, stats, diagnostics = _stream(domain, "reliable")
    assert summary["sent"] == FRAMES and summary["size"] == SIZE
    assert stats["frames_received"] >= 0.95 * FRAMES, (stats, summary)
    assert summary["all_acknowledged"]  # the camera waited for the node to take every frame
    # frames the node did not process were stale (it is slower than 30 Hz), not lost
    assert stats["frames_processed"] + stats.get("dropped_stale", 0) == stats["frames_received"]
    assert stats["frames_processed"] >= 1  # how many: the CPU's business (stale otherwise)
    assert stats["frames_lost_in_transport"] == 0 and stats["frames_missed_in_sequence"] == 0
    assert diagnostics["reliabilities_seen"] >= {"reliable"}
    assert int(diagnostics["frames_received"]) == stats["frames_received"]


def test_what_a_best_effort_camera_loses_is_counted(domain):
    summary, stats, diagnostics = _stream(domain, "best_effort")
    assert diagnostics["reliabilities_seen"] == {"best_effort"}
    _assert_losses_counted(stats, diagnostics)


def _assert_losses_counted(stats, diagnostics):
    """What a best-effort stream loses is counted: never more than was sent, something
    whenever frames are missing, the same on /diagnostics. The counts are a lower bound: a
    frame lost before the first or after the last one that arrives has no gap to show it."""
    received, missed = stats["frames_received"], stats["frames_missed_in_sequence"]
    assert received + missed <= FRAMES, stats  # nothing counted twice
    if received < 0.9 * FRAMES:
        assert missed > 0 and stats["frames_lost_in_transport"] > 0, stats
    assert int(diagnostics["frames_missed_in_sequence"]) == missed
    assert int(diagnostics["frames_lost_in_transport"]) == stats["frames_lost_in_transport"]


def test_sensor_data_qos_downgrades_a_reliable_camera_and_the_loss_is_counted(domain):
    """The old default (a best-effort subscription) on a reliable camera: the node hears it
    best effort; whatever is lost shows up in the counters."""
    _, stats, diagnostics = _stream(domain, "reliable", image_qos="sensor_data")
    assert diagnostics["reliabilities_seen"] == {"best_effort"}
    _assert_losses_counted(stats, diagnostics)


def test_compressed_images_from_another_process_are_decoded_and_corrupt_ones_counted(domain):
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Header

    corrupt = []
    for data, fmt in ((b"\xff\xd8 not really a jpeg", "jpeg"), (b"GIF89a", "gif"), (b"", "png")):
        msg = CompressedImage(header=Header(frame_id="camera_optical_frame"), format=fmt)
        msg.data = data
        corrupt.append(msg)
    summary, stats, diagnostics = _stream(
        domain, "reliable", transport="compressed", frames=60, after=corrupt
    )
    assert summary["transport"] == "compressed"
    assert diagnostics["image_topic"] == "/xp/image_raw/compressed"
    assert stats["frames_received"] >= 0.95 * 60 + 3, (stats, summary)
    assert stats["frames_processed"] >= 1 and stats["hands_last_frame"] == 1, stats
    assert stats["dropped_bad_image"] == 3, stats  # corrupt data: dropped, counted, survived
