"""Linear blend skinning with MANO/SMPL semantics, as pure torch functions.

Conventions (shape glossary in ``topology.py``):
    - pose: one axis-angle vector (radians) per kinematic joint, relative to the parent,
      expressed in the axes of the canonical (model) frame; there are no per-joint rest
      rotations, so the rest pose is all zeros.
    - joint 0 is the root; its rotation is the global orientation and turns the whole hand
      about the root joint's rest position. Translation is added by the caller.
    - pose correctives (optional) are linear in the 135 entries of ``R_j - I`` of the 15
      non-root joints (row-major 3x3, joints 1..15 in order), as in MANO.
    - transforms are 4x4 homogeneous matrices acting on column vectors.
Units follow the inputs (metres for the hand models).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hand_mesh_ros.rotations import axis_angle_to_matrix


def blend_shapes(betas: torch.Tensor, shapedirs: torch.Tensor) -> torch.Tensor:
    """Linear shape offsets.

    Args:
        betas: (B, S) shape coefficients.
        shapedirs: (V, 3, S) offset per unit coefficient.
    Returns:
        (B, V, 3) vertex offsets.
    """
    if betas.shape[-1] != shapedirs.shape[-1]:
        raise ValueError(
            f"betas has {betas.shape[-1]} coefficients, shapedirs {shapedirs.shape[-1]}"
        )
    return torch.einsum("bs,vcs->bvc", betas, shapedirs)


def vertices_to_joints(j_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Regress joints. j_regressor: (J, V), vertices: (B, V, 3) -> (B, J, 3)."""
    return torch.einsum("jv,bvc->bjc", j_regressor, vertices)


def _homogeneous(rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation and (..., 3) translation -> (..., 4, 4)."""
    top = torch.cat((rot, trans[..., None]), dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat((top, bottom), dim=-2)


@dataclass(frozen=True)
class _TreePlan:
    """How to pose one kinematic tree, worked out once per ``parents`` (plain Python: a
    cached tensor made under ``torch.inference_mode`` could not take part in autograd later).
    children / their_parents: the non-root joints and their parents; levels: per depth below
    the roots, (its joints, the positions of their parents among the transforms computed so
    far); order: each joint's position there."""

    roots: tuple[int, ...]
    children: tuple[int, ...]
    their_parents: tuple[int, ...]
    levels: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    order: tuple[int, ...]


@functools.lru_cache(maxsize=16)
def _tree_plan(parents: tuple[int, ...]) -> _TreePlan:
    """ValueError unless parents precede children."""
    depth: list[int] = []
    for j, p in enumerate(parents):
        if p >= j:
            raise ValueError(f"parent {p} of joint {j} must precede it")
        depth.append(0 if p < 0 else depth[p] + 1)
    by_depth = [[j for j in range(len(parents)) if depth[j] == d] for d in range(max(depth) + 1)]
    position = {j: i for i, j in enumerate(by_depth[0])}
    levels = []
    for level in by_depth[1:]:
        levels.append((tuple(level), tuple(position[parents[j]] for j in level)))
        position.update({j: len(position) + i for i, j in enumerate(level)})
    children = tuple(j for j, p in enumerate(parents) if p >= 0)
    return _TreePlan(
        roots=tuple(by_depth[0]),
        children=children,
        their_parents=tuple(parents[j] for j in children),
        levels=tuple(levels),
        order=tuple(position[j] for j in range(len(parents))),
    )


def batch_rigid_transform(
    rot_mats: torch.Tensor, joints: torch.Tensor, parents: Sequence[int] | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose a kinematic tree.

    Args:
        rot_mats: (B, J, 3, 3) rotation of each joint relative to its parent.
        joints: (B, J, 3) rest-pose joint positions.
        parents: (J,) parent index per joint, -1 for the root; parents precede children.
    Returns:
        posed_joints: (B, J, 3) joint positions after posing.
        rel_transforms: (B, J, 4, 4) transforms taking a rest-pose point rigidly attached to
            joint j to its posed position (world transform times the inverse rest placement).
    """
    parents = tuple(int(p) for p in parents)
    if rot_mats.shape[-3] != len(parents) or joints.shape[-2] != len(parents):
        raise ValueError("rot_mats, joints and parents disagree on the number of joints")
    plan = _tree_plan(parents)
    rel_joints = joints.clone()
    rel_joints[:, plan.children] = joints[:, plan.children] - joints[:, plan.their_parents]
    local = _homogeneous(rot_mats, rel_joints)  # (B, J, 4, 4): child in parent's frame
    # one matrix product per depth of the tree (the roots, then each finger level at once)
    done = local[:, plan.roots]  # world transforms, in the order the levels compute them
    for level, parent_positions in plan.levels:
        done = torch.cat((done, done[:, parent_positions] @ local[:, level]), dim=1)
    world_t = done[:, plan.order]
    posed_joints = world_t[..., :3, 3]
    # Undo the rest placement: A_j = G_j @ [[I, -t_j], [0, 1]].
    shift = torch.einsum("bjrc,bjc->bjr", world_t[..., :3, :3], joints)
    rel = world_t.clone()
    rel[..., :3, 3] = posed_joints - shift
    return posed_joints, rel


def pose_feature(rot_mats: torch.Tensor) -> torch.Tensor:
    """(B, J, 3, 3) -> (B, 9 (J - 1)) entries of R_j - I for the non-root joints."""
    eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - eye).flatten(1)


def skin_vertices(
    vertices: torch.Tensor, weights: torch.Tensor, rel_transforms: torch.Tensor
) -> torch.Tensor:
    """Blend per-joint transforms and apply them.

    vertices (B, V, 3), weights (V, J), rel_transforms (B, J, 4, 4) -> (B, V, 3).
    """
    blended = torch.einsum("vj,bjrc->bvrc", weights, rel_transforms)
    rotated = torch.einsum("bvrc,bvc->bvr", blended[..., :3, :3], vertices)
    return rotated + blended[..., :3, 3]


def lbs(
    betas: torch.Tensor,
    full_pose: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor | None,
    j_regressor: torch.Tensor,
    parents: Sequence[int] | torch.Tensor,
    skinning_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shape, pose and skin a template.

    Args:
        betas: (B, S) shape coefficients.
        full_pose: (B, J * 3) axis-angle, joint 0 (global orientation) first, radians.
        v_template: (V, 3) rest vertices.
        shapedirs: (V, 3, S).
        posedirs: (V, 3, 9 (J - 1)) pose correctives or None.
        j_regressor: (J, V).
        parents: (J,) parent indices.
        skinning_weights: (V, J), rows sum to 1.
    Returns:
        vertices: (B, V, 3) posed vertices (no translation).
        joints: (B, J, 3) posed joints (no translation).
    """
    batch = betas.shape[0]
    num_joints = j_regressor.shape[0]
    if full_pose.shape != (batch, num_joints * 3):
        raise ValueError(
            f"full_pose must be ({batch}, {num_joints * 3}), got {tuple(full_pose.shape)}"
        )
    v_shaped = v_template + blend_shapes(betas, shapedirs)
    rest_joints = vertices_to_joints(j_regressor, v_shaped)
    rot_mats = axis_angle_to_matrix(full_pose.view(batch, num_joints, 3))
    v_posed = v_shaped
    if posedirs is not None:
        v_posed = v_shaped + torch.einsum("bp,vcp->bvc", pose_feature(rot_mats), posedirs)
    joints, rel = batch_rigid_transform(rot_mats, rest_joints, parents)
    return skin_vertices(v_posed, skinning_weights, rel), joints
