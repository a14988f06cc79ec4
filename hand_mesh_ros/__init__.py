"""hand_mesh_ros: dense 3D hand pose and mesh estimation (DHPE) for ROS 2.

The torch core (hand model, renderer, networks, fitting) never imports rclpy; the ROS node
lives in ``hand_mesh_ros.ros``. The two stable entry points are imported lazily so that
``import hand_mesh_ros.topology`` stays light:

    load_hand_model(side="right" | "left", path=None) -> HandModel
    render_silhouette(vertices, faces, K, image_size=(H, W), sigma=...) -> (B, H, W)
"""

from __future__ import annotations

import pkgutil

# The generated ROS 2 messages (``hand_mesh_ros.msg``) may be installed in another directory
# named hand_mesh_ros on sys.path (pip set-up: VENV/ros_interfaces, tools/ros_pip); a colcon
# install puts them beside this file, where this is a no-op.
__path__ = pkgutil.extend_path(__path__, __name__)

__all__ = ["load_hand_model", "render_silhouette"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "load_hand_model":
        from hand_mesh_ros.handmodel.model import load_hand_model

        return load_hand_model
    if name == "render_silhouette":
        from hand_mesh_ros.render import render_silhouette

        return render_silhouette
    raise AttributeError(f"module 'hand_mesh_ros' has no attribute {name!r}")
