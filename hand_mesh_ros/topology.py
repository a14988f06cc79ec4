"""Hand topology constants: kinematic joints, parents and the 21-keypoint order.

Shape glossary used across the package (written once, here):
    B batch, V vertices, F faces, J kinematic joints (16), K keypoints (21),
    S shape coefficients (10), P pose parameters (45 = 15 joints x 3 axis-angle),
    H/W image height/width in pixels.

Kinematic joints follow MANO's order (16):
    0 wrist; 1-3 index1-3; 4-6 middle1-3; 7-9 little1-3; 10-12 ring1-3; 13-15 thumb1-3.
Keypoints follow the RHD/FreiHAND/OpenPose order used by ``shared/data/hands`` (21):
    0 wrist; 1-4 thumb (CMC, MCP, IP, tip); 5-8 index (MCP, PIP, DIP, tip);
    9-12 middle; 13-16 ring; 17-20 little.
16 keypoints come from the joint regressor, the 5 tips are mesh vertices.
"""

from __future__ import annotations

NUM_JOINTS = 16
NUM_KEYPOINTS = 21
NUM_SHAPE = 10
NUM_POSE = 45  # 15 non-root joints x 3 axis-angle components (radians)

JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1",
    "index2",
    "index3",
    "middle1",
    "middle2",
    "middle3",
    "little1",
    "little2",
    "little3",
    "ring1",
    "ring2",
    "ring3",
    "thumb1",
    "thumb2",
    "thumb3",
)

# Parent of each kinematic joint (-1 for the root).
JOINT_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

# Finger name -> its three kinematic joints, proximal to distal.
FINGER_JOINTS: dict[str, tuple[int, int, int]] = {
    "thumb": (13, 14, 15),
    "index": (1, 2, 3),
    "middle": (4, 5, 6),
    "ring": (10, 11, 12),
    "little": (7, 8, 9),
}

# Fingers in keypoint order.
FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")

KEYPOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    "index_mcp",
    "index_pip",
    "index_dip",
    "index_tip",
    "middle_mcp",
    "middle_pip",
    "middle_dip",
    "middle_tip",
    "ring_mcp",
    "ring_pip",
    "ring_dip",
    "ring_tip",
    "little_mcp",
    "little_pip",
    "little_dip",
    "little_tip",
)

# For each keypoint: index of the kinematic joint it equals, or -1 for a fingertip vertex.
KEYPOINT_FROM_JOINT: tuple[int, ...] = (
    0,
    13,
    14,
    15,
    -1,
    1,
    2,
    3,
    -1,
    4,
    5,
    6,
    -1,
    10,
    11,
    12,
    -1,
    7,
    8,
    9,
    -1,
)

# Keypoint indices of the fingertips, in FINGERS order (thumb, index, middle, ring, little).
TIP_KEYPOINTS: tuple[int, ...] = (4, 8, 12, 16, 20)

# Parent of each keypoint in the 21-point skeleton (-1 for the wrist); used for bone
# lengths, drawing and skeleton normalisation.
KEYPOINT_PARENTS: tuple[int, ...] = (
    -1,
    0,
    1,
    2,
    3,
    0,
    5,
    6,
    7,
    0,
    9,
    10,
    11,
    0,
    13,
    14,
    15,
    0,
    17,
    18,
    19,
)

# The middle finger's MCP keypoint: the centre used by the paper's skeleton normalisation (Eq. 8).
MIDDLE_MCP_KEYPOINT = 9
WRIST_KEYPOINT = 0

SIDES: tuple[str, ...] = ("right", "left")
OTHER_SIDE: dict[str, str] = {"left": "right", "right": "left"}
