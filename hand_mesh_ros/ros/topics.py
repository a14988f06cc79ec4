"""The node's output topics: one table that drives the node's publishers and the camera-side
client's subscriptions (names relative to the node's namespace).

Each output is built from the frame's result, the input header, the RGB image and the node's
options. Cheap flat arrays are always built (they also validate the result); thousands of
Point objects, a point cloud or a drawn image only when someone subscribes (``on_demand``);
``needs`` names the ``NodeConfig`` flag that must be true for it to be built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sensor_msgs.msg import Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from hand_mesh_ros.msg import HandJointsArray, HandManoArray, HandMeshArray
from hand_mesh_ros.ros import conversions
from hand_mesh_ros.ros.point_cloud import HandPoints, points_cloud
from hand_mesh_ros.surface_points import hand_points


@dataclass(frozen=True)
class Output:
    topic: str
    message_type: type
    build: Callable  # (result: FrameResult, header, rgb: (H,W,3) uint8, NodeConfig) -> message
    on_demand: bool = False  # built only while the topic has subscribers
    needs: str | None = None  # NodeConfig flag that enables the topic


def hand_cloud(result, header, node_config) -> PointCloud2:
    """All hands as one cloud: mesh vertices (``points_per_hand`` 0) or that many points
    sampled on each surface (seeded by the track id: the same skin points frame to frame),
    pushed out by ``points_inflate_m`` along the normals."""
    hands = [
        HandPoints(
            hand.track_id,
            hand.side,
            hand_points(
                hand.vertices,
                hand.faces,
                count=node_config.points_per_hand,
                inflate_m=node_config.points_inflate_m,
                seed=hand.track_id,
            ),
        )
        for hand in result.hands
    ]
    return points_cloud(hands, header)




OUTPUTS: dict[str, Output] = {
    "joints": Output(
        "hand/joints", HandJointsArray, lambda r, h, rgb, c: conversions.joints_array(r, h)
    ),
    "mano": Output("hand/mano", HandManoArray, lambda r, h, rgb, c: conversions.mano_array(r, h)),
    "mesh_indexed": Output(
        "hand/mesh_indexed", HandMeshArray, lambda r, h, rgb, c: conversions.mesh_array(r, h)
    ),
    "mesh": Output(
        "hand/mesh",
        MarkerArray,
        lambda r, h, rgb, c: conversions.mesh_markers(r, h),
        on_demand=True,
    ),
    "joint_markers": Output(
        "hand/joint_markers",
        MarkerArray,
        lambda r, h, rgb, c: conversions.joint_markers(r, h),
        on_demand=True,
    ),
    "points": Output(
        "hand/points",
        PointCloud2,
        lambda r, h, rgb, c: hand_cloud(r, h, c),
        on_demand=True,
    ),
    "overlay": Output(
        "hand/overlay",
        Image,
        lambda r, h, rgb, c: conversions.overlay_image(rgb, r, h),
        on_demand=True,
        needs="publish_overlay",
    ),
}

# what a planner-side client records by default: the hands as data and the RViz mesh
CLIENT_OUTPUTS = ("joints", "mano", "mesh", "mesh_indexed")
