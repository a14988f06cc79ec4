"""The estimator node and a camera-side client on a private DDS domain, spinning in the test
process: the shared set-up of the real-DDS tests (test_ros_node, test_ros_tf, test_ros_mano).

Imported by tests as ``from ros_harness import running_node`` after they have checked that
rclpy and the messages are importable."""

from __future__ import annotations

import contextlib
import os
import time

import rclpy
from rclpy.parameter import Parameter

from hand_mesh_ros.ros.client import EstimatorClient, NodeRunner
from hand_mesh_ros.ros.node import HandMeshNode

DISCOVERY_S = 0.5  # before the first frame: let the publishers and subscribers match


@contextlib.contextmanager
def running_node(domain_id: int, prefix: str, parameters: dict, *, node_name=None,
                 client_name="hand_mesh_camera", outputs=None, extra_nodes=(),
                 depth_topic=None, client_publishes=True):
    """rclpy on ``domain_id`` (localhost only), the node with ``parameters`` (its image and
    camera_info remapped to ``/<prefix>/image_raw`` and ``/<prefix>/info``), a client on those
    topics (``outputs``: the ones it records, default the client's; ``depth_topic``: where it
    publishes depth, if anywhere; ``client_publishes`` False: it only listens, the camera being
    another process or an extra node -- its best-effort publishers would make the node's
    ``image_qos: auto`` subscribe best effort) and ``extra_nodes`` (made after rclpy.init:
    callables returning nodes) spinning; yields (node, client, *extras)."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    rclpy.init(domain_id=domain_id)
    image, info = f"/{prefix}/image_raw", f"/{prefix}/info"
    node = HandMeshNode(
        *(() if node_name is None else (node_name,)),
        parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()],
        cli_args=["--ros-args", "-r", f"image:={image}", "-r", f"camera_info:={info}"],
    )
    kwargs = {} if outputs is None else {"outputs": outputs}
    if depth_topic is not None:
        kwargs["depth_topic"] = depth_topic
    client = EstimatorClient(
        image_topic=image if client_publishes else None, camera_info_topic=info,
        name=client_name, **kwargs,
    )
    extras = [make() for make in extra_nodes]
    runner = NodeRunner(node, client, *extras)
    time.sleep(DISCOVERY_S)
    try:
        yield (node, client, *extras)
    finally:
        runner.stop()
        node._stop_input()
        for each in (node, client, *extras):
            each.destroy_node()
        rclpy.shutdown()
