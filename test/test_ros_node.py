"""The estimator node over real DDS: a camera-side rclpy node publishes real images and
CameraInfo, the estimator node (started here, in this process) answers on its topics.

Checks: every output topic arrives with the input's stamp and frame_id; the 3D joints project
onto the annotated keypoints; the mesh is a closed, hand-sized surface in front of the camera;
no-hand frames give empty arrays; bad inputs are dropped, counted and survived; a soak of
600 frames shows no memory growth.
"""

import json
import math
import os
import time

import numpy as np
import pytest
from helpers import SHARED_DATA

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
pytest.importorskip("hand_mesh_ros.msg", reason="hand_mesh_ros messages not built")

from rclpy.parameter import Parameter  # noqa: E402
from ros_harness import running_node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from hand_mesh_ros.imageio import read_image  # noqa: E402
from hand_mesh_ros.ros.client import (  # noqa: E402
    EstimatorClient,
    NodeRunner,
    camera_info_msg,
    make_header,
    rgb_image_msg,
)
from hand_mesh_ros.ros.node import HandMeshNode  # noqa: E402

HANDS = SHARED_DATA / "hands"
FRAME_ID = "test_camera_optical_frame"
TIMEOUT_S = 60.0  # a cold start on a loaded 2-core machine takes ~1 s; generous on purpose
UNRELATED_GAP_NS = 5_000_000_000  # > track_timeout_s: unrelated images do not share tracks


def _annotations(dataset: str) -> list[dict]:
    lines = (HANDS / "annotations.jsonl").read_text().splitlines()
    return [a for a in map(json.loads, lines) if a["dataset"] == dataset]


@pytest.fixture(scope="module")
def ros():
    """rclpy on a private DDS domain (localhost only), the node and a camera client spinning."""
    parameters = {"device": "cpu", "warning_throttle_s": 0.0, "diagnostics_period_s": 0.2}
    with running_node(100 + os.getpid() % 100, "cam", parameters) as (node, client):
        yield node, client


_stamp = [1_700_000_000_000_000_000]


def _next_stamp(gap_ns: int = 33_000_000) -> int:
    _stamp[0] += gap_ns
    return _stamp[0]


def _send(client, rgb, K, *, timeout=TIMEOUT_S, retries=3):
    """Publish one frame and wait for all outputs (best-effort QoS: resend on a loss)."""
    for _ in range(retries):
        stamp = _next_stamp(UNRELATED_GAP_NS)  # a new scene: no warm start from the last one
        client.publish_frame(rgb, K, stamp, FRAME_ID)
        try:
            return stamp, client.wait_for(stamp, timeout / retries)
        except TimeoutError:
            continue
    raise TimeoutError("no outputs for three attempts")


def _wait_processed(node, before: int, timeout: float = 30.0) -> None:
    """Wait until the node has finished with one more frame (processed or dropped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = node.stats
        if stats.processed + sum(stats.dropped.values()) > before:
            return
        time.sleep(0.01)
    raise TimeoutError("the node did not process the frame")


def _handled(node) -> int:
    return node.stats.processed + sum(node.stats.dropped.values())


@pytest.mark.skipif(not HANDS.is_dir(), reason="shared hand images not available")
def test_real_images_give_all_topics_with_the_input_header_and_joints_on_the_hand(ros):
    node, client = ros
    errors = []
    for ann in _annotations("RHD"):
        rgb = read_image(HANDS / ann["image"])
        K = np.array(ann["K"])
        stamp, got = _send(client, rgb, K)
        sec, nsec = divmod(stamp, 1_000_000_000)
        for name, msg in got.messages.items():
            header = msg.markers[0].header if name == "mesh" else msg.header
            assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (
                sec,
                nsec,
                FRAME_ID,
            ), name
        joints = got.messages["joints"].hands
        assert len(joints) >= 1
        truth = np.array(ann["kp2d"])[:, :2]
        # the hand nearest the annotation (an image may show two hands)
        best = None
        for hand in joints:
            xyz = np.array(hand.joints_3d, dtype=np.float64).reshape(21, 3)
            assert (xyz[:, 2] > 0.05).all()  # in front of the camera, metres
            uv = xyz[:, :2] / xyz[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
            np.testing.assert_allclose(uv, np.array(hand.joints_2d).reshape(21, 2), atol=0.05)
            err = np.linalg.norm(uv - truth, axis=1).mean()
            best = err if best is None else min(best, err)
        errors.append(best)
        mano = got.messages["mano"].hands
        assert [m.track_id for m in mano] == [j.track_id for j in joints]
        assert all(m.model == "open_hand" and m.side in ("left", "right") for m in mano)
    # RHD hands are ~110 px tall; the pipeline's mean error there is ~5 px (docs/evaluation.md)
    assert np.mean(errors) < 12.0, errors


@pytest.mark.skipif(not HANDS.is_dir(), reason="shared hand images not available")
def test_mesh_is_a_closed_hand_sized_surface_in_front_of_the_camera(ros):
    node, client = ros
    ann = _annotations("RHD")[0]
    _, got = _send(client, read_image(HANDS / ann["image"]), np.array(ann["K"]))
    markers = got.messages["mesh"].markers
    assert markers[0].action == Marker.DELETEALL
    hands = [m for m in markers[1:] if m.action == Marker.ADD]
    indexed = got.messages["mesh_indexed"].hands
    assert len(hands) == len(indexed) >= 1
    for marker, mesh in zip(hands, indexed, strict=True):
        assert marker.type == Marker.TRIANGLE_LIST
        assert marker.header.frame_id == FRAME_ID
        vertices = np.array(mesh.vertices, dtype=np.float64).reshape(-1, 3)
        triangles = np.array(mesh.triangles, dtype=np.int64).reshape(-1, 3)
        points = np.array([(p.x, p.y, p.z) for p in marker.points])
        np.testing.assert_allclose(points, vertices[triangles].reshape(-1, 3), atol=1e-6)
        # closed: every undirected edge is shared by exactly two triangles
        edges = np.sort(triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        _, counts = np.unique(edges, axis=0, return_counts=True)
        assert (counts == 2).all()
        extent = np.linalg.norm(vertices.max(0) - vertices.min(0))
        assert 0.10 < extent < 0.35  # metres: an adult hand's bounding-box diagonal
        assert (vertices[:, 2] > 0.05).all()


def test_a_frame_without_hands_gives_empty_arrays(ros):
    node, client = ros
    yy, xx = np.mgrid[0:240, 0:320]
    rgb = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    K = np.array([[300.0, 0, 159.5], [0, 300.0, 119.5], [0, 0, 1]])
    _, got = _send(client, rgb, K)
    assert got.messages["joints"].hands == []
    assert got.messages["mano"].hands == []
    assert got.messages["mesh_indexed"].hands == []
    markers = got.messages["mesh"].markers
    assert [m.action for m in markers] == [Marker.DELETEALL]


def _image(encoding="rgb8", height=64, width=64, step=None, data=None, stamp=None) -> Image:
    step = 3 * width if step is None else step
    data = bytes(step * height) if data is None else data
    header = make_header(stamp or _next_stamp(), FRAME_ID)
    return Image(header=header, height=height, width=width, encoding=encoding, step=step, data=data)


def test_bad_inputs_are_dropped_counted_and_survived(ros):
    node, client = ros
    bad = {
        "unknown encoding": _image(encoding="bogus8"),
        "zero size": _image(height=0, width=0, step=0, data=b""),
        "step too small": _image(step=10),
        "truncated": _image(data=bytes(100)),
        "huge": _image(height=100_000, width=100_000, step=300_000, data=bytes(16)),
    }
    before = dict(node.stats.dropped)
    for name, msg in bad.items():
        handled = _handled(node)
        for _ in range(3):  # best effort: resend until the node has seen it
            client.publish_image(msg)
            try:
                _wait_processed(node, handled, timeout=5.0)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail(f"the node never handled the {name} frame")
    assert node.stats.dropped["bad_image"] - before.get("bad_image", 0) == len(bad)

    # a CameraInfo with zero focal length: the frame is dropped, not estimated with it
    rgb = np.full((64, 64, 3), 128, np.uint8)
    header = make_header(_next_stamp(), FRAME_ID)
    zero = camera_info_msg(np.zeros((3, 3)), 64, 64, header)
    handled = _handled(node)
    for _ in range(3):
        client.info_pub.publish(zero)
        time.sleep(0.05)
        client.publish_image(rgb_image_msg(rgb, header))
        try:
            _wait_processed(node, handled, timeout=5.0)
            break
        except TimeoutError:
            continue
    assert node.stats.dropped["bad_camera_info"] - before.get("bad_camera_info", 0) == 1

    # ... and the node still answers a good frame, and reports the drops on /diagnostics
    K = np.array([[60.0, 0, 31.5], [0, 60.0, 31.5], [0, 0, 1]])
    _, got = _send(client, rgb, K)
    assert got.messages["joints"].hands == []
    deadline = time.monotonic() + 5.0
    values = {}
    while time.monotonic() < deadline:
        values = client.latest_diagnostics()
        if int(values.get("dropped_bad_image", 0)) >= len(bad) and int(
            values.get("dropped_bad_camera_info", 0)
        ):
            break
        time.sleep(0.1)
    assert int(values["dropped_bad_image"]) >= len(bad)
    assert int(values["dropped_bad_camera_info"]) >= 1
    assert values["device"] == "cpu"
    assert float(values["latency_end_to_end_ms"]) > 0


def _ping_pong(index: int, count: int) -> int:
    """Frame index played forwards then backwards (0..n-1, n-2..1, 0, ...)."""
    k = index % (2 * count - 2)
    return k if k < count else 2 * count - 2 - k


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_soak_of_600_frames_keeps_memory_flat_and_tracks_the_hand(ros):
    from hand_mesh_ros import load_hand_model
    from hand_mesh_ros.handmodel.prior import PosePrior
    from hand_mesh_ros.synthetic.clip import render_clip

    node, client = ros
    model = load_hand_model("right")
    clip = render_clip(
        model, PosePrior.from_model(model), 24, seed=3, image_size=(240, 320), focal=275.0
    )
    K = clip.K.double().numpy()
    received_before, processed_before = node.stats.received, node.stats.processed
    client.max_kept = 30  # the client keeps few outputs: memory measured is the node's
    # Track continuity is by stamp gap (track_timeout_s, 1 s by default): on a slow, loaded
    # machine the gap between two processed frames can pass it, every frame then starts cold,
    # and cold starts keep the rate that low. This test is about memory and identity, not
    # speed: the timeout is lifted for the soak (restored after).
    timeout_before = node.get_parameter("track_timeout_s").value
    (lifted,) = node.set_parameters([Parameter("track_timeout_s", Parameter.Type.DOUBLE, 30.0)])
    assert lifted.successful, lifted.reason
    memory, stamps = [], set()
    sent = 600
    period = 1 / 30.0  # a 30 Hz camera: faster than the CPU pipeline, so frames go stale
    start = time.monotonic()
    try:
        for i in range(sent):
            frame = clip.frames[_ping_pong(i, len(clip.frames))]  # no jump at the clip's end
            stamp = _next_stamp()
            stamps.add(stamp)
            client.publish_frame(frame.image, K, stamp, FRAME_ID)
            if i in (150, 375, sent - 1):
                memory.append(_rss_mb())
            time.sleep(max(0.0, start + (i + 1) * period - time.monotonic()))
        time.sleep(2.0)  # let the last frame finish
    finally:
        node.set_parameters([Parameter("track_timeout_s", value=timeout_before)])
    stats = node.stats
    received = stats.received - received_before
    print(f"soak: RSS MB at frames 150/375/600 {memory}, stats {stats.snapshot(time.monotonic())}")
    assert received >= 0.95 * sent  # best effort over shared memory loses (almost) nothing
    assert stats.processed - processed_before > 10  # frames/s is the CPU's business
    assert memory[-1] - memory[0] < 30.0, memory  # MB between frame 150 and frame 600
    # the same hand keeps its track id across the soak's last processed frames
    ids = []
    for stamp, entry in list(client.received.items())[-30:]:
        joints = entry.messages.get("joints")
        if stamp in stamps and joints is not None and joints.hands:
            ids.append(joints.hands[0].track_id)
    assert len(ids) >= 5 and len(set(ids)) == 1, ids


def test_lifecycle_deactivate_stops_and_activate_resumes(ros):
    node, client = ros
    rgb = np.full((64, 64, 3), 90, np.uint8)
    K = np.array([[60.0, 0, 31.5], [0, 60.0, 31.5], [0, 0, 1]])
    node.trigger_deactivate()
    received = node.stats.received
    for _ in range(5):
        client.publish_frame(rgb, K, _next_stamp(), FRAME_ID)
        time.sleep(0.05)
    assert node.stats.received == received  # unsubscribed
    node.trigger_activate()
    time.sleep(0.3)
    _send(client, rgb, K)
    assert not math.isnan(float(node.stats.snapshot(time.monotonic())["frames_per_second"]))


def test_configure_fails_cleanly_for_a_missing_weights_file_and_the_node_lives_on(ros, tmp_path):
    from lifecycle_msgs.msg import State
    from lifecycle_msgs.srv import GetState

    node, client = ros
    broken = HandMeshNode(
        "hand_mesh_broken",
        parameter_overrides=[
            Parameter("device", value="cpu"),
            Parameter("evidence_weights", value=str(tmp_path / "missing.pt")),
        ],
    )
    try:
        service = client.create_client(GetState, "/hand_mesh_broken/get_state")
        runner = NodeRunner(broken)
        assert service.wait_for_service(timeout_sec=10.0)
        future = service.call_async(GetState.Request())
        deadline = time.monotonic() + 10.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert future.result().current_state.id == State.PRIMARY_STATE_UNCONFIGURED
        runner.stop()
    finally:
        broken.destroy_node()


def test_out_of_range_parameters_are_refused_with_their_name(ros):
    with pytest.raises(Exception, match="max_hands"):
        HandMeshNode("hand_mesh_bad_param", parameter_overrides=[Parameter("max_hands", value=0)])


def test_hand_mesh_node_command_maps_its_options_to_ros_arguments():
    from hand_mesh_ros.ros.main import _ros_arguments

    args = _ros_arguments(
        [
            "hand-mesh-node",
            "--params-file",
            "p.yaml",
            "--image-topic",
            "/c/img",
            "--ros-args",
            "-p",
            "device:=cpu",
        ]
    )
    assert args[0] == "hand-mesh-node"
    assert args[1:4] == ["--ros-args", "-p", "device:=cpu"]  # the user's own come first (win)
    assert args[4:] == [
        "--ros-args",
        "-r",
        "image:=/c/img",
        "-r",
        "camera_info:=/camera/camera_info",
        "--params-file",
        "p.yaml",
    ]


@pytest.mark.skipif(not HANDS.is_dir(), reason="shared hand images not available")
def test_hand_points_lie_on_the_published_mesh_and_inflate_to_the_margin(ros):
    """hand/points over DDS, read back with read_points (sensor_msgs_py where installed): the
    vertices, then sampled points on the surface, then sampled points 1 cm out; the sampling
    settings change live (set_parameters on the running node)."""
    from geometry_reference import surface_distance

    from hand_mesh_ros.ros.point_cloud import read_cloud

    node, client = ros
    listener = EstimatorClient(
        name="hand_points_listener",
        image_topic="/unused/image",
        camera_info_topic="/unused/camera_info",
        outputs=("mesh_indexed", "points"),
    )
    runner = NodeRunner(listener)
    time.sleep(0.5)  # discovery: the node builds hand/points once it has a subscriber
    ann = _annotations("RHD")[2]
    rgb, K = read_image(HANDS / ann["image"]), np.array(ann["K"])
    try:
        for count, inflate in ((0, 0.0), (400, 0.0), (400, 0.01)):
            result = node.set_parameters(
                [
                    Parameter("points_per_hand", value=count),
                    Parameter("points_inflate_m", value=inflate),
                ]
            )
            assert all(r.successful for r in result)
            stamp, _ = _send(client, rgb, K)
            got = listener.wait_for(stamp, TIMEOUT_S, topics=("mesh_indexed", "points"))
            cloud, meshes = got.messages["points"], got.messages["mesh_indexed"].hands
            assert cloud.header.frame_id == FRAME_ID and len(meshes) >= 1
            points = read_cloud(cloud)
            for mesh in meshes:
                mine = points[points["hand"] == mesh.track_id]
                assert (mine["side"] == (1 if mesh.side == "left" else 0)).all()
                xyz = np.stack([mine["x"], mine["y"], mine["z"]], -1).astype(np.float64)
                vertices = np.array(mesh.vertices, dtype=np.float64).reshape(-1, 3)
                faces = np.array(mesh.triangles, dtype=np.int64).reshape(-1, 3)
                if count == 0:
                    np.testing.assert_allclose(xyz, vertices, atol=1e-7)
                    continue
                assert len(xyz) == count
                distance = surface_distance(xyz, vertices, faces)
                if inflate == 0.0:
                    assert distance.max() < 1e-6  # on the surface (float32 coordinates)
                else:  # out along the normal: never farther than the margin, mostly at it
                    assert distance.max() < inflate + 1e-6
                    assert abs(np.median(distance) - inflate) < 1e-4
    finally:
        runner.stop()
        listener.destroy_node()


@pytest.mark.skipif(not HANDS.is_dir(), reason="shared hand images not available")
def test_detector_settings_changed_while_frames_flow_rebuild_mediapipe_between_frames(ros):
    """max_hands rebuilds the mediapipe detector; the detect stage applies it between its
    frames (the fit stage never sees a half-built detector); landmark following on and off."""
    node, client = ros
    ann = _annotations("RHD")[0]
    rgb, K = read_image(HANDS / ann["image"]), np.array(ann["K"])
    errors = node.stats.dropped["estimator_error"]
    first_detector = node._estimator.detector
    try:
        for max_hands, search in ((1, 3), (2, 1)):
            results = node.set_parameters([Parameter("max_hands", value=max_hands),
                                           Parameter("palm_search_frames", value=search)])
            assert all(r.successful for r in results), [r.reason for r in results]
            _send(client, rgb, K)  # a new scene (searched), then a tracked stream of it
            for _ in range(4):
                stamp = _next_stamp()
                client.publish_frame(rgb, K, stamp, FRAME_ID)
                got = client.wait_for(stamp, TIMEOUT_S / 3)
                assert len(got.messages["joints"].hands) == 1
            assert node._estimator.config.max_hands == max_hands
            assert node.tracker_config.palm_search_frames == search
    finally:
        node.set_parameters([Parameter("max_hands", value=2),
                             Parameter("palm_search_frames", value=1)])
    assert node._estimator.detector is not first_detector  # rebuilt
    assert node.stats.dropped["estimator_error"] == errors


def test_live_parameters_change_while_running_and_the_others_are_refused(ros):
    node, _ = ros
    before = node.config.warm_iterations
    (ok,) = node.set_parameters([Parameter("warm_iterations", value=before + 1)])
    assert ok.successful
    (refused,) = node.set_parameters([Parameter("device", value="cuda")])
    assert not refused.successful and "read at configure" in refused.reason
    (out_of_range,) = node.set_parameters([Parameter("temporal_weight", value=-1.0)])
    assert not out_of_range.successful
    node._apply_pending_configs()  # what the detect stage does before its next frame
    assert node.config.warm_iterations == before + 1
    assert node._estimator.config.warm_iterations == before + 1
    node.set_parameters([Parameter("warm_iterations", value=before)])
    node._apply_pending_configs()
