"""Turn a right-hand model into a left-hand one by reflecting x (x -> -x).

With the reflection M = diag(-1, 1, 1), a pose rotation R of the right hand becomes M R M on
the left hand, i.e. the axis-angle vector (a, b, c) becomes (a, -b, -c). Pose correctives are
linear in the entries (R - I)_ik, which pick up the sign m_i m_k, and their offsets pick up
m_c on the output coordinate. Face winding is reversed so that normals stay outward.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hand_mesh_ros.handmodel.data import HandModelData
from hand_mesh_ros.topology import NUM_JOINTS

# Sign of each coordinate under the reflection.
_REFLECT = np.array([-1.0, 1.0, 1.0])
# Sign of each axis-angle component under the reflection: (a, b, c) -> (a, -b, -c).
_AXIS_ANGLE_SIGN = np.array([1.0, -1.0, -1.0])


def mirror_axis_angle(pose: np.ndarray) -> np.ndarray:
    """(..., 3 n) axis-angle vectors (n joints) -> their mirror images (a, -b, -c) per joint."""
    pose = np.asarray(pose)
    per_joint = pose.reshape(*pose.shape[:-1], -1, 3) * _AXIS_ANGLE_SIGN
    return per_joint.reshape(pose.shape)


def _mirror_posedirs(posedirs: np.ndarray) -> np.ndarray:
    """(V, 3, 135) -> (V, 3, 135) with signs m_c (output) * m_i m_k (feature entry)."""
    entry_sign = np.outer(_REFLECT, _REFLECT).reshape(9)  # row-major (i, k)
    feature_sign = np.tile(entry_sign, NUM_JOINTS - 1)
    return posedirs * _REFLECT[None, :, None] * feature_sign[None, None, :]


def mirror_to_left(data: HandModelData) -> HandModelData:
    """Reflect a right-hand model to a left-hand one (side="left").

    Vertices, shape directions and pose correctives are reflected, faces re-oriented, PCA
    pose quantities mirrored per joint; joint regressor, skinning weights, parents and
    fingertip ids are unchanged (the vertex order is kept).
    """
    if data.side != "right":
        raise ValueError(f"mirror_to_left expects a right-hand model, got side={data.side!r}")
    return dataclasses.replace(
        data,
        v_template=data.v_template * _REFLECT,
        faces=data.faces[:, ::-1].copy(),
        shapedirs=data.shapedirs * _REFLECT[None, :, None],
        posedirs=None if data.posedirs is None else _mirror_posedirs(data.posedirs),
        hands_mean=mirror_axis_angle(data.hands_mean),
        hands_components=None
        if data.hands_components is None
        else mirror_axis_angle(data.hands_components),
        side="left",
    )
