"""Entry points of the estimator node: ``hand-mesh-node`` (pip installs, /camera/... topics by
default) and the ``estimator_node`` executable of a ROS install (plain ROS arguments; the
launch file remaps)."""

from __future__ import annotations

import argparse
import signal
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from hand_mesh_ros.ros.config import (
    CAMERA_INFO_TOPIC,
    DEFAULT_CAMERA_INFO_TOPIC,
    DEFAULT_IMAGE_TOPIC,
    IMAGE_TOPIC,
)
from hand_mesh_ros.ros.node import HandMeshNode


def _ros_arguments(argv: list[str]) -> list[str]:
    """``hand-mesh-node`` options -> rclpy arguments (anything after them passes through)."""
    parser = argparse.ArgumentParser(
        prog="hand-mesh-node",
        description="Run the hand mesh estimator node (same node as `ros2 launch hand_mesh_ros "
        "estimator.launch.py`). Extra arguments go to ROS (e.g. --ros-args -p device:=cpu).",
    )
    parser.add_argument("--params-file", help="ROS 2 parameter file, e.g. config/estimator.yaml")
    parser.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC)
    parser.add_argument("--camera-info-topic", default=DEFAULT_CAMERA_INFO_TOPIC)
    known, rest = parser.parse_known_args(argv[1:])
    ros = [argv[0]] + rest + ["--ros-args"]
    ros += ["-r", f"{IMAGE_TOPIC}:={known.image_topic}"]
    ros += ["-r", f"{CAMERA_INFO_TOPIC}:={known.camera_info_topic}"]
    if known.params_file:
        ros += ["--params-file", known.params_file]
    return ros


def spin(node: HandMeshNode) -> None:
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Ctrl-C under `ros2 launch` reaches the node twice (the terminal's process group, then
        # launch's own SIGINT): a second one must not interrupt the clean-up (joining the
        # processing threads mid-frame), or the node dies of the signal instead of exiting
        # cleanly
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        node._stop_input()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def main(argv: list[str] | None = None) -> int:
    """``hand-mesh-node``: the node with /camera/... topics by default (pip installs)."""
    rclpy.init(args=_ros_arguments(list(sys.argv if argv is None else argv)))
    spin(HandMeshNode())
    return 0


def ros_main(argv: list[str] | None = None) -> int:
    """The ``estimator_node`` executable of a ROS install: plain ROS arguments (launch remaps)."""
    rclpy.init(args=list(sys.argv if argv is None else argv))
    spin(HandMeshNode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
