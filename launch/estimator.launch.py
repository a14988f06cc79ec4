"""Launch the hand mesh estimator (a lifecycle node) and, on request, RViz.

    ros2 launch hand_mesh_ros estimator.launch.py
    ros2 launch hand_mesh_ros estimator.launch.py image_topic:=/my_cam/image_raw \
        camera_info_topic:=/my_cam/camera_info device:=cuda rviz:=true
    ros2 launch hand_mesh_ros estimator.launch.py hand_model:=/path/to/mano/MANO_RIGHT.pkl
    ros2 launch hand_mesh_ros estimator.launch.py \
        depth_topic:=/camera/aligned_depth_to_color/image_raw

The node configures and activates itself (``auto_start: true`` in config/estimator.yaml); set
it to false in your parameter file to drive the lifecycle from a manager instead.
RViz (rviz/hand_mesh.rviz) uses the fixed frame "camera_optical_frame": set it to your camera's
optical frame (the frame_id of its images), or publish a transform to that frame. Where rviz2
is not installed, ``rviz:=true`` logs a warning and starts the estimator alone (a Node action
for a missing package would fail the launch and leave the estimator running as an orphan,
ros2/launch#747).
"""

import os

from ament_index_python.packages import get_package_share_directory
from ament_index_python.resources import has_resource
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.logging import get_logger
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node


def rviz_if_installed(context, rviz):
    """``[rviz]`` when the rviz2 package is in the ament index, else ``[]`` and a warning."""
    if has_resource("packages", "rviz2"):
        return [rviz]
    get_logger("launch").warning("rviz2 is not installed: starting without RViz")
    return []


def generate_launch_description():
    share = get_package_share_directory("hand_mesh_ros")
    arguments = [
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "estimator.yaml"),
            description="ROS 2 parameter file of the estimator node",
        ),
        DeclareLaunchArgument(
            "image_topic",
            default_value="/camera/image_raw",
            description="input sensor_msgs/Image topic (remapped to the node's 'image')",
        ),
        DeclareLaunchArgument(
            "camera_info_topic",
            default_value="/camera/camera_info",
            description="sensor_msgs/CameraInfo of that image (remapped to 'camera_info')",
        ),
        DeclareLaunchArgument(
            "device",
            default_value="auto",
            description="auto | cpu | cuda (auto: CUDA when available); overrides params_file",
        ),
        DeclareLaunchArgument(
            "hand_model",
            default_value="open",
            description="open | /path/MANO_RIGHT.pkl (MANO_LEFT.pkl beside it) | a folder holding "
            "both (the user's MANO); overrides params_file",
        ),
        DeclareLaunchArgument(
            "image_transport",
            default_value="raw",
            description="raw (sensor_msgs/Image on image_topic) | compressed "
            "(sensor_msgs/CompressedImage on <image_topic>/compressed); overrides params_file",
        ),
        DeclareLaunchArgument(
            "depth_topic",
            default_value="",
            description="aligned depth sensor_msgs/Image (16UC1 mm or 32FC1 m, the colour "
            "image's size and stamps), e.g. /camera/aligned_depth_to_color/image_raw; '' = RGB "
            "only; overrides params_file",
        ),
        DeclareLaunchArgument(
            "rviz", default_value="false", description="true: also start RViz with the hand mesh"
        ),
        DeclareLaunchArgument(
            "namespace",
            default_value="",
            description="namespace of the node and its topics (the RViz config assumes none)",
        ),
    ]
    estimator = LifecycleNode(
        package="hand_mesh_ros",
        executable="estimator_node",
        name="hand_mesh_estimator",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "device": LaunchConfiguration("device"),
                "hand_model": LaunchConfiguration("hand_model"),
                "image_transport": LaunchConfiguration("image_transport"),
                "depth_topic": LaunchConfiguration("depth_topic"),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        output="screen",
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", os.path.join(share, "rviz", "hand_mesh.rviz")],
        output="screen",
    )
    rviz_on_request = OpaqueFunction(
        function=rviz_if_installed,
        args=[rviz],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, estimator, rviz_on_request])
