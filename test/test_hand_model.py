"""The bundled open hand model: asset integrity, forward semantics, shapes, sides, gradients."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from helpers import REPO_ROOT, assert_close

from hand_mesh_ros.handmodel import mesh_checks
from hand_mesh_ros.handmodel.data import HandModelData
from hand_mesh_ros.handmodel.mirror import mirror_axis_angle
from hand_mesh_ros.handmodel.model import OPEN_HAND_ASSET, HandOutput, load_hand_model
from hand_mesh_ros.rotations import axis_angle_to_matrix
from hand_mesh_ros.topology import FINGER_JOINTS, FINGERS, TIP_KEYPOINTS

sys.path.insert(0, str(REPO_ROOT / "tools"))
from open_hand.anatomy import build_skeleton, shape_params  # noqa: E402
from open_hand.poses import named_pose  # noqa: E402

DT = torch.float64
FLIP = torch.tensor([-1.0, 1.0, 1.0], dtype=DT)


@pytest.fixture(scope="module")
def data() -> HandModelData:
    return HandModelData.load_npz(OPEN_HAND_ASSET)


@pytest.fixture(scope="module")
def right():
    return load_hand_model("right", dtype=DT)


@pytest.fixture(scope="module")
def left():
    return load_hand_model("left", dtype=DT)


def _rest_tips(model) -> dict[str, np.ndarray]:
    keypoints = model.rest_keypoints()[0].numpy()
    return {f: keypoints[TIP_KEYPOINTS[i]] for i, f in enumerate(FINGERS)}


def _pose(model, name: str) -> torch.Tensor:
    rest_joints = model().joints[0].numpy()
    return torch.as_tensor(named_pose(name, rest_joints, _rest_tips(model)))[None]


# --- the asset ------------------------------------------------------------------------------


def test_asset_arrays(data):
    v = data.num_vertices
    assert 700 <= v <= 1600
    assert data.faces.shape[1] == 3 and data.faces.dtype == np.int64
    assert data.shapedirs.shape == (v, 3, 10) and data.posedirs is None
    assert data.side == "right" and data.name == "open_hand"
    assert np.all(data.hands_mean == 0)
    assert OPEN_HAND_ASSET.stat().st_size < 300_000


def test_asset_mesh_is_closed_oriented_and_outward(data):
    assert mesh_checks.is_watertight(data.faces)
    assert mesh_checks.is_consistently_oriented(data.faces)
    assert mesh_checks.euler_characteristic(data.v_template, data.faces) == 2
    volume = mesh_checks.signed_volume(data.v_template, data.faces)
    assert 2.0e-4 < volume < 5.0e-4  # m^3: a hand is ~0.3-0.45 litre


def test_asset_weights_and_regressor(data):
    w = data.skinning_weights
    assert w.min() >= 0
    assert_close(w.sum(1), np.ones(len(w)), atol=1e-12, what="skinning row sums")
    assert np.mean((w > 0).sum(1) <= 3) > 0.8  # mostly 1-3 joints per vertex
    reg = data.j_regressor
    assert reg.min() >= 0
    assert_close(reg.sum(1), np.ones(16), atol=1e-9, what="regressor row sums")
    assert_close(reg @ data.v_template, build_skeleton().joints, atol=1e-9, what="joints")


def test_fingertip_vertices_are_the_finger_ends(data):
    tips = data.v_template[data.fingertip_vertex_ids]
    assert_close(tips, build_skeleton().tips, atol=0.004, what="tip vertices vs skeleton tips")


def test_generator_reproduces_the_asset(data):
    """Regenerating (deterministic, ~8 s) gives the committed asset."""
    import generate_open_hand

    fresh = generate_open_hand.generate()
    assert np.array_equal(fresh.faces, data.faces)
    assert np.array_equal(fresh.fingertip_vertex_ids, data.fingertip_vertex_ids)
    for key in ("v_template", "shapedirs", "j_regressor", "skinning_weights"):
        assert_close(getattr(fresh, key), getattr(data, key), atol=1e-9, what=key)


# --- forward ----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 4])
def test_forward_shapes_and_dtypes(batch):
    model = load_hand_model()
    out = model(pose=torch.zeros(batch, 45), shape=torch.zeros(batch, 10))
    assert isinstance(out, HandOutput)
    assert out.vertices.shape == (batch, model.num_vertices, 3)
    assert out.keypoints.shape == (batch, 21, 3)
    assert out.joints.shape == (batch, 16, 3)
    assert out.vertices.dtype == torch.float32
    assert model.faces.dtype == torch.long and model.device.type == "cpu"
    assert model.side == "right" and model.name == "open_hand"


def test_zero_pose_is_template_plus_translation(right):
    transl = torch.tensor([[0.1, -0.2, 0.5]], dtype=DT)
    out = right(transl=transl)
    assert_close(out.vertices[0], right.v_template + transl, atol=1e-12)
    assert_close(out.joints[0], right.j_regressor @ right.v_template + transl, atol=1e-12)


def test_global_orient_rotates_about_the_wrist(right):
    orient = torch.tensor([[0.3, -0.7, 0.2]], dtype=DT)
    transl = torch.tensor([[0.0, 0.01, 0.4]], dtype=DT)
    out = right(global_orient=orient, transl=transl)
    rot = axis_angle_to_matrix(orient[0])
    root = (right.j_regressor @ right.v_template)[0]
    expected = (right.v_template - root) @ rot.T + root + transl
    assert_close(out.vertices[0], expected, atol=1e-12)


def test_keypoint_order_and_handedness(right, left):
    kp = right.rest_keypoints()[0]
    wrist = kp[0]
    for finger, tip in zip(FINGERS, TIP_KEYPOINTS, strict=True):
        chain = kp[tip - 3 : tip + 1]  # MCP/CMC, PIP/MCP, DIP/IP, tip
        dist = (chain - wrist).norm(dim=1)
        assert torch.all(dist[1:] > dist[:-1]), finger
    assert kp[4, 0] > 0.03  # right thumb tip on +x (thumb side in the canonical frame)
    assert left.rest_keypoints()[0, 4, 0] < -0.03
    assert kp[12, 1] < -0.15  # fingers along -y


def test_pose_moves_only_descendants(right):
    pose = torch.zeros(1, 45, dtype=DT)
    index2 = FINGER_JOINTS["index"][1]
    pose[0, 3 * (index2 - 1)] = 1.0  # flex index PIP by 1 rad
    out = right(pose)
    moved = (out.vertices[0] - right.v_template).norm(dim=1) > 1e-12
    chain_weight = right.skinning_weights[:, index2:index2 + 2].sum(1)
    assert torch.all(moved == (chain_weight > 0))
    assert moved.sum() > 20
    kp_moved = (out.keypoints[0] - right.rest_keypoints()[0]).norm(dim=1) > 1e-9
    assert kp_moved.nonzero().flatten().tolist() == [7, 8]  # index DIP and tip
    # positive x-rotation flexes towards the palm (-z)
    assert out.keypoints[0, 8, 2] < -0.02


def test_metric_size(right):
    kp = right.rest_keypoints()[0]
    length = (kp[12] - kp[0]).norm().item()
    assert 0.18 <= length <= 0.20
    breadth = (kp[5] - kp[17]).norm().item()  # index MCP to little MCP
    assert 0.05 <= breadth <= 0.07


def test_shape_components_change_the_right_things(right):
    rest = right.rest_keypoints()[0]
    shapes = torch.eye(10, dtype=DT)
    kp = right.rest_keypoints(shapes)
    length = lambda k, a, b: (k[..., a, :] - k[..., b, :]).norm(dim=-1)  # noqa: E731
    base_len = length(rest, 0, 12)
    assert_close(length(kp[0], 0, 12) / base_len, torch.tensor(1.05, dtype=DT), atol=0.01)
    assert length(kp[1], 5, 17) > 1.02 * length(rest, 5, 17)  # palm width
    assert length(kp[2], 0, 9) > 1.02 * length(rest, 0, 9)  # palm length
    for k, (finger_tip, finger_mcp) in zip(range(5, 9), ((8, 5), (12, 9), (16, 13), (20, 17)),
                                           strict=True):
        grown = length(kp[k], finger_mcp, finger_tip) / length(rest, finger_mcp, finger_tip)
        assert 1.02 < grown < 1.06, k
        assert_close(length(kp[k], 0, 4), length(rest, 0, 4), atol=1e-4)  # thumb unchanged
    assert length(kp[4], 1, 4) > 1.03 * length(rest, 1, 4)  # thumb length
    vol = [mesh_checks.signed_volume(right(shape=s[None]).vertices[0].numpy(),
                                     right.faces.numpy()) for s in (shapes[3], -shapes[3])]
    assert vol[0] > 1.08 * vol[1]  # thickness


def test_shape_joints_follow_the_anthropometric_skeleton(right):
    """j_regressor @ (template + shapedirs) tracks the generator's skeleton at +-1 SD."""
    for k in range(10):
        for sign in (1.0, -1.0):
            delta = np.zeros(10)
            delta[k] = sign
            shape = torch.as_tensor(delta)[None]
            joints = right(shape=shape).joints[0]
            expected = build_skeleton(shape_params(delta)).joints
            assert_close(joints, expected, atol=1e-3, what=f"component {k} x {sign}")


def test_left_is_mirror_of_right(right, left):
    pose = torch.randn(2, 45, dtype=DT) * 0.3
    orient = torch.randn(2, 3, dtype=DT) * 0.3
    shape = torch.randn(2, 10, dtype=DT)
    out_r = right(pose, shape, orient)
    out_l = left(torch.as_tensor(mirror_axis_angle(pose.numpy())), shape,
                 torch.as_tensor(mirror_axis_angle(orient.numpy())))
    assert_close(out_l.keypoints, out_r.keypoints * FLIP, atol=1e-12)
    faces = left.faces.numpy()
    assert mesh_checks.signed_volume(out_l.vertices[0].numpy(), faces) > 2e-4
    assert mesh_checks.is_consistently_oriented(faces)
    assert left.side == "left"


def test_gradients_match_finite_differences(right):
    pose = (torch.randn(1, 45, dtype=DT) * 0.3).requires_grad_()
    shape = torch.randn(1, 10, dtype=DT).requires_grad_()
    orient = (torch.randn(1, 3, dtype=DT) * 0.3).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda p, s, o: right(p, s, o).keypoints, (pose, shape, orient), atol=1e-6, fast_mode=True
    )


@pytest.mark.parametrize("name", ["flat", "fist", "point"])
def test_no_self_intersections(right, name):
    verts = right(_pose(right, name)).vertices[0].numpy()
    assert mesh_checks.self_intersections(verts, right.faces.numpy()) == 0


def test_self_intersection_check_detects_penetration(right):
    """A finger pushed into the palm (hyper-flexed MCP) must be reported."""
    pose = torch.zeros(1, 45, dtype=DT)
    pose[0, 3 * (FINGER_JOINTS["middle"][0] - 1)] = 2.4  # ~140 deg MCP flexion
    verts = right(pose).vertices[0].numpy()
    assert mesh_checks.self_intersections(verts, right.faces.numpy()) > 0


# --- loading ------------------------------------------------------------------------------------


def test_load_errors(tmp_path, data):
    with pytest.raises(ValueError, match="side"):
        load_hand_model("middle")
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_hand_model(path=missing)
    path = tmp_path / "right.npz"
    data.save_npz(path)
    with pytest.raises(ValueError, match="right hand"):
        load_hand_model("left", path=path)
    loaded = load_hand_model("right", path=path, dtype=DT)
    assert loaded.flat_hand_mean
    assert_close(loaded().vertices[0], data.v_template, atol=1e-12)
