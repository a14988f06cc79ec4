"""pip install of the hand_mesh_ros library and its command-line tools.

A ROS 2 workspace builds the same package with colcon (package.xml / CMakeLists.txt).
"""

from setuptools import find_packages, setup

PACKAGE = "hand_mesh_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Dense 3D hand meshes (DHPE) from RGB images, as a ROS 2 package and library",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["assets/*.npz", "assets/*.pt", "assets/*.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["torch", "numpy<2", "opencv-python-headless", "scipy"],
    entry_points={
        "console_scripts": [
            "hand-mesh = hand_mesh_ros.cli:main",
            "hand-mesh-node = hand_mesh_ros.ros.main:main",
        ]
    },
)
