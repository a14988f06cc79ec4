"""Named test poses of the open hand, built from flexion/abduction angles (degrees).

Axis-angle per joint relative to the parent, in canonical axes (MANO semantics). Finger
flexion turns about the finger's in-palm perpendicular (positive = towards the palm, -z),
abduction about -z/+z (positive = towards the thumb side, +x for the right hand); the thumb
flexes about axes perpendicular to its bones that curl it across the palm. Defined on the
right hand's rest skeleton; use ``mirror_axis_angle`` for the left hand.
"""

from __future__ import annotations

import numpy as np

CHAIN = {"index": (1, 2, 3), "middle": (4, 5, 6), "little": (7, 8, 9), "ring": (10, 11, 12),
         "thumb": (13, 14, 15)}
# Direction in which the thumb curls (towards the little finger and the palm), canonical frame.
THUMB_CURL_TOWARDS = np.array([-0.5, 0.2, -1.0])
# Direction in which the thumb metacarpal moves in opposition (across and in front of the palm).
THUMB_OPPOSE_TOWARDS = np.array([-0.3, 0.0, -1.0])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _bend_axis(direction: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """Axis u with u x direction ~ towards: rotating about u moves ``direction`` to ``towards``."""
    towards = towards - (towards @ direction) * direction
    return _unit(np.cross(direction, _unit(towards)))


def finger_angles(rest_joints: np.ndarray, rest_tips: dict[str, np.ndarray],
                  flex: dict[str, tuple[float, float, float]],
                  abduct: dict[str, float] | None = None) -> np.ndarray:
    """(45,) pose from per-finger flexion of its three joints and MCP abduction (degrees).

    rest_joints: (16, 3) rest skeleton; rest_tips: finger -> (3,) rest tip.
    """
    abduct = abduct or {}
    pose = np.zeros((16, 3))
    for finger, joints in CHAIN.items():
        angles = np.radians(flex.get(finger, (0.0, 0.0, 0.0)))
        for k, j in enumerate(joints):
            end = rest_joints[joints[k + 1]] if k < 2 else rest_tips[finger]
            direction = _unit(end - rest_joints[j])
            if finger == "thumb":
                towards = THUMB_OPPOSE_TOWARDS if k == 0 else THUMB_CURL_TOWARDS
                axis = _bend_axis(direction, towards)
            else:
                axis = _bend_axis(direction, np.array([0.0, 0.0, -1.0]))
            pose[j] = angles[k] * axis
        if finger in abduct:
            pose[joints[0]] += np.radians(abduct[finger]) * np.array([0.0, 0.0, 1.0])
    return pose[1:].reshape(45)


# name -> (flexion per finger (MCP/CMC, PIP/MCP, DIP/IP), abduction per finger), degrees.
POSES: dict[str, tuple[dict, dict]] = {
    "flat": ({}, {}),
    "fist": ({"index": (70, 100, 60), "middle": (70, 100, 60), "ring": (70, 100, 60),
              "little": (70, 100, 60), "thumb": (35, 30, 35)}, {}),
    "point": ({"middle": (70, 100, 60), "ring": (70, 100, 60), "little": (70, 100, 60),
               "thumb": (35, 30, 35)}, {}),
    "pinch": ({"index": (40, 45, 25), "middle": (25, 30, 20), "ring": (25, 30, 20),
               "little": (25, 30, 20), "thumb": (20, 0, 0)}, {"thumb": -10}),
    "ok": ({"index": (45, 50, 30), "thumb": (20, 10, 15), "middle": (8, 8, 5),
            "ring": (10, 10, 5), "little": (12, 10, 5)},
           {"thumb": -10, "middle": -3, "ring": -8, "little": -15}),
    "spread": ({"thumb": (-10, 0, 0)},
               {"index": 12, "middle": 0, "ring": -10, "little": -20, "thumb": 12}),
}


def named_pose(name: str, rest_joints: np.ndarray, rest_tips: dict[str, np.ndarray]) -> np.ndarray:
    """(45,) axis-angle pose for one of ``POSES``."""
    flex, abduct = POSES[name]
    return finger_angles(rest_joints, rest_tips, flex, abduct)
