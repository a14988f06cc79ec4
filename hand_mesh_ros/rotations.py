"""Rotation conversions in PyTorch.

Conventions: right-handed frames; axis-angle vectors in radians (direction = axis,
norm = angle); quaternions are (w, x, y, z) with the real part first; rotation matrices
act on column vectors (``x' = R @ x``). All functions accept any leading batch shape ``(...)``.
"""

from __future__ import annotations

import torch

# Below this angle (radians) the Taylor expansions are used; keeps gradients finite at 0.
_SMALL_ANGLE = 1e-4


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices. v: (..., 3) -> (..., 3, 3)."""
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    rows = (
        torch.stack((zero, -z, y), dim=-1),
        torch.stack((z, zero, -x), dim=-1),
        torch.stack((-y, x, zero), dim=-1),
    )
    return torch.stack(rows, dim=-2)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. axis_angle: (..., 3) radians -> (..., 3, 3).

    Uses sin(t)/t and (1-cos t)/t^2 with series expansions near zero, so the result and
    its gradient are exact and finite at the identity.
    """
    theta_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small = theta_sq < _SMALL_ANGLE**2
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = safe_sq.sqrt()
    a = torch.where(small, 1.0 - theta_sq / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta_sq / 24.0, (1.0 - torch.cos(theta)) / safe_sq)
    k = skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(k)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion (w, x, y, z), normalised here -> (..., 3, 3)."""
    q = quaternion / quaternion.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    rows = (
        torch.stack((1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)), -1),
        torch.stack((2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)), -1),
        torch.stack((2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)), -1),
    )
    return torch.stack(rows, dim=-2)


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) radians -> (..., 4) unit quaternion (w, x, y, z)."""
    theta_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small = theta_sq < _SMALL_ANGLE**2
    theta = torch.where(small, torch.ones_like(theta_sq), theta_sq).sqrt()
    half_sinc = torch.where(small, 0.5 - theta_sq / 48.0, torch.sin(theta / 2) / theta)
    w = torch.where(small, 1.0 - theta_sq / 8.0, torch.cos(theta / 2))
    return torch.cat((w, axis_angle * half_sinc), dim=-1)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion (w, x, y, z) -> (..., 3) axis-angle with angle in [0, pi]."""
    q = quaternion / quaternion.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    q = torch.where(q[..., :1] < 0, -q, q)  # pick the hemisphere with w >= 0
    vec = q[..., 1:]
    sin_half = vec.norm(dim=-1, keepdim=True)
    half = torch.atan2(sin_half, q[..., :1])
    small = sin_half < _SMALL_ANGLE
    scale = torch.where(small, 2.0 + sin_half**2 / 3.0, 2.0 * half / sin_half.clamp_min(1e-12))
    return vec * scale


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 4) unit quaternion (w, x, y, z) with w >= 0.

    Picks, per element, the best-conditioned of the four standard formulas.
    """
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates_sq = torch.stack(
        (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22),
        dim=-1,
    )
    roots = candidates_sq.clamp_min(1e-12).sqrt()  # 2|w|, 2|x|, 2|y|, 2|z| up to sign
    r21_m12 = m[..., 2, 1] - m[..., 1, 2]
    r02_m20 = m[..., 0, 2] - m[..., 2, 0]
    r10_m01 = m[..., 1, 0] - m[..., 0, 1]
    r10_p01 = m[..., 1, 0] + m[..., 0, 1]
    r02_p20 = m[..., 0, 2] + m[..., 2, 0]
    r21_p12 = m[..., 2, 1] + m[..., 1, 2]
    quats = torch.stack(
        (
            torch.stack((roots[..., 0] ** 2, r21_m12, r02_m20, r10_m01), -1)
            / (2 * roots[..., 0:1]),
            torch.stack((r21_m12, roots[..., 1] ** 2, r10_p01, r02_p20), -1)
            / (2 * roots[..., 1:2]),
            torch.stack((r02_m20, r10_p01, roots[..., 2] ** 2, r21_p12), -1)
            / (2 * roots[..., 2:3]),
            torch.stack((r10_m01, r02_p20, r21_p12, roots[..., 3] ** 2), -1)
            / (2 * roots[..., 3:4]),
        ),
        dim=-2,
    )
    best = candidates_sq.argmax(dim=-1)
    q = torch.gather(quats, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 3) axis-angle, angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Continuous 6-d representation (two columns, Gram-Schmidt) -> (..., 3, 3)."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)
