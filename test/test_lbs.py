"""Linear blend skinning maths and mirroring, on small synthetic models (no asset needed)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import assert_close

from hand_mesh_ros.handmodel.data import HandModelData
from hand_mesh_ros.handmodel.lbs import batch_rigid_transform, blend_shapes, lbs
from hand_mesh_ros.handmodel.mirror import mirror_axis_angle, mirror_to_left
from hand_mesh_ros.handmodel.model import HandModel
from hand_mesh_ros.rotations import axis_angle_to_matrix
from hand_mesh_ros.topology import JOINT_PARENTS

DT = torch.float64


def _reference_rigid(rot, joints, parents):
    """Slow per-joint reference: world rotation/position by walking up the chain."""
    b, j = joints.shape[:2]
    world_rot = [None] * j
    world_pos = [None] * j
    for i, p in enumerate(parents):
        if p < 0:
            world_rot[i], world_pos[i] = rot[:, i], joints[:, i]
        else:
            world_rot[i] = world_rot[p] @ rot[:, i]
            offset = (joints[:, i] - joints[:, p])[..., None]
            world_pos[i] = world_pos[p] + (world_rot[p] @ offset)[..., 0]
    return torch.stack(world_rot, 1), torch.stack(world_pos, 1)


def _synthetic_data(num_vertices: int = 40, *, posedirs: bool = False) -> HandModelData:
    rng = np.random.default_rng(1)
    weights = rng.random((num_vertices, 16)) ** 4
    regressor = rng.random((16, num_vertices))
    return HandModelData(
        v_template=rng.normal(size=(num_vertices, 3)) * 0.05,
        faces=np.array([[0, 1, 2], [0, 2, 3]]),
        shapedirs=rng.normal(size=(num_vertices, 3, 10)) * 0.01,
        posedirs=rng.normal(size=(num_vertices, 3, 135)) * 0.01 if posedirs else None,
        j_regressor=regressor / regressor.sum(1, keepdims=True),
        skinning_weights=weights / weights.sum(1, keepdims=True),
        parents=np.array(JOINT_PARENTS),
        fingertip_vertex_ids=np.arange(5),
        hands_mean=rng.normal(size=45) * 0.2,
        hands_components=rng.normal(size=(12, 45)),
        side="right",
        name="synthetic",
    )


def test_blend_shapes_is_linear():
    betas = torch.randn(3, 10, dtype=DT)
    dirs = torch.randn(7, 3, 10, dtype=DT)
    expected = (dirs[None] * betas[:, None, None, :]).sum(-1)
    assert_close(blend_shapes(betas, dirs), expected, atol=1e-12)


def test_batch_rigid_transform_matches_reference():
    rot = axis_angle_to_matrix(torch.randn(2, 16, 3, dtype=DT))
    joints = torch.randn(2, 16, 3, dtype=DT)
    posed, rel = batch_rigid_transform(rot, joints, JOINT_PARENTS)
    ref_rot, ref_pos = _reference_rigid(rot, joints, JOINT_PARENTS)
    assert_close(posed, ref_pos, atol=1e-12, what="posed joints")
    assert_close(rel[..., :3, :3], ref_rot, atol=1e-12, what="rotations")
    # the relative transform maps each rest joint to its posed position
    moved = (rel[..., :3, :3] @ joints[..., None])[..., 0] + rel[..., :3, 3]
    assert_close(moved, ref_pos, atol=1e-12, what="rest joint -> posed joint")
    assert_close(rel[..., 3, :], torch.tensor([0, 0, 0, 1.0], dtype=DT).expand(2, 16, 4))


def test_lbs_rigid_vertex_follows_its_joint():
    """A vertex fully weighted to joint 3 moves with joint 3's world transform."""
    data = _synthetic_data()
    weights = torch.as_tensor(data.skinning_weights).clone()
    weights[0] = 0.0
    weights[0, 3] = 1.0
    pose = torch.randn(1, 48, dtype=DT) * 0.5
    args = [torch.as_tensor(a, dtype=DT) for a in (data.v_template, data.shapedirs)]
    reg = torch.as_tensor(data.j_regressor, dtype=DT)
    betas = torch.zeros(1, 10, dtype=DT)
    verts, joints = lbs(betas, pose, args[0], args[1], None, reg, JOINT_PARENTS, weights)
    rest_joints = reg @ args[0]
    rot = axis_angle_to_matrix(pose.view(1, 16, 3))
    ref_rot, ref_pos = _reference_rigid(rot, rest_joints[None], JOINT_PARENTS)
    expected = ref_rot[0, 3] @ (args[0][0] - rest_joints[3]) + ref_pos[0, 3]
    assert_close(verts[0, 0], expected, atol=1e-12)
    assert_close(joints, ref_pos, atol=1e-12)


def test_posedirs_are_driven_by_rotation_minus_identity():
    data = _synthetic_data(posedirs=True)
    model = HandModel(data, dtype=DT)
    no_corr = HandModel(dataclasses.replace(data, posedirs=None), dtype=DT)
    pose = torch.zeros(1, 45, dtype=DT)
    assert_close(model(pose).vertices, no_corr(pose).vertices, atol=1e-12, what="zero pose")
    pose[0, 3:6] = torch.tensor([0.3, -0.2, 0.1])  # joint 2 only
    # the correction is added before skinning: compare in the rest frame of a joint-0 vertex
    rot = axis_angle_to_matrix(pose[0, 3:6])
    feature = torch.zeros(135, dtype=DT)
    feature[9:18] = (rot - torch.eye(3, dtype=DT)).flatten()
    offset = torch.einsum("p,vcp->vc", feature, model.posedirs)
    weights = model.skinning_weights.clone()
    model.skinning_weights.zero_()
    model.skinning_weights[:, 0] = 1.0  # skin everything rigidly to the (unposed) root
    no_corr.skinning_weights.copy_(model.skinning_weights)
    diff = model(pose).vertices - no_corr(pose).vertices
    assert_close(diff[0], offset, atol=1e-12)
    model.skinning_weights.copy_(weights)


@pytest.mark.parametrize("with_posedirs", [False, True])
def test_mirror_to_left_is_the_reflection_for_mirrored_poses(with_posedirs):
    right_data = _synthetic_data(posedirs=with_posedirs)
    right = HandModel(right_data, dtype=DT)
    left = HandModel(mirror_to_left(right_data), dtype=DT)
    pose = torch.randn(2, 45, dtype=DT) * 0.4
    orient = torch.randn(2, 3, dtype=DT) * 0.4
    shape = torch.randn(2, 10, dtype=DT)
    out_r = right(pose, shape, orient)
    out_l = left(torch.as_tensor(mirror_axis_angle(pose.numpy())), shape,
                 torch.as_tensor(mirror_axis_angle(orient.numpy())))
    flip = torch.tensor([-1.0, 1.0, 1.0], dtype=DT)
    assert_close(out_l.vertices, out_r.vertices * flip, atol=1e-12, what="vertices")
    assert_close(out_l.keypoints, out_r.keypoints * flip, atol=1e-12, what="keypoints")
    left_data = mirror_to_left(right_data)
    assert left_data.side == "left"
    assert_close(left_data.hands_components[:, 1::3], -right_data.hands_components[:, 1::3])
    with pytest.raises(ValueError, match="right-hand"):
        mirror_to_left(left_data)


def test_pca_pose_and_hand_mean():
    data = _synthetic_data()
    full = HandModel(data, flat_hand_mean=False, dtype=DT)
    pca = HandModel(data, flat_hand_mean=False, use_pca=True, num_pca_comps=5, dtype=DT)
    coeffs = torch.randn(3, 5, dtype=DT)
    comps = torch.as_tensor(data.hands_components[:5], dtype=DT)
    mean = torch.as_tensor(data.hands_mean, dtype=DT)
    assert_close(pca(coeffs).vertices, full(coeffs @ comps).vertices, atol=1e-12)
    flat = HandModel(data, flat_hand_mean=True, dtype=DT)
    assert_close(full(torch.zeros(1, 45, dtype=DT)).vertices, flat(mean[None]).vertices, atol=1e-12)
    with pytest.raises(ValueError, match="pose"):
        pca(torch.zeros(1, 45, dtype=DT))
    with pytest.raises(ValueError, match="num_pca_comps"):
        HandModel(data, use_pca=True, num_pca_comps=13)


def test_posing_under_inference_mode_first_does_not_break_later_gradients():
    """The kinematic tree's levels are cached: nothing cached may be an inference tensor, or
    every later autograd through the shape fails ("Inference tensors cannot be saved")."""
    from hand_mesh_ros.handmodel import lbs
    from hand_mesh_ros.handmodel.model import load_hand_model

    model = load_hand_model("right")
    lbs._tree_plan.cache_clear()  # the first posing below fills it, under inference mode
    with torch.inference_mode():
        model(pose=torch.zeros(1, 45))
    shape = torch.zeros(1, 10, requires_grad=True)
    model(shape=shape).vertices.square().sum().backward()
    assert torch.isfinite(shape.grad).all() and shape.grad.abs().sum() > 0


@pytest.mark.parametrize("with_posedirs", [False, True])
def test_the_skeleton_skins_chosen_vertices_per_hand_or_per_group_of_hands(with_posedirs):
    from hand_mesh_ros.handmodel.skeleton import KeypointSkeleton

    model = HandModel(_synthetic_data(posedirs=with_posedirs), dtype=DT)
    skeleton = KeypointSkeleton(model)
    generator = torch.Generator().manual_seed(4)
    pose = torch.randn(6, 45, dtype=DT, generator=generator) * 0.5
    shape = torch.randn(6, 10, dtype=DT, generator=generator)
    full = model(pose=pose, shape=shape).vertices  # (6, V, 3)
    ids = torch.randint(0, full.shape[1], (6, 7), generator=generator)
    _, points = skeleton(pose, shape, ids)
    assert_close(points, torch.gather(full, 1, ids[..., None].expand(-1, -1, 3)), atol=1e-12)
    groups = ids[::3]  # hands 0-2 share row 0, hands 3-5 row 1 (a hand's probes)
    _, grouped = skeleton(pose, shape, groups)
    per_hand = groups.repeat_interleave(3, dim=0)
    assert_close(grouped, torch.gather(full, 1, per_hand[..., None].expand(-1, -1, 3)),
                 atol=1e-12)
    with pytest.raises(ValueError, match="do not divide"):
        skeleton(pose, shape, ids[:4])
