"""Test-time refinement (DHPE Eq. 13): fit hand parameters to 2D evidence by gradient steps."""

from hand_mesh_ros.fitting.init import align_to_keypoints
from hand_mesh_ros.fitting.refine import RefineConfig, RefineResult, refine
from hand_mesh_ros.fitting.roi import HandRoi, hand_roi

__all__ = [
    "HandRoi",
    "RefineConfig",
    "RefineResult",
    "align_to_keypoints",
    "hand_roi",
    "refine",
]
