"""Hands on /tf: ``conversions.hand_transforms`` against the hand models (both sides, synthetic
and real estimates), and the node over real DDS publishing tf2_msgs/TFMessage on /tf with the
image's stamp, switched off and renamed live.

The frame's contract (docs/ros.md "Hands on /tf"): origin at the wrist keypoint, rotation R of
``global_orient``, so a canonical-frame point p (zero-orient model, relative to its wrist) is at
R p + wrist in the camera frame; a second frame ``..._palm`` at the palm centre.
"""

import json
import os
import sys
import threading
import time
import types

import numpy as np
import pytest
import torch
from helpers import SHARED_DATA

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
pytest.importorskip("hand_mesh_ros.msg", reason="hand_mesh_ros messages not built")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs not built (tools/ros_pip/build_interfaces.sh)")

from geometry_msgs.msg import TransformStamped  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_harness import running_node  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from hand_mesh_ros import load_hand_model  # noqa: E402
from hand_mesh_ros.imageio import read_image  # noqa: E402
from hand_mesh_ros.pipeline import CameraIntrinsics, EstimatorConfig, HandMeshEstimator  # noqa: E402
from hand_mesh_ros.pipeline.types import FrameResult, HandEstimate  # noqa: E402
from hand_mesh_ros.ros.client import make_header  # noqa: E402
from hand_mesh_ros.ros.config import NodeConfig  # noqa: E402
from hand_mesh_ros.ros.conversions import hand_transforms  # noqa: E402
from hand_mesh_ros.ros.tf_publisher import TF_QOS, TfPublisher  # noqa: E402

HANDS = SHARED_DATA / "hands"
FRAME_ID = "tf_test_camera_optical_frame"
PALM = (0, 5, 9, 13, 17)
TIMEOUT_S = 60.0
# ROS 2's tf2_msgs/msg/TFMessage type hash (`ros2 topic info -v /tf` on Jazzy/Kilted)
ROS_TFMESSAGE_HASH = "e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"
# what tf2_ros's TransformListener subscribes /tf with
TF_LISTENER_QOS = QoSProfile(
    depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE
)


def _annotations(dataset: str) -> list[dict]:
    lines = (HANDS / "annotations.jsonl").read_text().splitlines()
    return [a for a in map(json.loads, lines) if a["dataset"] == dataset]


def _matrix_xyzw(q) -> np.ndarray:
    """Rotation matrix of a geometry_msgs/Quaternion (x, y, z, w), written out here."""
    x, y, z, w = q.x, q.y, q.z, q.w
    assert abs(x * x + y * y + z * z + w * w - 1.0) < 1e-9
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _xyz(vector) -> np.ndarray:
    return np.array([vector.x, vector.y, vector.z])


_MODELS = {}


def _canonical_keypoints(hand) -> np.ndarray:
    """(21, 3) keypoints of the hand's own pose and shape with zero global_orient and transl,
    relative to their wrist: the hand in its TF frame."""
    if hand.side not in _MODELS:
        _MODELS[hand.side] = load_hand_model(hand.side, dtype=torch.float64)
    out = _MODELS[hand.side](
        pose=torch.tensor(hand.pose, dtype=torch.float64)[None],
        shape=torch.tensor(hand.shape, dtype=torch.float64)[None],
        global_orient=torch.zeros(1, 3, dtype=torch.float64),
        transl=torch.zeros(1, 3, dtype=torch.float64),
    )
    keypoints = out.keypoints[0].numpy()
    return keypoints - keypoints[0]


def _check_frames(result, header, transforms, *, prefix="", atol=1e-5) -> None:
    """Names, parent, stamp, origins; the rotation maps the canonical hand onto the estimate;
    the documented axes (fingers -y, index MCP on the thumb's side: +x right, -x left)."""
    assert len(transforms) == 2 * len(result.hands)
    for hand, wrist, palm in zip(result.hands, transforms[::2], transforms[1::2], strict=True):
        name = f"{prefix}hand_{hand.side}_{hand.track_id}"
        assert (wrist.child_frame_id, palm.child_frame_id) == (name, name + "_palm")
        for t in (wrist, palm):
            assert t.header.frame_id == header.frame_id
            assert (t.header.stamp.sec, t.header.stamp.nanosec) == (
                header.stamp.sec,
                header.stamp.nanosec,
            )
        np.testing.assert_allclose(_xyz(wrist.transform.translation), hand.keypoints_3d[0])
        np.testing.assert_allclose(
            _xyz(palm.transform.translation), hand.keypoints_3d[list(PALM)].mean(0), atol=1e-12
        )
        assert palm.transform.rotation == wrist.transform.rotation
        R = _matrix_xyzw(wrist.transform.rotation)
        in_camera = _canonical_keypoints(hand) @ R.T + _xyz(wrist.transform.translation)
        error = np.abs(in_camera - hand.keypoints_3d).max()
        assert error < atol, f"{name}: canonical keypoints by the TF miss by {error:.2e} m"
        local = (hand.keypoints_3d - hand.keypoints_3d[0]) @ R  # R^T (k - wrist)
        middle = local[9] / np.linalg.norm(local[9])
        assert middle[1] < -0.9, f"{name}: middle MCP not along -y: {middle}"
        assert (local[5, 0] - local[17, 0]) * (1 if hand.side == "right" else -1) > 0.02


def _synthetic_hand(side: str, rng: np.random.Generator) -> HandEstimate:
    model = load_hand_model(side, dtype=torch.float64)
    params = {
        "pose": 0.3 * rng.standard_normal(45),
        "shape": rng.standard_normal(10),
        "global_orient": rng.uniform(-2.0, 2.0, 3),
        "transl": np.array([0.05, -0.02, 0.5]) + 0.05 * rng.standard_normal(3),
    }
    out = model(**{k: torch.tensor(v)[None] for k, v in params.items()})
    keypoints = out.keypoints[0].numpy()
    return HandEstimate(
        side=side,
        score=0.9,
        track_id=int(rng.integers(0, 100)),
        keypoints_2d=np.zeros((21, 2)),
        detected_keypoints_2d=np.zeros((21, 2)),
        keypoints_3d=keypoints,
        vertices=out.vertices[0].numpy(),
        faces=model.faces.cpu().numpy(),
        model_name="open_hand",
        refine_iterations=0,
        refine_loss=0.0,
        keypoint_error_px=0.0,
        **params,
    )


def _result(hands) -> FrameResult:
    return FrameResult(640, 480, CameraIntrinsics(500.0, 500.0, 320.0, 240.0), tuple(hands))


# ----- conversions.hand_transforms ----------------------------------------------------------
def test_transforms_of_model_hands_of_both_sides_reproduce_the_posed_keypoints():
    rng = np.random.default_rng(0)
    hands = [_synthetic_hand(side, rng) for side in ("right", "left", "right", "left")]
    header = make_header(1_700_000_000_123_456_789, FRAME_ID)
    result = _result(hands)
    _check_frames(result, header, hand_transforms(result, header), atol=1e-9)
    prefixed = hand_transforms(result, header, prefix="cam1/")
    _check_frames(result, header, prefixed, prefix="cam1/", atol=1e-9)
    assert hand_transforms(_result([]), header) == []


def test_bad_values_and_prefixes_are_refused_by_name():
    from dataclasses import replace

    hand = _synthetic_hand("right", np.random.default_rng(1))
    header = Header(frame_id=FRAME_ID)
    bad = replace(hand, global_orient=np.array([0.1, np.nan, 0.0]))
    with pytest.raises(ValueError, match="hand 0: global_orient has 1 non-finite"):
        hand_transforms(_result([bad]), header)
    with pytest.raises(ValueError, match="keypoints_3d"):
        hand_transforms(_result([replace(hand, keypoints_3d=hand.keypoints_3d[:20])]), header)
    with pytest.raises(ValueError, match="tf prefix"):
        hand_transforms(_result([hand]), header, prefix="/cam1/")
    with pytest.raises(ValueError, match="tf_prefix"):
        NodeConfig(tf_prefix="/cam1/")
    assert NodeConfig().publish_tf and NodeConfig().tf_prefix == ""


@pytest.mark.skipif(not HANDS.is_dir(), reason="shared hand images not available")
def test_transforms_of_real_estimates_put_the_canonical_hand_on_the_estimate():
    torch.set_num_threads(1)
    estimator = HandMeshEstimator(EstimatorConfig(device="cpu", refine_iterations=5))
    sides = set()
    try:
        for index, ann in enumerate(_annotations("RHD")):
            rgb = read_image(HANDS / ann["image"])
            result = estimator.estimate(rgb, CameraIntrinsics.from_matrix(ann["K"]))
            assert result.hands, ann["image"]
            header = make_header(1_700_000_000_000_000_000 + index, FRAME_ID)
            _check_frames(result, header, hand_transforms(result, header, prefix="r/"), prefix="r/")
            sides |= {hand.side for hand in result.hands}
    finally:
        estimator.close()
    assert sides == {"left", "right"}


# ----- tf_publisher: tf2_ros's broadcaster where importable, else the plain publisher --------
class _FakeNode:
    def __init__(self) -> None:
        self.created, self.destroyed = [], []

    def create_publisher(self, msg_type, topic, qos):
        self.created.append((msg_type, topic, qos))
        return types.SimpleNamespace(publish=lambda msg: self.created.append(msg))

    def destroy_publisher(self, publisher) -> None:
        self.destroyed.append(publisher)


def test_tf_publisher_uses_tf2_ros_when_importable_else_publishes_tfmessage(monkeypatch):
    node, sent = _FakeNode(), []

    class Broadcaster:  # tf2_ros.TransformBroadcaster's interface
        def __init__(self, node, qos):
            self.pub_tf = ("tf2_ros publisher", qos)

        def sendTransform(self, transforms):  # noqa: N802 (tf2_ros's name)
            sent.append(transforms)

    fake_tf2_ros = types.SimpleNamespace(TransformBroadcaster=Broadcaster)
    monkeypatch.setitem(sys.modules, "tf2_ros", fake_tf2_ros)
    tf = TfPublisher(node)
    assert tf.backend == "tf2_ros" and node.created == []
    tf.send([])
    tf.send(["a", "b"])
    assert sent == [["a", "b"]]
    tf.destroy()
    assert node.destroyed == [("tf2_ros publisher", TF_QOS)]

    monkeypatch.setitem(sys.modules, "tf2_ros", None)  # import fails: the pip set-up
    node = _FakeNode()
    tf = TfPublisher(node)
    assert tf.backend == "tf2_msgs"
    assert node.created == [(TFMessage, "/tf", TF_QOS)]
    assert (TF_QOS.depth, TF_QOS.reliability, TF_QOS.durability) == (
        100,
        ReliabilityPolicy.RELIABLE,
        DurabilityPolicy.VOLATILE,
    )
    transform = TransformStamped(child_frame_id="hand_right_0")
    tf.send([transform])
    assert isinstance(node.created[-1], TFMessage)
    assert node.created[-1].transforms == [transform]


# ----- the node over DDS --------------------------------------------------------------------
class TfRecorder(Node):
    """A plain /tf subscriber with tf2's listener QoS: TFMessages' transforms by stamp (ns)."""

    def __init__(self) -> None:
        super().__init__("tf_recorder")
        self._lock = threading.Lock()
        self.by_stamp: dict[int, list] = {}
        self.create_subscription(TFMessage, "/tf", self._on_tf, TF_LISTENER_QOS)

    def _on_tf(self, msg: TFMessage) -> None:
        with self._lock:
            for t in msg.transforms:
                key = t.header.stamp.sec * 1_000_000_000 + t.header.stamp.nanosec
                self.by_stamp.setdefault(key, []).append(t)

    def wait_for(self, stamp_ns: int, count: int, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = list(self.by_stamp.get(stamp_ns, ()))
            if len(got) >= count:
                return got
            time.sleep(0.005)
        return got


@pytest.fixture(scope="module")
def ros():
    parameters = {"device": "cpu", "refine_iterations": 5, "warning_throttle_s": 0.0}
    with running_node(  # apart from test_ros_node (100-199)
        200 + os.getpid() % 30, "tfcam", parameters, outputs=("joints",), extra_nodes=(TfRecorder,)
    ) as (node, client, recorder):
        yield node, client, recorder


_stamp = [1_800_000_000_000_000_000]


def _send(client, rgb, K):
    """One frame (a new scene: 5 s after the last) until its hand/joints arrive."""
    for _ in range(3):
        _stamp[0] += 5_000_000_000
        client.publish_frame(rgb, K, _stamp[0], FRAME_ID)
        try:
            return _stamp[0], client.wait_for(_stamp[0], TIMEOUT_S / 3, topics=("joints",))
        except TimeoutError:
            continue
    raise TimeoutError("no hand/joints for three attempts")


@pytest.mark.skipif(not HANDS.is_dir(), reason="shared hand images not available")
def test_node_publishes_the_hands_on_tf_with_the_image_stamp_and_obeys_live_settings(ros):
    node, client, recorder = ros
    info = node.get_publishers_info_by_topic("/tf")
    assert len(info) == 1
    assert info[0].qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert info[0].qos_profile.durability == DurabilityPolicy.VOLATILE
    type_hash = info[0].topic_type_hash
    assert (type_hash.version, type_hash.value.hex()) == (1, ROS_TFMESSAGE_HASH)
    ann = _annotations("RHD")[2]
    rgb, K = read_image(HANDS / ann["image"]), np.array(ann["K"])

    for prefix in ("", "cam1/"):
        result = node.set_parameters([Parameter("tf_prefix", value=prefix)])
        assert all(r.successful for r in result)
        stamp, got = _send(client, rgb, K)
        hands = got.messages["joints"].hands
        assert len(hands) >= 1
        transforms = recorder.wait_for(stamp, 2 * len(hands), TIMEOUT_S)
        assert len(transforms) == 2 * len(hands)
        by_name = {t.child_frame_id: t for t in transforms}
        for hand in hands:
            name = f"{prefix}hand_{hand.side}_{hand.track_id}"
            wrist, palm = by_name[name], by_name[name + "_palm"]
            joints = np.array(hand.joints_3d, dtype=np.float64).reshape(21, 3)
            np.testing.assert_allclose(_xyz(wrist.transform.translation), joints[0], atol=1e-6)
            np.testing.assert_allclose(
                _xyz(palm.transform.translation), joints[list(PALM)].mean(0), atol=1e-6
            )
            for t in (wrist, palm):
                assert t.header.frame_id == FRAME_ID
                assert t.header.stamp.sec * 1_000_000_000 + t.header.stamp.nanosec == stamp
            _matrix_xyzw(wrist.transform.rotation)  # a unit quaternion

    refused = node.set_parameters([Parameter("tf_prefix", value="/cam1/")])
    assert not refused[0].successful and "tf_prefix" in refused[0].reason
    assert all(r.successful for r in node.set_parameters([Parameter("publish_tf", value=False)]))
    stamp, got = _send(client, rgb, K)
    assert got.messages["joints"].hands
    # /tf would go out right after hand/joints, from the same worker step
    assert recorder.wait_for(stamp, 1, 1.0) == []
    assert all(r.successful for r in node.set_parameters([Parameter("publish_tf", value=True)]))
    stamp, got = _send(client, rgb, K)
    assert len(recorder.wait_for(stamp, 2, TIMEOUT_S)) == 2 * len(got.messages["joints"].hands)
