"""Synthetic hands: random plausible parameters and cameras, and smooth sequences."""

from hand_mesh_ros.synthetic.scenes import (
    SceneConfig,
    perturb_params,
    random_rotations,
    sample_scene_params,
)

__all__ = ["SceneConfig", "perturb_params", "random_rotations", "sample_scene_params"]
