"""Anatomical proportions of the open hand model and the skeleton built from them.

Canonical frame (right hand): wrist joint at the origin, metres, hand flat, fingers along -y,
palm facing -z (palm normal = -z), so the thumb lies on the +x side (a right hand seen from
its palm with the fingers up has its thumb on the viewer's right).

Sources (numbers below; see docs/hand_model.md for the table):
    [B92] Buchholz, Armstrong & Goldstein 1992, "Anthropometric data for describing the
          kinematics of the human hand", Ergonomics 35(3): segment lengths as fractions of
          hand length (wrist crease to middle fingertip).
    [G91] Greiner 1991, "Hand anthropometry of U.S. Army personnel" (TR-92/011) and
          [A2]  ANSUR II (Gordon et al. 2014): hand length, breadth, thickness, finger breadths
          and their standard deviations (sex-pooled, rounded).
    [C24] Chatzioglou, Pinar & Govsa 2024, Anat Cell Biol 57(2): finger-tip length differences
          (index-middle 10.7 mm, middle-ring 10.8 mm), used as a check.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# --- [G91]/[A2] sex-pooled means (m) and relative standard deviations ---------------------
HAND_LENGTH = 0.190  # wrist crease to middle fingertip; men ~0.194, women ~0.180
HAND_LENGTH_REL_SD = 0.05  # SD ~9.5 mm
PALM_BREADTH = 0.084  # across the metacarpal heads; men ~0.089, women ~0.079
PALM_BREADTH_REL_SD = 0.05  # SD ~4.2 mm
PALM_THICKNESS = 0.028  # at the 3rd metacarpal head
THICKNESS_REL_SD = 0.07  # SD ~2 mm (hand thickness)
FINGER_LENGTH_REL_SD = 0.035  # residual finger-length SD once hand length is fixed
THUMB_LENGTH_REL_SD = 0.045  # thumb segment lengths vary more than the fingers' [C24]
PALM_LENGTH_REL_SD = 0.035  # residual wrist-to-knuckle length SD once hand length is fixed
SPREAD_REL_SD = 0.08  # knuckle spacing / resting finger splay

# --- [B92] segment lengths / hand length: metacarpal, proximal, middle, distal ------------
SEGMENT_RATIOS: dict[str, tuple[float, ...]] = {
    "thumb": (0.251, 0.196, 0.158),  # metacarpal, proximal, distal (to the tip)
    "index": (0.374, 0.265, 0.143, 0.097),
    "middle": (0.373, 0.277, 0.170, 0.108),
    "ring": (0.336, 0.259, 0.165, 0.107),
    "little": (0.295, 0.206, 0.117, 0.093),
}
FINGERS4 = ("index", "middle", "ring", "little")

# Knuckle (MCP joint centre) x position as a fraction of palm breadth; thumb side = +x.
MCP_X_FRACTION = {"index": 0.345, "middle": 0.095, "ring": -0.145, "little": -0.36}
# Resting splay of each finger in the flat hand (degrees from -y towards +x).
FINGER_SPLAY_DEG = {"index": 5.0, "middle": 0.5, "ring": -5.0, "little": -11.0}

# Finger half-widths (m) at MCP, PIP, DIP and fingertip, from finger breadths [G91];
# the dorso-palmar half-thickness is FINGER_FLATNESS times the half-width.
FINGER_RADII = {
    "index": (0.0102, 0.0094, 0.0083, 0.0074),
    "middle": (0.0104, 0.0097, 0.0085, 0.0076),
    "ring": (0.0098, 0.0091, 0.0080, 0.0071),
    "little": (0.0088, 0.0080, 0.0071, 0.0063),
    "thumb": (0.0135, 0.0110, 0.0099, 0.0085),  # CMC (thenar), MCP, IP, tip
}
FINGER_FLATNESS = 0.88

# Thumb carpometacarpal joint relative to the wrist (fractions of hand length) and the
# directions of its metacarpal / phalanges in the flat hand (degrees from -y towards +x,
# and towards the palm side -z). Chosen to match a relaxed flat hand (thumb ~40 deg
# abducted, slightly palmar); no single published source.
THUMB_CMC = (0.115, -0.105, -0.045)
THUMB_MC_ANGLES_DEG = (38.0, 22.0)
THUMB_PHALANX_ANGLES_DEG = (24.0, 14.0)

WRIST_HALF_WIDTH = 0.029  # wrist breadth ~58 mm [A2]
WRIST_HALF_THICKNESS = 0.0175  # wrist thickness ~35-40 mm
WRIST_STUB = 0.022  # how far the closed forearm stub reaches beyond the wrist joint (+y)


@dataclass(frozen=True)
class HandParams:
    """Anthropometric parameters; each factor is 1 at the mean hand."""

    hand_length: float = HAND_LENGTH
    palm_width: float = 1.0
    palm_length: float = 1.0
    thickness: float = 1.0
    thumb_length: float = 1.0
    finger_length: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # FINGERS4 order
    spread: float = 1.0


# Shape coefficient k: (description, HandParams field, relative SD). A unit coefficient
# multiplies the field by (1 + SD); "finger_length:i" is entry i of finger_length.
SHAPE_COMPONENTS: tuple[tuple[str, str, float], ...] = (
    ("overall size (hand length, all dimensions)", "hand_length", HAND_LENGTH_REL_SD),
    ("palm width", "palm_width", PALM_BREADTH_REL_SD),
    ("palm length", "palm_length", PALM_LENGTH_REL_SD),
    ("thickness (palm and fingers)", "thickness", THICKNESS_REL_SD),
    ("thumb length", "thumb_length", THUMB_LENGTH_REL_SD),
    ("index length", "finger_length:0", FINGER_LENGTH_REL_SD),
    ("middle length", "finger_length:1", FINGER_LENGTH_REL_SD),
    ("ring length", "finger_length:2", FINGER_LENGTH_REL_SD),
    ("little length", "finger_length:3", FINGER_LENGTH_REL_SD),
    ("finger spacing and splay", "spread", SPREAD_REL_SD),
)


def _apply_component(params: HandParams, field: str, factor: float) -> HandParams:
    if field.startswith("finger_length:"):
        lengths = list(params.finger_length)
        lengths[int(field.split(":")[1])] *= factor
        return replace(params, finger_length=tuple(lengths))
    return replace(params, **{field: getattr(params, field) * factor})


def _direction(angle_xy_deg: float, angle_z_deg: float = 0.0) -> np.ndarray:
    """Unit vector tilted angle_xy from -y towards +x, then angle_z towards -z."""
    a, b = np.radians(angle_xy_deg), np.radians(angle_z_deg)
    return np.array([np.sin(a) * np.cos(b), -np.cos(a) * np.cos(b), -np.sin(b)])


@dataclass(frozen=True)
class Skeleton:
    """Joint centres in MANO order (16, 3), fingertips (5, 3) thumb..little, radii per chain."""

    joints: np.ndarray
    tips: np.ndarray
    params: HandParams

    @property
    def scale(self) -> float:
        return self.params.hand_length / HAND_LENGTH


# MANO joint indices of each finger (topology.FINGER_JOINTS, repeated to keep tools standalone).
CHAIN = {"index": (1, 2, 3), "middle": (4, 5, 6), "little": (7, 8, 9), "ring": (10, 11, 12),
         "thumb": (13, 14, 15)}
TIP_ORDER = ("thumb", "index", "middle", "ring", "little")


def build_skeleton(params: HandParams = HandParams()) -> Skeleton:
    """Joint centres and fingertip points (metres, canonical frame) for ``params``."""
    hl = params.hand_length
    joints = np.zeros((16, 3))
    tips = np.zeros((5, 3))
    middle = SEGMENT_RATIOS["middle"]
    base_reach = 1.0 - sum(middle[1:])  # wrist-to-middle-MCP distance / hand length
    breadth = PALM_BREADTH * params.palm_width * hl / HAND_LENGTH
    for f, name in enumerate(FINGERS4):
        ratios = SEGMENT_RATIOS[name]
        reach = (base_reach - (middle[0] - ratios[0])) * hl * params.palm_length
        x = MCP_X_FRACTION[name] * breadth * params.spread
        mcp = np.array([x, -reach, 0.0])
        direction = _direction(FINGER_SPLAY_DEG[name] * params.spread)
        points = [mcp]
        for ratio in ratios[1:]:
            points.append(points[-1] + ratio * hl * params.finger_length[f] * direction)
        joints[list(CHAIN[name])] = points[:3]
        tips[TIP_ORDER.index(name)] = points[3]
    cmc = np.array(THUMB_CMC) * hl
    cmc[0] *= params.palm_width * params.spread
    cmc[1] *= params.palm_length
    thumb = SEGMENT_RATIOS["thumb"]
    mcp = cmc + thumb[0] * hl * params.thumb_length * _direction(*THUMB_MC_ANGLES_DEG)
    phal = _direction(*THUMB_PHALANX_ANGLES_DEG)
    ip = mcp + thumb[1] * hl * params.thumb_length * phal
    joints[list(CHAIN["thumb"])] = (cmc, mcp, ip)
    tips[0] = ip + thumb[2] * hl * params.thumb_length * phal
    return Skeleton(joints=joints, tips=tips, params=params)


def shape_params(delta: np.ndarray, base: HandParams = HandParams()) -> HandParams:
    """Parameters after moving ``delta`` (10,) standard deviations along each component."""
    params = base
    for (_, field, rel_sd), d in zip(SHAPE_COMPONENTS, delta, strict=True):
        if d:
            params = _apply_component(params, field, 1.0 + rel_sd * float(d))
    return params
