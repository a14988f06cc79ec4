"""Rotation conversions against scipy, round trips and gradients at the identity."""

import numpy as np
import torch
from helpers import assert_close
from scipy.spatial.transform import Rotation

from hand_mesh_ros import rotations as rot


def _random_axis_angle(n: int) -> torch.Tensor:
    axis = torch.nn.functional.normalize(torch.randn(n, 3, dtype=torch.float64), dim=-1)
    angle = torch.rand(n, 1, dtype=torch.float64) * (np.pi - 1e-3)
    return axis * angle


def test_axis_angle_to_matrix_matches_scipy():
    aa = _random_axis_angle(64)
    expected = Rotation.from_rotvec(aa.numpy()).as_matrix()
    assert_close(rot.axis_angle_to_matrix(aa), expected, atol=1e-12, what="rotation matrix")


def test_quaternion_matches_scipy_and_real_part_first():
    aa = _random_axis_angle(64)
    xyzw = Rotation.from_rotvec(aa.numpy()).as_quat()
    wxyz = np.concatenate((xyzw[:, 3:], xyzw[:, :3]), axis=1)
    wxyz *= np.sign(wxyz[:, :1])
    assert_close(rot.axis_angle_to_quaternion(aa), wxyz, atol=1e-12, what="quaternion")
    assert_close(
        rot.quaternion_to_matrix(torch.as_tensor(wxyz)),
        Rotation.from_quat(xyzw).as_matrix(),
        atol=1e-12,
    )


def test_round_trips():
    aa = _random_axis_angle(128)
    assert_close(rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(aa)), aa, atol=1e-9)
    assert_close(rot.quaternion_to_axis_angle(rot.axis_angle_to_quaternion(aa)), aa, atol=1e-12)
    q = torch.nn.functional.normalize(torch.randn(128, 4, dtype=torch.float64), dim=-1)
    q = torch.where(q[:, :1] < 0, -q, q)
    assert_close(rot.matrix_to_quaternion(rot.quaternion_to_matrix(q)), q, atol=1e-9)


def test_near_pi_and_identity():
    aa = torch.tensor([[np.pi - 1e-7, 0, 0], [0, 0, 0], [1e-9, 0, 0]], dtype=torch.float64)
    r = rot.axis_angle_to_matrix(aa)
    assert_close(
        r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(3, 3, 3), atol=1e-12
    )
    back = rot.matrix_to_axis_angle(r)
    assert_close(back[1:], aa[1:], atol=1e-12)
    assert abs(back[0].norm().item() - (np.pi - 1e-7)) < 1e-6


def test_gradient_finite_at_identity_and_matches_finite_differences():
    aa = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    rot.axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()
    # d R / d aa at 0 is the skew generator: R ~ I + [aa]x
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rot.axis_angle_to_matrix, (x,))
    small = (1e-6 * torch.randn(2, 3, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(rot.axis_angle_to_matrix, (small,))
    q = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rot.quaternion_to_matrix, (q,))


def test_rotation_6d_is_orthonormal():
    m = rot.rotation_6d_to_matrix(torch.randn(10, 6, dtype=torch.float64))
    assert_close(
        m @ m.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(10, 3, 3), atol=1e-12
    )
    assert_close(torch.linalg.det(m), torch.ones(10, dtype=torch.float64), atol=1e-12)
