"""The node's /tf output: tf2_ros's ``TransformBroadcaster`` where tf2_ros is importable (a ROS
install), else a plain publisher of ``tf2_msgs/msg/TFMessage`` on ``/tf`` with the QoS the
broadcaster uses (keep last 100, reliable, volatile), which is what TF listeners subscribe with.

The pip set-up has no tf2_ros (not on PyPI); its tf2_msgs is built from
``tools/ros_pip/tf2_msgs`` by ``tools/ros_pip/build_interfaces.sh``, with ROS's definition and
therefore ROS's type hash: listeners of a ROS install receive it. What goes on /tf is
``conversions.hand_transforms``.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

TF_TOPIC = "/tf"
# tf2_ros.TransformBroadcaster's default QoSProfile(depth=100): reliable, volatile
TF_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=100,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
NO_TF2_MSGS = (
    "tf2_msgs is not importable: source a ROS 2 install, or build it into the virtual "
    "environment with tools/ros_pip/build_interfaces.sh"
)


class TfPublisher:
    """Sends lists of geometry_msgs/TransformStamped on /tf as one TFMessage each.

    ``backend`` says which: ``"tf2_ros"`` or ``"tf2_msgs"`` (the plain publisher)."""

    def __init__(self, node) -> None:
        self._node = node
        try:
            from tf2_ros import TransformBroadcaster
        except ImportError:
            try:
                from tf2_msgs.msg import TFMessage
            except ImportError as error:
                raise ImportError(NO_TF2_MSGS) from error
            self.backend = "tf2_msgs"
            self._publisher = node.create_publisher(TFMessage, TF_TOPIC, TF_QOS)
            self._send = lambda transforms: self._publisher.publish(
                TFMessage(transforms=transforms)
            )
        else:
            self.backend = "tf2_ros"
            broadcaster = TransformBroadcaster(node, qos=TF_QOS)
            self._publisher = broadcaster.pub_tf
            self._send = broadcaster.sendTransform

    def send(self, transforms: list) -> None:
        """Publish ``transforms`` (a list of TransformStamped) as one TFMessage; none: nothing."""
        if transforms:
            self._send(list(transforms))

    def destroy(self) -> None:
        if self._publisher is not None:
            self._node.destroy_publisher(self._publisher)
            self._publisher = None
