"""Synthetic hands: random plausible parameters and cameras, smooth sequences, clips.

``clip`` (rendered clips) is imported from ``hand_mesh_ros.synthetic.clip`` directly: it
needs the renderer, which the parameter sampling here does not.
"""

from hand_mesh_ros.synthetic.scenes import (
    SceneConfig,
    perturb_params,
    random_rotations,
    sample_scene_params,
)

__all__ = ["SceneConfig", "perturb_params", "random_rotations", "sample_scene_params"]
