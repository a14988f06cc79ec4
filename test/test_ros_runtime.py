"""The node's plain helpers: sequence-gap counting, the stamped cache, the image QoS choice and
live parameter changes (no DDS needed; the real-DDS behaviour is in test_ros_cross_process)."""

import threading
import time

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from rclpy.qos import ReliabilityPolicy  # noqa: E402

from hand_mesh_ros.pipeline.config import EstimatorConfig, TrackerConfig  # noqa: E402
from hand_mesh_ros.ros.config import NodeConfig  # noqa: E402
from hand_mesh_ros.ros.image_qos import choose_reliability, image_qos_profile  # noqa: E402
from hand_mesh_ros.ros.params import changed_configs  # noqa: E402
from hand_mesh_ros.ros.runtime import SequenceGaps, StampedCache  # noqa: E402

RELIABLE, BEST_EFFORT = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT


def test_sequence_gaps_count_missing_frames_per_publisher_and_spot_duplicates():
    gaps = SequenceGaps()
    assert gaps.add("a", 5) == 0  # the first frame heard: what came before is not knowable
    assert gaps.add("a", 6) == 0
    assert gaps.add("a", 9) == 2  # 7 and 8 never arrived
    assert gaps.add("b", 1) == 0 and gaps.add("b", 3) == 1  # another camera, its own numbers
    assert gaps.add("a", 9) is None  # delivered twice (two subscriptions overlap)
    assert gaps.missed == 3
    assert gaps.add("a", 8) is None  # late through the other subscription: dropped, not lost
    assert gaps.missed == 2 and gaps.add("a", 8) is None and gaps.missed == 2
    assert gaps.add("a", None) == 0 and gaps.add("a", 0) == 0  # no numbers from the middleware
    assert gaps.missed == 2


def test_stamped_cache_matches_by_stamp_waits_briefly_and_falls_back_to_the_newest():
    cache = StampedCache(3)
    assert cache.get(1) is None and len(cache) == 0
    for stamp in (1, 2, 3, 4):
        cache.put(stamp, f"info{stamp}")
    assert len(cache) == 3 and cache.get(1) == "info4"  # 1 fell out: the newest instead
    assert cache.get(3) == "info3"
    threading.Timer(0.05, cache.put, args=(5, "info5")).start()
    start = time.monotonic()
    assert cache.get(5, wait_s=2.0) == "info5"  # arrives while waiting
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(
    "mode, publishers, expected",
    [
        ("auto", [RELIABLE], "reliable"),
        ("auto", [RELIABLE, RELIABLE], "reliable"),
        ("auto", [RELIABLE, BEST_EFFORT], "best_effort"),  # reliable could not hear one
        ("auto", [], "best_effort"),  # hears either kind until a publisher shows up
        ("sensor_data", [RELIABLE], "best_effort"),
        ("reliable", [BEST_EFFORT], "reliable"),
    ],
)
def test_image_qos_follows_the_publishers(mode, publishers, expected):
    assert choose_reliability(mode, publishers) == expected
    profile = image_qos_profile(expected)
    assert profile.reliability == (RELIABLE if expected == "reliable" else BEST_EFFORT)
    assert profile.depth >= 2  # a short executor stall does not overwrite frames in DDS


def test_image_qos_refuses_unknown_modes():
    with pytest.raises(ValueError, match="image_qos"):
        choose_reliability("fast", [])


def test_live_changes_apply_to_their_config_and_the_others_are_refused_with_a_reason():
    configs = (EstimatorConfig(), TrackerConfig(), NodeConfig())
    estimator, tracker, node = changed_configs(
        configs, {"warm_iterations": 4, "track_timeout_s": 0.5, "publish_overlay": True}
    )
    assert estimator.warm_iterations == 4 and tracker.track_timeout_s == 0.5
    assert node.publish_overlay is True and estimator.device == configs[0].device
    with pytest.raises(ValueError, match="device is read at configure"):
        changed_configs(configs, {"device": "cuda"})
    with pytest.raises(ValueError, match="image_qos is read at configure"):
        changed_configs(configs, {"image_qos": "reliable"})
    with pytest.raises(ValueError, match="not a parameter"):
        changed_configs(configs, {"warm_iteration": 4})
    with pytest.raises(ValueError, match="max_hands"):
        changed_configs(configs, {"max_hands": 99})
