"""Which side a 3D hand skeleton shows: its chirality, and the physical side it decides.

One rule for every 3D skeleton in a camera-like frame: mediapipe's world landmarks
(``detect/mediapipe_hands.py``, where the measurements of the threshold are) and the
detected keypoints lifted by an aligned depth image (``pipeline/depth_side.py``).
"""

from __future__ import annotations

import numpy as np

from hand_mesh_ros.topology import OTHER_SIDE

# |chirality| from which a skeleton decides the side (measured: detect/mediapipe_hands.py)
CHIRALITY_MIN = 0.2


def chirality(world_keypoints: np.ndarray) -> float:
    """How clearly (21, 3) landmarks in a camera-like frame (x right, y down, z forward) are a
    right hand (> 0) or a left hand (< 0): the mean offset of the four fingertips from their
    knuckles along the palm's normal (index MCP - wrist) x (little MCP - wrist), over the
    wrist -> middle MCP length. Fingers bend towards the palm, which that normal points into
    for a right hand and out of for a left one; a flat hand gives ~0 (no verdict)."""
    k = np.asarray(world_keypoints, dtype=np.float64)
    normal = np.cross(k[5] - k[0], k[17] - k[0])
    palm = np.linalg.norm(k[9] - k[0])
    size = np.linalg.norm(normal)
    if palm < 1e-9 or size < 1e-12:
        return 0.0
    bend = (k[[8, 12, 16, 20]] - k[[5, 9, 13, 17]]) @ (normal / size)
    return float(bend.mean() / palm)


def physical_side(label_side: str, world_keypoints: np.ndarray | None, mirrored: bool) -> str:
    """The hand's physical side: the one a 3D skeleton of it (mediapipe's world landmarks,
    or its keypoints lifted by depth) shows where its chirality is clear (the skeleton's frame
    is the image's, so a mirrored image shows the other side), else the label's (already the
    physical side)."""
    if world_keypoints is None:
        return label_side
    c = chirality(world_keypoints)
    if abs(c) < CHIRALITY_MIN:
        return label_side
    shown = "right" if c > 0 else "left"
    return OTHER_SIDE[shown] if mirrored else shown
