"""Synthetic hands: random plausible parameters and cameras, smooth sequences, clips, depth.

``clip`` (rendered clips, optionally with aligned depth) and ``depth_camera`` (clean scene
depth, the RealSense-class ``DepthNoiseModel``, a held occluder) are imported from
``hand_mesh_ros.synthetic.clip`` and ``hand_mesh_ros.synthetic.depth_camera`` directly: they
need the renderer, which the parameter sampling here does not.
"""

from hand_mesh_ros.synthetic.scenes import (
    SceneConfig,
    perturb_params,
    random_rotations,
    sample_scene_params,
)

__all__ = ["SceneConfig", "perturb_params", "random_rotations", "sample_scene_params"]
