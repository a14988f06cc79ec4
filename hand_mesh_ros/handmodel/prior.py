"""Anatomical pose prior: per-joint anatomical frames, joint limits, a penalty and a sampler.

Poses are MANO-style finger poses (B, 45): axis-angle radians of the 15 non-root joints in the
order ``JOINT_NAMES[1:]`` of ``topology.py`` (index1-3, middle1-3, little1-3, ring1-3,
thumb1-3), each relative to its parent and expressed in the model's canonical axes -- the
full pose actually applied by LBS (``HandModel.full_finger_pose``: PCA projected, hands_mean
added). The prior works in any model's canonical frame because the anatomical frames are
built from that model's REST skeleton (21 keypoints, ``topology.py`` order):

- palm normal ``n`` (volar, out of the palm) = s * unit((index MCP - wrist) x (little MCP -
  wrist)) with s = +1 for a right hand, -1 for a left hand;
- for each joint, bone ``b`` = unit(child keypoint - joint keypoint); bend direction ``d`` =
  ``n`` for the fingers and unit(n + u) for the thumb (u = unit(little MCP - index MCP), the
  ulnar direction: the thumb curls across the palm), made perpendicular to ``b``;
- columns of the frame F_j = (flex, abd, twist): flex = b x d, twist = s * b,
  abd = twist x flex. F_j is orthonormal and right-handed for both sides.

Anatomical angles are the axis-angle components in that frame, ``theta_j = F_j^T aa_j``
(radians; exact and invertible). Signs, both sides alike: flex > 0 curls the finger toward
the palm (the thumb across it); abd > 0 moves a finger toward the thumb (radial deviation);
twist > 0 turns a right-hand finger counter-clockwise seen from its tip (the mirror image for
the left hand). A right pose and its mirror image on the mirrored left hand
(``mirror.mirror_axis_angle``) have the same anatomical angles. Limits and their sources:
``docs/pose_prior.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hand_mesh_ros.topology import (
    FINGER_JOINTS,
    KEYPOINT_FROM_JOINT,
    NUM_JOINTS,
    NUM_KEYPOINTS,
    NUM_POSE,
    SIDES,
)

NUM_FINGER_JOINTS = NUM_JOINTS - 1  # 15 articulated joints; row r is kinematic joint r + 1
WRIST, INDEX_MCP, LITTLE_MCP = 0, 5, 17  # keypoint indices defining the palm
# DIP flexion follows PIP flexion with this ratio when sampling (tendon coupling, ~2/3).
DIP_PIP_RATIO = 2.0 / 3.0
_EPS = 1e-9


@dataclass(frozen=True)
class JointLimits:
    """Range of one joint's anatomical angles, radians: (min, max) for flex, abd, twist."""

    flex: tuple[float, float]
    abd: tuple[float, float]
    twist: tuple[float, float]

    def __post_init__(self) -> None:
        for name in ("flex", "abd", "twist"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"JointLimits.{name}: min {low} > max {high}")

    @classmethod
    def from_degrees(cls, flex, abd, twist) -> JointLimits:
        def rad(pair):
            return (math.radians(pair[0]), math.radians(pair[1]))

        return cls(flex=rad(flex), abd=rad(abd), twist=rad(twist))


# Degrees: (flex, abd, twist) ranges per joint kind; sources in docs/pose_prior.md.
_MCP_ABD = {"index": (-20, 20), "middle": (-15, 15), "ring": (-15, 15), "little": (-20, 20)}
_PIP = ((0, 110), (-5, 5), (-5, 5))
_DIP = ((-10, 90), (-5, 5), (-5, 5))
_THUMB = (
    ((-30, 60), (-40, 40), (-30, 45)),  # thumb1 (CMC); generous: see docs
    ((-10, 55), (-10, 10), (-10, 10)),  # thumb2 (MCP)
    ((-15, 80), (-5, 5), (-5, 5)),  # thumb3 (IP)
)


def default_joint_limits() -> tuple[JointLimits, ...]:
    """15 ``JointLimits`` in MANO joint order (JOINT_NAMES[1:])."""
    by_joint: dict[int, JointLimits] = {}
    for finger, (mcp, pip, dip) in FINGER_JOINTS.items():
        if finger == "thumb":
            for joint, ranges in zip((mcp, pip, dip), _THUMB, strict=True):
                by_joint[joint] = JointLimits.from_degrees(*ranges)
            continue
        by_joint[mcp] = JointLimits.from_degrees((-30, 90), _MCP_ABD[finger], (-15, 15))
        by_joint[pip] = JointLimits.from_degrees(*_PIP)
        by_joint[dip] = JointLimits.from_degrees(*_DIP)
    return tuple(by_joint[j] for j in range(1, NUM_JOINTS))


# Relaxed-hand flexion, degrees (MCP, PIP) per finger -- the resting cascade, more flexion
# toward the little finger; DIP = DIP_PIP_RATIO * PIP. Thumb (CMC, MCP, IP).
_RELAXED_FLEX = {"index": (15, 20), "middle": (20, 25), "ring": (25, 30), "little": (30, 35)}
_RELAXED_THUMB = (10, 10, 10)
# Sampler spreads, in logit units of the position inside each joint's range.
FLEX_SCALE = 1.5
ABD_SCALE = 0.6
TWIST_SCALE = 0.4
# Sampled flexion stays above this (radians): strong hyperextension is rare in natural poses.
SAMPLE_FLEX_FLOOR = math.radians(-10.0)
DIP_NOISE = math.radians(5.0)  # radians, std of DIP flexion around DIP_PIP_RATIO * PIP
NEIGHBOUR_CORRELATION = 0.7  # of curl latents of neighbouring fingers (index->little chain)
THUMB_CORRELATION = 0.5  # of the thumb's curl latent with the index finger's
FINGER_SHARE = 0.7  # share of a joint's flexion variance explained by its finger's curl
_CHAIN = ("index", "middle", "ring", "little")


def _unit(v: torch.Tensor) -> torch.Tensor:
    norm = v.norm(dim=-1, keepdim=True)
    if bool((norm < _EPS).any()):
        raise ValueError("degenerate rest skeleton: zero-length bone or collinear palm points")
    return v / norm


def anatomical_frames(rest_keypoints: torch.Tensor, side: str) -> torch.Tensor:
    """(21, 3) rest keypoints (any frame, any unit) -> (15, 3, 3) frames, columns (flex,
    abd, twist), float64, MANO joint order. See the module docstring for the construction."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    kp = torch.as_tensor(rest_keypoints).detach().to("cpu", torch.float64)
    if kp.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"rest_keypoints must be (21, 3), got {tuple(kp.shape)}")
    sign = 1.0 if side == "right" else -1.0
    wrist = kp[WRIST]
    volar = sign * _unit(torch.linalg.cross(kp[INDEX_MCP] - wrist, kp[LITTLE_MCP] - wrist))
    ulnar = _unit(kp[LITTLE_MCP] - kp[INDEX_MCP])
    thumb_joints = set(FINGER_JOINTS["thumb"])
    frames = []
    for joint in range(1, NUM_JOINTS):
        k = KEYPOINT_FROM_JOINT.index(joint)
        bone = _unit(kp[k + 1] - kp[k])  # the child keypoint follows in topology order
        bend = _unit(volar + ulnar) if joint in thumb_joints else volar
        bend = _unit(bend - (bend @ bone) * bone)
        flex = torch.linalg.cross(bone, bend)
        twist = sign * bone
        abd = torch.linalg.cross(twist, flex)
        frames.append(torch.stack((flex, abd, twist), dim=-1))
    return torch.stack(frames)


def _limits_tensor(limits: tuple[JointLimits, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(limits) != NUM_FINGER_JOINTS:
        raise ValueError(f"need {NUM_FINGER_JOINTS} JointLimits, got {len(limits)}")
    table = torch.tensor(
        [[lim.flex, lim.abd, lim.twist] for lim in limits], dtype=torch.float64
    )  # (15, 3, 2)
    return table[..., 0], table[..., 1]


def _relaxed_angles() -> torch.Tensor:
    """(15, 3) relaxed-hand anatomical angles, radians (flexion only)."""
    angles = torch.zeros(NUM_FINGER_JOINTS, 3, dtype=torch.float64)
    for finger, (mcp, pip, dip) in FINGER_JOINTS.items():
        if finger == "thumb":
            flex = _RELAXED_THUMB
        else:
            mcp_deg, pip_deg = _RELAXED_FLEX[finger]
            flex = (mcp_deg, pip_deg, DIP_PIP_RATIO * pip_deg)
        for joint, degrees in zip((mcp, pip, dip), flex, strict=True):
            angles[joint - 1, 0] = math.radians(degrees)
    return angles


class PosePrior(torch.nn.Module):
    """Joint-limit penalty and plausible-pose sampler in anatomical joint frames.

    Args:
        rest_keypoints: (21, 3) rest (zero-pose) keypoints of the model, topology order.
        side: "right" or "left".
        limits: 15 ``JointLimits`` in MANO joint order; default ``default_joint_limits()``.
    Buffers (float64; methods cast to the input's dtype): ``frames`` (15, 3, 3),
    ``lower``/``upper`` (15, 3) radians, ``relaxed`` (15, 3) radians.
    """

    def __init__(
        self,
        rest_keypoints: torch.Tensor,
        side: str,
        *,
        limits: tuple[JointLimits, ...] | None = None,
    ) -> None:
        super().__init__()
        self.side = side
        lower, upper = _limits_tensor(limits or default_joint_limits())
        relaxed = _relaxed_angles()
        if bool(((relaxed < lower) | (relaxed > upper)).any()):
            raise ValueError("relaxed pose lies outside the joint limits")
        self.register_buffer("frames", anatomical_frames(rest_keypoints, side))
        self.register_buffer("lower", lower)
        self.register_buffer("upper", upper)
        self.register_buffer("relaxed", relaxed)

    @classmethod
    def from_model(cls, model, *, limits: tuple[JointLimits, ...] | None = None) -> PosePrior:
        """Prior for a ``HandModel``-like object (``rest_keypoints()``, ``side``)."""
        rest = model.rest_keypoints()
        rest = rest[0] if rest.dim() == 3 else rest
        return cls(rest.detach(), model.side, limits=limits)

    def to_anatomical(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, 45) axis-angle -> (B, 15, 3) (flex, abd, twist) radians: F_j^T aa_j."""
        if pose.dim() != 2 or pose.shape[1] != NUM_POSE:
            raise ValueError(f"pose must be (B, {NUM_POSE}), got {tuple(pose.shape)}")
        aa = pose.reshape(pose.shape[0], NUM_FINGER_JOINTS, 3)
        return torch.einsum("jki,bjk->bji", self.frames.to(pose.dtype), aa)

    def from_anatomical(self, angles: torch.Tensor) -> torch.Tensor:
        """(B, 15, 3) (flex, abd, twist) radians -> (B, 45) axis-angle: F_j theta_j."""
        if angles.dim() != 3 or angles.shape[1:] != (NUM_FINGER_JOINTS, 3):
            raise ValueError(f"angles must be (B, 15, 3), got {tuple(angles.shape)}")
        aa = torch.einsum("jik,bjk->bji", self.frames.to(angles.dtype), angles)
        return aa.reshape(angles.shape[0], NUM_POSE)

    def violations(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, 45) -> (B, 15, 3) signed limit violations in radians (0 inside the limits)."""
        angles = self.to_anatomical(pose)
        below = (self.lower.to(angles.dtype) - angles).clamp_min(0.0)
        above = (angles - self.upper.to(angles.dtype)).clamp_min(0.0)
        return above - below

    def penalty(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, 45) -> (B,) sum of squared limit violations, radians^2; 0 inside the limits."""
        return self.violations(pose).square().sum(dim=(1, 2))

    def clamp(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, 45) -> (B, 45): each anatomical angle clamped into its limits."""
        angles = self.to_anatomical(pose)
        lower, upper = self.lower.to(angles.dtype), self.upper.to(angles.dtype)
        return self.from_anatomical(torch.maximum(torch.minimum(angles, upper), lower))

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        """Same as ``penalty``."""
        return self.penalty(pose)

    def mean_pose(self) -> torch.Tensor:
        """(45,) relaxed hand (slight flexion, more toward the little finger), float64."""
        return self.from_anatomical(self.relaxed[None])[0]

    def sample(
        self, n: int, *, generator: torch.Generator | None = None, spread: float = 1.0
    ) -> torch.Tensor:
        """(n, 45) plausible poses (float64), all within the limits.

        Each finger has a curl latent, correlated along index-middle-ring-little
        (NEIGHBOUR_CORRELATION) and with the thumb (THUMB_CORRELATION); MCP/PIP flexion
        share it (FINGER_SHARE), DIP = DIP_PIP_RATIO * PIP + noise. Angles are mapped into
        their ranges (flexion floored at SAMPLE_FLEX_FLOOR) through a logistic around the
        relaxed pose, so ``spread=0`` returns ``mean_pose()`` and larger spreads widen the
        distribution.
        """
        device = generator.device if generator is not None else torch.device("cpu")

        def normal(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=generator, dtype=torch.float64, device=device)

        curls = _curl_latents(normal, n)
        latent = normal(n, NUM_FINGER_JOINTS, 3)
        latent[..., 1] *= ABD_SCALE
        latent[..., 2] *= TWIST_SCALE
        for finger, joints in FINGER_JOINTS.items():
            rows = [j - 1 for j in joints]
            own = latent[:, rows, 0]
            shared = curls[finger][:, None]
            latent[:, rows, 0] = FLEX_SCALE * _mix(shared, own, math.sqrt(FINGER_SHARE))
        lower, upper = self.lower.to(device), self.upper.to(device)
        floor = lower.clone()
        floor[:, 0] = floor[:, 0].clamp_min(SAMPLE_FLEX_FLOOR)
        angles = _squash(self.relaxed.to(device), floor, upper, spread * latent)
        for finger, (_, pip, dip) in FINGER_JOINTS.items():
            if finger == "thumb":
                continue
            coupled = DIP_PIP_RATIO * angles[:, pip - 1, 0] + spread * DIP_NOISE * normal(n)
            row = dip - 1
            angles[:, row, 0] = coupled.clamp(float(lower[row, 0]), float(upper[row, 0]))
        return self.from_anatomical(angles.to(self.frames.device))


def _mix(shared: torch.Tensor, own: torch.Tensor, rho: float) -> torch.Tensor:
    """rho * shared + sqrt(1 - rho^2) * own: unit variance, correlation rho with ``shared``."""
    return rho * shared + math.sqrt(1.0 - rho * rho) * own


def _curl_latents(normal, n: int) -> dict[str, torch.Tensor]:
    """(n,) unit-variance curl latent per finger: AR(1) chain index->little, thumb ~ index."""
    curls = {_CHAIN[0]: normal(n)}
    for previous, finger in zip(_CHAIN[:-1], _CHAIN[1:], strict=True):
        curls[finger] = _mix(curls[previous], normal(n), NEIGHBOUR_CORRELATION)
    curls["thumb"] = _mix(curls["index"], normal(n), THUMB_CORRELATION)
    return curls


def _squash(
    centre: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, offset: torch.Tensor
) -> torch.Tensor:
    """lower + (upper - lower) * sigmoid(logit(position of centre) + offset), per element."""
    width = (upper - lower).clamp_min(_EPS)
    position = ((centre - lower) / width).clamp(0.01, 0.99)
    return lower + width * torch.sigmoid(torch.logit(position) + offset)
