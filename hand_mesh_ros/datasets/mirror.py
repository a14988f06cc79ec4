"""Mirror a hand sample left <-> right: the image flipped about its vertical centre line.

With the image width W, pixels map u -> W - 1 - u (pixel centres at integers) and camera-frame
points x -> -x (M = diag(-1, 1, 1)). For projections to stay consistent the intrinsics become
K' = F K M with F = [[-1, 0, W - 1], [0, 1, 0], [0, 0, 1]]: fx, fy unchanged, cx -> W - 1 - cx,
skew negated. Hand-model parameters move to the mirrored model (``handmodel/mirror.py``: the
left model is the right one reflected in x): pose and global_orient (a, b, c) -> (a, -b, -c)
per joint, shape unchanged, transl -> M transl. Evaluated by the other side's model they give
exactly the mirrored vertices.
"""

from __future__ import annotations

import numpy as np

from hand_mesh_ros.datasets.sample import HandSample
from hand_mesh_ros.handmodel.mirror import mirror_axis_angle
from hand_mesh_ros.topology import OTHER_SIDE

REFLECT_X = np.diag([-1.0, 1.0, 1.0])  # M: camera-frame reflection


def flip_matrix(width: int) -> np.ndarray:
    """(3, 3) F: homogeneous pixels u -> width - 1 - u."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def mirror_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """K' = F K M (see the module docstring)."""
    return flip_matrix(width) @ np.asarray(K, dtype=np.float64) @ REFLECT_X


def mirror_params(
    pose: np.ndarray | None,
    shape: np.ndarray | None,
    global_orient: np.ndarray | None,
    transl: np.ndarray | None,
) -> dict[str, np.ndarray | None]:
    """Hand-model parameters of the mirrored hand for the other side's model (None stays)."""
    if pose is None:
        return {"pose": None, "shape": shape, "global_orient": global_orient, "transl": transl}
    return {
        "pose": mirror_axis_angle(pose),
        "shape": None if shape is None else shape.copy(),
        "global_orient": None if global_orient is None else mirror_axis_angle(global_orient),
        "transl": None if transl is None else transl @ REFLECT_X,
    }


def mirror_sample(sample: HandSample) -> HandSample:
    """The mirror image of ``sample``: a left hand becomes a right hand and vice versa."""
    width = sample.image.shape[1]
    kp2d = sample.keypoints_2d.copy()
    kp2d[:, 0] = width - 1.0 - kp2d[:, 0]
    return HandSample(
        image=np.ascontiguousarray(sample.image[:, ::-1]),
        K=mirror_intrinsics(sample.K, width),
        keypoints_2d=kp2d,
        visibility=sample.visibility.copy(),
        keypoints_3d=None if sample.keypoints_3d is None else sample.keypoints_3d @ REFLECT_X,
        mask=None if sample.mask is None else np.ascontiguousarray(sample.mask[:, ::-1]),
        side=OTHER_SIDE[sample.side],
        source=sample.source,
        **mirror_params(sample.pose, sample.shape, sample.global_orient, sample.transl),
    )
