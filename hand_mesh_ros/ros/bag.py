"""Record rclpy messages into a ROS 2 bag (rosbag2, sqlite3 storage) with the pure-Python
``rosbags`` library, so the demo can save its output topics without a ROS install.

Messages are serialised by rclpy itself (CDR, exactly what went over DDS); ``rosbags`` only
writes the container and the message definitions (ours from msg/*.msg, the standard ones from
its ROS 2 Kilted type store). Open the bag with `ros2 bag play` / `ros2 bag info` or rosbags.
"""

from __future__ import annotations

from pathlib import Path

from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

PACKAGE = "hand_mesh_ros"
BAG_VERSION = 8  # readable by Humble and later


def typestore_with_package_messages(msg_dir: Path):
    """The Kilted type store plus this package's messages (from their .msg files)."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(Path(msg_dir).glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    typestore.register(types)
    return typestore


def ros_type_name(msg) -> str:
    """'pkg/msg/Type' of an rclpy message instance."""
    module = type(msg).__module__.split(".")[0]
    return f"{module}/msg/{type(msg).__name__}"


class BagRecorder:
    """Write messages to a new bag folder ``path`` (must not exist). Use as a context manager."""

    def __init__(self, path: str | Path, msg_dir: str | Path) -> None:
        self.path = Path(path)
        self._typestore = typestore_with_package_messages(Path(msg_dir))
        self._writer = Writer(self.path, version=BAG_VERSION)
        self._connections: dict[str, object] = {}
        self.count = 0

    def __enter__(self) -> BagRecorder:
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def write(self, topic: str, msg, stamp_ns: int) -> None:
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, ros_type_name(msg), typestore=self._typestore
            )
        self._writer.write(self._connections[topic], int(stamp_ns), serialize_message(msg))
        self.count += 1
