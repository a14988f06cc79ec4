"""ROS 2 glue: the estimator node (``node.py``), its parameters (``params.py``, ``config.py``),
its output table (``topics.py``), message conversions (``conversions.py``, ``image_bridge.py``).
The only part of the package that imports rclpy; nothing is imported here so that
``config.py`` and ``params_file.py`` stay ROS-free."""
