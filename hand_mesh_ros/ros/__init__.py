"""ROS 2 glue: the estimator node (``node.py``), its parameters (``params.py``, ``config.py``),
message conversions (``conversions.py``, ``image_bridge.py``). The only part of the package that
imports rclpy; nothing is imported here so that ``hand_mesh_ros.ros.config`` stays ROS-free."""
