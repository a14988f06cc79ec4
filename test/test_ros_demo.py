"""The README's first command: the node on the embedded RGB-D clip over real topics,
recorded, against the same frames without depth."""

import json

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
pytest.importorskip("hand_mesh_ros.msg", reason="hand_mesh_ros messages not built")


def test_demo_runs_the_node_with_depth_over_topics_records_a_bag_and_scores_both(tmp_path):
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader

    from hand_mesh_ros.msg import HandJointsArray
    from hand_mesh_ros.ros import demo

    summary = demo.run(tmp_path, frames=4, seed=0, device="cpu")
    assert summary["frames_with_a_hand"] == "4/4"
    assert summary["frames_with_depth_used"] == 4  # the node got and used every depth
    diagnostics = summary["node_depth_diagnostics"]
    assert int(diagnostics["frames_with_depth"]) == 4 and int(diagnostics["hands_depth_used"]) == 4
    errors = summary["mean_errors_vs_truth"]
    assert set(errors) == {"rgb_only", "rgbd"}
    for name in ("rgb_only", "rgbd"):
        assert set(errors[name]) == set(demo.ERROR_KEYS)
        assert errors[name]["kp2d_px"] < 20.0 and errors[name]["pa_mpjpe_mm"] < 30.0
    # the depth makes the hand metric: camera-frame errors of a few mm, RGB only several cm
    assert errors["rgbd"]["wrist_error_mm"] < 15.0
    assert errors["rgbd"]["mpjpe_mm"] < 0.5 * errors["rgb_only"]["mpjpe_mm"]
    for row in summary["frames"]:  # per frame, both passes; the node's hand used the depth
        assert set(row["rgbd"]) == set(row["rgb_only"]) == {"side", *demo.ERROR_KEYS}
        assert row["depth_used"] is True
    assert len({r["track_id"] for r in summary["frames"]}) == 1  # one hand, one track
    assert summary["node_frames_per_s"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["frames_with_a_hand"] == "4/4"
    assert (tmp_path / "contact_sheet.png").stat().st_size > 10_000
    assert (tmp_path / "overlay.mp4").stat().st_size > 1_000

    with Reader(tmp_path / "hand_topics_bag") as bag:
        counts = {c.topic: c.msgcount for c in bag.connections}
        assert counts == {
            "/camera/camera_info": 4,
            "/hand/joints": 4,
            "/hand/mano": 4,
            "/hand/mesh": 4,
            "/hand/mesh_indexed": 4,
        }
        joints = [c for c in bag.connections if c.topic == "/hand/joints"]
        stamps = []
        for _, timestamp, raw in bag.messages(connections=joints):
            msg = deserialize_message(raw, HandJointsArray)
            assert msg.header.frame_id == demo.FRAME_ID and len(msg.hands) == 1
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == timestamp
            stamps.append(timestamp)
        assert stamps == sorted(stamps) and len(set(stamps)) == 4
