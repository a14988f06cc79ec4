"""A small synthetic right hand with MANO's keys, shapes and dtypes (778 vertices, 1538 faces).

Shared by the MANO-loader and prior tests; MANO's fingertip vertex ids are valid on it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from hand_mesh_ros.handmodel.mano_loader import KINTREE_NO_PARENT, MANO_FINGERTIP_VERTEX_IDS
from hand_mesh_ros.topology import JOINT_PARENTS, KEYPOINT_FROM_JOINT, KEYPOINT_PARENTS

NUM_VERTS = 778
NUM_FACES = 1538
RING_RADIUS = 0.004  # metres, offset of the 4 vertices regressing each joint

# A right hand: x toward the thumb (radial), y along the fingers, z out of the palm (volar).
_MCPS = {
    "index": (0.025, 0.09),
    "middle": (0.005, 0.095),
    "ring": (-0.013, 0.09),
    "little": (-0.03, 0.08),
}
_PHALANGES = {
    "index": (0.040, 0.025, 0.020),
    "middle": (0.045, 0.028, 0.022),
    "ring": (0.042, 0.027, 0.021),
    "little": (0.032, 0.020, 0.018),
}
_THUMB = ((0.02, 0.025, 0.012), (0.045, 0.05, 0.022), (0.06, 0.075, 0.026), (0.07, 0.095, 0.027))
_FIRST_KEYPOINT = {"thumb": 1, "index": 5, "middle": 9, "ring": 13, "little": 17}


def synthetic_keypoints() -> np.ndarray:
    """(21, 3) rest keypoints of a flat right hand, metres, in the frame described above."""
    kp = np.zeros((21, 3))
    kp[1:5] = _THUMB
    for finger, (x, y) in _MCPS.items():
        direction = np.array([3.0 * x, 1.0, 0.0])  # fingers fan out slightly
        direction /= np.linalg.norm(direction)
        k = _FIRST_KEYPOINT[finger]
        kp[k] = (x, y, 0.0)
        for step, length in enumerate(_PHALANGES[finger]):
            kp[k + step + 1] = kp[k + step] + length * direction
    return kp


def _bone_joint(child_keypoint: int) -> int:
    """Kinematic joint that moves the bone ending at ``child_keypoint``."""
    return KEYPOINT_FROM_JOINT[KEYPOINT_PARENTS[child_keypoint]]


def synthetic_mano_arrays(seed: int = 0) -> dict:
    """Arrays with MANO's keys, shapes and dtypes for the synthetic right hand."""
    rng = np.random.default_rng(seed)
    kp = synthetic_keypoints()
    joint_pos = np.array([kp[KEYPOINT_FROM_JOINT.index(j)] for j in range(16)])
    verts, owner = [], []
    ring = RING_RADIUS * np.array([[1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1]], dtype=float)
    for j in range(16):  # 4 vertices centred on each joint: the regressor averages them
        verts += list(joint_pos[j] + ring)
        owner += [max(JOINT_PARENTS[j], 0)] * 4
    free = NUM_VERTS - len(verts) - 5
    children = rng.choice([k for k in range(1, 21)], size=free)
    for child in children:  # points scattered around the bones
        t = rng.uniform(0.1, 0.9)
        point = kp[KEYPOINT_PARENTS[child]] * (1 - t) + kp[child] * t
        verts.append(point + rng.normal(scale=0.003, size=3))
        owner.append(_bone_joint(child))
    tips = list(MANO_FINGERTIP_VERTEX_IDS)
    others = [i for i in range(NUM_VERTS) if i not in tips]
    v_template = np.zeros((NUM_VERTS, 3))
    weights = np.zeros((NUM_VERTS, 16))
    v_template[others] = verts
    weights[others, owner] = 1.0
    for tip_vertex, tip_keypoint in zip(tips, (4, 8, 12, 16, 20), strict=True):
        v_template[tip_vertex] = kp[tip_keypoint]
        weights[tip_vertex, _bone_joint(tip_keypoint)] = 1.0
    rows = np.repeat(np.arange(16), 4)
    cols = np.array([others[i] for i in range(64)])
    regressor = scipy.sparse.csc_matrix((np.full(64, 0.25), (rows, cols)), shape=(16, NUM_VERTS))
    faces = np.argsort(rng.random((NUM_FACES, NUM_VERTS)), axis=1)[:, :3]  # 3 distinct ids
    kintree = np.array([[KINTREE_NO_PARENT, *JOINT_PARENTS[1:]], list(range(16))], np.int64)
    components = np.linalg.qr(rng.normal(size=(45, 45)))[0].T
    return {
        "v_template": v_template,
        "f": faces.astype(np.uint32),
        "weights": weights,
        "J_regressor": regressor,
        "shapedirs": rng.normal(scale=1e-3, size=(NUM_VERTS, 3, 10)),
        "posedirs": rng.normal(scale=1e-3, size=(NUM_VERTS, 3, 135)),
        "kintree_table": kintree,
        "J": regressor @ v_template,
        "hands_components": components,
        "hands_mean": rng.normal(scale=0.15, size=45),
        "hands_coeffs": rng.normal(size=(20, 45)),
        "bs_type": "lrotmin",
        "bs_style": "lbs",
    }


_REFLECT = np.array([-1.0, 1.0, 1.0])
_AXIS_ANGLE_SIGN = np.array([1.0, -1.0, -1.0])


def _mirror_pose(pose: np.ndarray) -> np.ndarray:
    """(..., 45) axis-angle -> its mirror image (a, -b, -c) per joint."""
    return (pose.reshape(*pose.shape[:-1], 15, 3) * _AXIS_ANGLE_SIGN).reshape(pose.shape)


def synthetic_mano_left_arrays(right: dict, seed: int = 1) -> dict:
    """A MANO-structured LEFT hand made from the right arrays the way MANO's release differs:
    the geometry mirrored (x -> -x, faces re-oriented, pose correctives and PCA mirrored), but
    not an exact mirror model: the shape directions are the right hand's unmirrored (the
    release's left shapedirs quirk) and hands_mean differs by a little noise. A pipeline that
    mirrored the right model instead of loading this file would not reproduce its meshes."""
    rng = np.random.default_rng(seed)
    entry_sign = np.tile(np.outer(_REFLECT, _REFLECT).reshape(9), 15)
    left = dict(right)
    left["v_template"] = right["v_template"] * _REFLECT
    left["f"] = right["f"][:, ::-1].copy()
    left["posedirs"] = right["posedirs"] * _REFLECT[None, :, None] * entry_sign[None, None, :]
    left["hands_mean"] = _mirror_pose(right["hands_mean"]) + rng.normal(scale=0.05, size=45)
    left["hands_components"] = _mirror_pose(right["hands_components"])
    left["shapedirs"] = right["shapedirs"].copy()  # unmirrored, as in the release
    left["J"] = right["J_regressor"] @ left["v_template"]
    return left


# Turns the synthetic hand's fingers from +y to +x (MANO's release lays its hand along x): a
# canonical frame unlike the open model's, where raw axis-angle poses would not transfer.
FINGERS_ALONG_X = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def rotated_arrays(arrays: dict, rotation: np.ndarray) -> dict:
    """The same hand with its canonical frame rotated (template and shape directions)."""
    out = dict(arrays, v_template=arrays["v_template"] @ rotation.T)
    out["shapedirs"] = np.einsum("ck,vks->vcs", rotation, arrays["shapedirs"])
    out["J"] = arrays["J_regressor"] @ out["v_template"]
    return out


def write_synthetic_mano_pair(folder, seed: int = 0, *, rotation=FINGERS_ALONG_X) -> tuple:
    """Write MANO_RIGHT.pkl and MANO_LEFT.pkl (plain arrays and a scipy sparse regressor with
    MANO's keys, shapes and dtypes; pickle protocol 2) into ``folder``; returns both paths.
    ``rotation``: of the canonical frame (None: fingers along +y as ``synthetic_keypoints``)."""
    import pickle
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    right = synthetic_mano_arrays(seed)
    if rotation is not None:
        right = rotated_arrays(right, rotation)
    paths = (folder / "MANO_RIGHT.pkl", folder / "MANO_LEFT.pkl")
    for path, arrays in zip(paths, (right, synthetic_mano_left_arrays(right)), strict=True):
        path.write_bytes(pickle.dumps(arrays, protocol=2))
    return paths
