"""Anatomical pose prior: frames, sign conventions on a real forward pass, limits, sampling.

Models used: the synthetic MANO-structured right hand of ``test_mano_loader`` (always) and
the bundled open hand (when its asset exists), each also mirrored to a left hand.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from helpers import assert_close
from synthetic_mano import synthetic_mano_arrays

from hand_mesh_ros.handmodel.data import HandModelData
from hand_mesh_ros.handmodel.mano_loader import MANO_FINGERTIP_VERTEX_IDS, to_array
from hand_mesh_ros.handmodel.mirror import mirror_to_left
from hand_mesh_ros.handmodel.model import OPEN_HAND_ASSET, HandModel
from hand_mesh_ros.handmodel.prior import (
    DIP_PIP_RATIO,
    JointLimits,
    PosePrior,
    anatomical_frames,
    default_joint_limits,
)
from hand_mesh_ros.topology import FINGER_JOINTS, TIP_KEYPOINTS

FLEX, ABD, TWIST = 0, 1, 2
_FINGERS = ("thumb", "index", "middle", "ring", "little")


@functools.cache
def _synthetic_data() -> HandModelData:
    a = synthetic_mano_arrays()
    return HandModelData(
        v_template=a["v_template"], faces=a["f"].astype(np.int64), shapedirs=a["shapedirs"],
        posedirs=a["posedirs"], j_regressor=to_array(a["J_regressor"]),
        skinning_weights=a["weights"], parents=np.array([-1, *a["kintree_table"][0, 1:]]),
        fingertip_vertex_ids=np.array(MANO_FINGERTIP_VERTEX_IDS), hands_mean=a["hands_mean"],
        hands_components=a["hands_components"], side="right", name="mano",
    )


def _model_data(name: str) -> HandModelData:
    if name == "synthetic_mano":
        return _synthetic_data()
    if not OPEN_HAND_ASSET.is_file():
        pytest.skip("bundled open hand asset not generated yet")
    return HandModelData.load_npz(OPEN_HAND_ASSET)


@pytest.fixture(scope="module", params=["synthetic_mano", "open_hand"])
def right_data(request) -> HandModelData:
    return _model_data(request.param)


@pytest.fixture(params=["right", "left"])
def model(request, right_data) -> HandModel:
    data = right_data if request.param == "right" else mirror_to_left(right_data)
    return HandModel(data, flat_hand_mean=True).double()


def _palm_directions(rest: torch.Tensor, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit volar normal and unit radial (toward the thumb) direction of a rest skeleton."""
    sign = 1.0 if side == "right" else -1.0
    normal = torch.linalg.cross(rest[5] - rest[0], rest[17] - rest[0])
    radial = rest[5] - rest[17]
    return sign * normal / normal.norm(), radial / radial.norm()


def _tip_motion(model, prior, joint: int, axis: int, angle: float) -> torch.Tensor:
    """(5, 3) fingertip displacement when one anatomical angle of ``joint`` is set."""
    angles = torch.zeros(1, 15, 3, dtype=torch.float64)
    angles[0, joint - 1, axis] = angle
    posed = model(prior.from_anatomical(angles)).keypoints[0, list(TIP_KEYPOINTS)]
    return posed - model(None).keypoints[0, list(TIP_KEYPOINTS)]


def test_frames_orthonormal_and_right_handed(model):
    frames = PosePrior.from_model(model).frames
    eye = torch.eye(3, dtype=torch.float64).expand(15, 3, 3)
    assert_close(frames.transpose(1, 2) @ frames, eye, atol=1e-12, what="F^T F")
    assert_close(torch.linalg.det(frames), torch.ones(15, dtype=torch.float64), atol=1e-12)
    # twist = +bone (right) / -bone (left); flex and abd are perpendicular to the bone.
    rest = model.rest_keypoints()[0]
    index_bone = rest[6] - rest[5]
    sign = 1.0 if model.side == "right" else -1.0
    assert_close(frames[0, :, TWIST], sign * index_bone / index_bone.norm(), atol=1e-6)


@pytest.mark.parametrize("finger", ["index", "middle", "ring", "little"])
def test_positive_mcp_flexion_curls_toward_palm(model, finger):
    prior = PosePrior.from_model(model)
    rest = model.rest_keypoints()[0]
    volar, radial = _palm_directions(rest, model.side)
    f = _FINGERS.index(finger)
    move = _tip_motion(model, prior, FINGER_JOINTS[finger][0], FLEX, 0.5)
    assert move[f].norm() > 0.01  # metres: the tip really moves
    assert move[f] @ volar > 0.9 * move[f].norm(), f"{finger} tip does not move palm-ward"
    others = [i for i in range(5) if i != f]
    # Other fingers move only through pose correctives (random ones in the synthetic model).
    assert move[others].norm(dim=1).max() < 0.2 * move[f].norm()
    # Positive abduction moves the tip toward the thumb (radial), on both sides.
    move = _tip_motion(model, prior, FINGER_JOINTS[finger][0], ABD, 0.2)
    assert move[f] @ radial > 0.8 * move[f].norm()


def test_positive_thumb_flexion_curls_across_palm(model):
    prior = PosePrior.from_model(model)
    volar, radial = _palm_directions(model.rest_keypoints()[0], model.side)
    for joint in FINGER_JOINTS["thumb"]:
        move = _tip_motion(model, prior, joint, FLEX, 0.4)[0]
        assert move @ volar > 0.3 * move.norm() and move @ -radial > 0.0, f"thumb joint {joint}"


@pytest.fixture
def right_prior():
    return PosePrior.from_model(HandModel(_synthetic_data()).double())


def test_to_from_anatomical_round_trip_exact(right_prior):
    pose = torch.randn(64, 45, dtype=torch.float64)
    angles = right_prior.to_anatomical(pose)
    assert angles.shape == (64, 15, 3) and angles.dtype == torch.float64
    assert_close(right_prior.from_anatomical(angles), pose, atol=1e-14, what="pose round trip")
    angles = torch.randn(8, 15, 3, dtype=torch.float64)
    assert_close(right_prior.to_anatomical(right_prior.from_anatomical(angles)), angles,
                 atol=1e-14, what="angle round trip")
    # The rotation angle of each joint is preserved (frames are rotations).
    assert_close(angles.norm(dim=-1), right_prior.from_anatomical(angles).reshape(8, 15, 3)
                 .norm(dim=-1), atol=1e-14)


def test_penalty_zero_inside_positive_and_growing_outside(right_prior):
    lower, upper = right_prior.lower, right_prior.upper
    inside = lower + (upper - lower) * torch.rand(100, 15, 3, dtype=torch.float64)
    assert right_prior.penalty(right_prior.from_anatomical(inside)).abs().max() < 1e-24
    pip = FINGER_JOINTS["index"][1] - 1
    previous = 0.0
    for excess in (0.05, 0.1, 0.3):
        angles = right_prior.relaxed.clone()[None]
        angles[0, pip, FLEX] = upper[pip, FLEX] + excess
        value = float(right_prior.penalty(right_prior.from_anatomical(angles))[0])
        assert math.isclose(value, excess**2, rel_tol=1e-9) and value > previous
        previous = value
    angles = right_prior.relaxed.clone()[None]
    angles[0, 0, ABD] = lower[0, ABD] - 0.2  # index MCP abducted too far the other way
    assert math.isclose(float(right_prior(right_prior.from_anatomical(angles))[0]), 0.04,
                        rel_tol=1e-9)


def test_penalty_gradient_pushes_back_inside(right_prior):
    angles = right_prior.relaxed.clone()[None].repeat(2, 1, 1)
    pip, mcp = FINGER_JOINTS["middle"][1] - 1, FINGER_JOINTS["ring"][0] - 1
    angles[0, pip, FLEX] = right_prior.upper[pip, FLEX] + 0.2
    angles[1, mcp, ABD] = right_prior.lower[mcp, ABD] - 0.1
    pose = right_prior.from_anatomical(angles).requires_grad_(True)
    assert torch.autograd.gradcheck(right_prior.penalty, (pose,))
    right_prior.penalty(pose).sum().backward()
    stepped = right_prior.to_anatomical(pose.detach() - 0.1 * pose.grad)
    assert stepped[0, pip, FLEX] < angles[0, pip, FLEX]  # flexion reduced
    assert stepped[1, mcp, ABD] > angles[1, mcp, ABD]  # abduction raised
    assert (right_prior.penalty(pose.detach() - 0.1 * pose.grad) < right_prior.penalty(
        pose.detach())).all()


def test_samples_within_limits_diverse_coupled_and_deterministic(right_prior):
    poses = right_prior.sample(3000, generator=torch.Generator().manual_seed(3))
    assert poses.shape == (3000, 45)
    assert right_prior.penalty(poses).max() < 1e-20
    angles = right_prior.to_anatomical(poses)
    flex = angles[..., FLEX]
    pips = [FINGER_JOINTS[f][1] - 1 for f in ("index", "middle", "ring", "little")]
    dips = [FINGER_JOINTS[f][2] - 1 for f in ("index", "middle", "ring", "little")]
    assert flex[:, pips].std(dim=0).min() > 0.3  # radians: diverse curls
    slope = (flex[:, dips] * flex[:, pips]).sum(0) / flex[:, pips].square().sum(0)
    assert_close(slope, torch.full((4,), DIP_PIP_RATIO, dtype=torch.float64), atol=0.05,
                 what="DIP/PIP slope")
    corr = torch.corrcoef(flex[:, pips].T)
    assert corr[0, 1] > 0.4 and corr[1, 2] > 0.4 and corr[2, 3] > 0.4  # neighbours
    assert corr[0, 3] < corr[0, 1]  # index-little less than index-middle
    assert angles[..., ABD].std() < 0.15 and angles[..., TWIST].std() < 0.1
    again = right_prior.sample(3000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(poses, again)
    other = right_prior.sample(3000, generator=torch.Generator().manual_seed(4))
    assert not torch.allclose(poses, other)


def test_zero_spread_sample_is_the_relaxed_mean(right_prior):
    mean = right_prior.mean_pose()
    assert mean.shape == (45,)
    zero = right_prior.sample(3, generator=torch.Generator().manual_seed(0), spread=0.0)
    assert_close(zero, mean.expand(3, 45), atol=1e-12, what="spread=0 sample")
    angles = right_prior.to_anatomical(mean[None])[0]
    assert right_prior.penalty(mean[None]) == 0
    assert (angles[:, FLEX] > 0).all() and angles[:, 1:].abs().max() < 1e-12
    little, index = FINGER_JOINTS["little"][0] - 1, FINGER_JOINTS["index"][0] - 1
    assert angles[little, FLEX] > angles[index, FLEX]  # resting cascade


def test_mirrored_pose_has_same_anatomical_angles(right_data):
    right = HandModel(right_data).double()
    left = HandModel(mirror_to_left(right_data)).double()
    prior_r, prior_l = PosePrior.from_model(right), PosePrior.from_model(left)
    pose = 0.5 * torch.randn(16, 45, dtype=torch.float64)
    mirrored = (pose.reshape(16, 15, 3) * torch.tensor([1.0, -1.0, -1.0])).reshape(16, 45)
    assert_close(prior_l.to_anatomical(mirrored), prior_r.to_anatomical(pose), atol=1e-6)
    # Hence samples and penalties mirror too.
    sample_r = prior_r.sample(32, generator=torch.Generator().manual_seed(1))
    sample_l = prior_l.sample(32, generator=torch.Generator().manual_seed(1))
    expected = (sample_r.reshape(32, 15, 3) * torch.tensor([1.0, -1.0, -1.0])).reshape(32, 45)
    assert_close(sample_l, expected, atol=1e-6, what="left sample = mirrored right sample")
    assert_close(prior_l.penalty(mirrored), prior_r.penalty(pose), atol=1e-6)
    # The mirrored left hand's keypoints are the mirror of the right hand's.
    kp_r = right(pose).keypoints
    kp_l = left(mirrored).keypoints
    assert_close(kp_l * torch.tensor([-1.0, 1.0, 1.0]), kp_r, atol=1e-6)


def test_frames_do_not_depend_on_the_model_frame(right_prior):
    rest = HandModel(_synthetic_data()).double().rest_keypoints()[0]
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    rot = q * torch.sign(torch.linalg.det(q))
    frames = anatomical_frames(100.0 * rest @ rot.T + 1.0, "right")  # rotated, scaled, moved
    assert_close(frames, rot @ right_prior.frames, atol=1e-12)


def test_limits_validation():
    limits = default_joint_limits()
    assert len(limits) == 15
    index_mcp = limits[FINGER_JOINTS["index"][0] - 1]
    assert index_mcp.flex == (math.radians(-30), math.radians(90))
    with pytest.raises(ValueError, match="flex"):
        JointLimits(flex=(1.0, 0.0), abd=(0.0, 0.0), twist=(0.0, 0.0))
    with pytest.raises(ValueError, match="15"):
        PosePrior(torch.zeros(21, 3), "right", limits=limits[:3])
    with pytest.raises(ValueError, match="side"):
        anatomical_frames(torch.randn(21, 3), "middle")


def test_sampled_fingertips_stay_out_of_the_palm(right_data):
    """Bonus: posed index..little tips rarely enter a 2 cm slab over the palm."""
    model = HandModel(right_data).double()
    prior = PosePrior.from_model(model)
    rest = model.rest_keypoints()[0]
    volar, _ = _palm_directions(rest, "right")
    distal = rest[[5, 9, 13, 17]].mean(0) - rest[0]
    palm_length = distal.norm()
    poses = prior.sample(1000, generator=torch.Generator().manual_seed(5))
    tips = model(poses).keypoints[:, [8, 12, 16, 20]] - rest[0]
    along = tips @ (distal / palm_length)
    inside = ((tips @ volar).abs() < 0.01) & (along > 0) & (along < palm_length)
    assert inside.double().mean() < 0.01


def test_clamp_projects_into_the_limits_and_keeps_inside_poses():
    model = HandModel(HandModelData.load_npz(OPEN_HAND_ASSET), dtype=torch.float64)
    prior = PosePrior.from_model(model)
    inside = prior.sample(8, generator=torch.Generator().manual_seed(1))
    assert_close(prior.clamp(inside), inside, atol=1e-12)
    wild = 3.0 * torch.randn(8, 45, dtype=torch.float64)
    clamped = prior.clamp(wild)
    assert prior.penalty(wild).min() > 0
    assert_close(prior.penalty(clamped), torch.zeros(8, dtype=torch.float64), atol=1e-20)
