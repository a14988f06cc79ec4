"""The package as a ROS user builds it: `colcon build` of a workspace holding this repository's
tracked files (ament_cmake + rosidl + the Python library, against the ROS 2 wheels' prefix),
then the installed `estimator_node` executable started as its own process with the installed
parameter file, answering a real image over DDS."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from colcon_install import PY, sourced_env
from helpers import SHARED_DATA

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
HANDS = SHARED_DATA / "hands"


@pytest.fixture(scope="module")
def install(colcon_install):
    return colcon_install  # built once per session (conftest.py, colcon_install.py)


def test_colcon_installs_messages_library_node_launch_config_and_rviz(install):
    site = install / "lib" / PY / "site-packages" / "hand_mesh_ros"
    assert (install / "lib" / "hand_mesh_ros" / "estimator_node").is_file()
    for shared in (
        "launch/estimator.launch.py",
        "config/estimator.yaml",
        "rviz/hand_mesh.rviz",
        "msg/HandJointsArray.msg",
        "package.xml",
    ):
        assert (install / "share" / "hand_mesh_ros" / shared).is_file(), shared
    assert (site / "msg" / "_hand_joints_array.py").is_file()
    assert (site / "ros" / "node.py").is_file() and (site / "assets").is_dir()
    # the library's __init__ (not rosidl's empty one) is the installed package's
    assert "load_hand_model" in (site / "__init__.py").read_text()


@pytest.mark.skipif(not HANDS.is_dir(), reason="shared hand images not available")
def test_installed_node_process_answers_an_image_over_dds(install):
    import rclpy

    from hand_mesh_ros.imageio import read_image
    from hand_mesh_ros.ros.client import EstimatorClient, NodeRunner

    domain = 150 + os.getpid() % 50
    env = sourced_env(install, domain=domain)
    share = install / "share" / "hand_mesh_ros"
    node = subprocess.Popen(
        [
            sys.executable,
            str(install / "lib" / "hand_mesh_ros" / "estimator_node"),
            "--ros-args",
            "--params-file",
            str(share / "config" / "estimator.yaml"),
            "-r",
            "image:=/camera/image_raw",
            "-r",
            "camera_info:=/camera/camera_info",
            "-p",
            "device:=cpu",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd="/",
    )
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    rclpy.init(domain_id=domain)
    client = EstimatorClient()
    runner = NodeRunner(client)
    annotation = json.loads((HANDS / "annotations.jsonl").read_text().splitlines()[0])
    rgb = read_image(HANDS / annotation["image"])
    got = None
    try:
        for attempt in range(60):  # the node process needs a few seconds to load its models
            stamp = (attempt + 1) * 1_000_000_000
            client.publish_frame(rgb, np.array(annotation["K"]), stamp, "camera_optical_frame")
            try:
                got = client.wait_for(stamp, 2.0)
                break
            except TimeoutError:
                assert node.poll() is None, node.communicate()[0][-3000:]
    finally:
        runner.stop()
        client.destroy_node()
        rclpy.shutdown()
        node.terminate()
        log = node.communicate(timeout=30)[0]
    assert got is not None, log[-3000:]
    assert "configured on cpu" in log
    hands = got.messages["joints"].hands
    assert len(hands) >= 1
    xyz = np.array(hands[0].joints_3d).reshape(21, 3)
    truth = np.array(annotation["kp3d"]) / 1000.0
    assert abs(xyz[0, 2] - truth[0, 2]) < 0.25  # metres; a real depth, not a placeholder
    assert got.messages["mesh"].markers[0].header.frame_id == "camera_optical_frame"
