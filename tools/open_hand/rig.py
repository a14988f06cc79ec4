"""Rigging of the open hand mesh: skinning weights, joint regressor, shape directions.

- Skinning weights: Gaussian falloff of the distance to each joint's bone segments (so two
  neighbouring bones blend over ~2 sigma along the axis around their shared joint), a few
  iterations of uniform Laplacian smoothing over the mesh, tiny weights pruned.
- Joint regressor: per joint, non-negative weights over a ring of vertices around the joint
  (nearest vertices, axial distance weighted), closest to uniform, with the weighted mean equal to
  the joint centre (equality-constrained QP, solved with SLSQP).
- Shape directions: each anthropometric parameter is moved by +-1 SD; the template is
  deformed (not re-meshed) by the skinning-weighted blend of per-bone maps (bone start moves
  to its new joint, axial stretch by the bone-length ratio, radial scale by the thickness
  ratio; the palm follows a least-squares affine map of its outline and knuckles) and the
  central difference is the direction.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from open_hand.anatomy import (
    CHAIN,
    FINGERS4,
    TIP_ORDER,
    WRIST_STUB,
    Skeleton,
    build_skeleton,
    shape_params,
)
from open_hand.surface import palm_outline

PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
SKIN_SIGMA = 0.0042  # m, Gaussian falloff of the bone-distance weights
SKIN_SMOOTH_ITERS = 6
SKIN_SMOOTH_RATE = 0.5
SKIN_PRUNE = 0.01  # weights below this are dropped (rows renormalised)
RING_AXIAL_WEIGHT = 4.0  # axial distance weight when picking the vertex ring of a joint
RING_SIZES = (10, 14, 18, 24, 32, 48, 64)  # ring sizes tried until one encloses the joint
NUM_SHAPE = 10


def child_point(skel: Skeleton, j: int) -> np.ndarray:
    """End of joint j's bone: its child joint, or the fingertip for distal joints."""
    children = [c for c, p in enumerate(PARENTS) if p == j]
    if children:
        return skel.joints[children[0]]
    finger = next(name for name, chain in CHAIN.items() if chain[2] == j)
    return skel.tips[TIP_ORDER.index(finger)]


def bone_segments(skel: Skeleton) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(joint, start, end) segments; the root owns the wrist stub and the four metacarpals."""
    wrist = skel.joints[0]
    stub = wrist + np.array([0.0, WRIST_STUB * skel.scale, 0.0])
    segments = [(0, stub, wrist)]
    segments += [(0, wrist, skel.joints[CHAIN[f][0]]) for f in FINGERS4]
    segments += [(j, skel.joints[j], child_point(skel, j)) for j in range(1, 16)]
    return segments


def segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def vertex_neighbours(faces: np.ndarray, num_vertices: int) -> list[np.ndarray]:
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.sort(np.concatenate([edges, edges[:, ::-1]]), axis=1), axis=0)
    nbrs: list[list[int]] = [[] for _ in range(num_vertices)]
    for a, b in edges:
        nbrs[a].append(b)
        nbrs[b].append(a)
    return [np.array(n) for n in nbrs]


def skinning_weights(verts: np.ndarray, faces: np.ndarray, skel: Skeleton) -> np.ndarray:
    """(V, 16) smooth, non-negative, rows sum to 1."""
    dist = np.full((len(verts), 16), np.inf)
    for j, a, b in bone_segments(skel):
        dist[:, j] = np.minimum(dist[:, j], segment_distance(verts, a, b))
    sq = dist**2 - (dist**2).min(1, keepdims=True)
    w = np.exp(-sq / (2 * (SKIN_SIGMA * skel.scale) ** 2))
    w /= w.sum(1, keepdims=True)
    nbrs = vertex_neighbours(faces, len(verts))
    for _ in range(SKIN_SMOOTH_ITERS):
        mean = np.stack([w[n].mean(0) for n in nbrs])
        w = (1 - SKIN_SMOOTH_RATE) * w + SKIN_SMOOTH_RATE * mean
    w[w < SKIN_PRUNE] = 0.0
    return w / w.sum(1, keepdims=True)


def _ring(verts, weights, skel, j, count, restrict=True):
    """The ``count`` vertices nearest joint j (axial distance weighted), restricted to
    vertices owned by j or its parent: a ring around the joint."""
    centre = skel.joints[j]
    axis = child_point(skel, j) - centre if j else np.array([0.0, -1.0, 0.0])
    axis /= np.linalg.norm(axis)
    rel = verts - centre
    axial = rel @ axis
    radial_sq = (rel**2).sum(1) - axial**2
    allowed = np.isin(weights.argmax(1), list({j, PARENTS[j]} if j else {0})) | (not restrict)
    cost = np.where(allowed, RING_AXIAL_WEIGHT * axial**2 + radial_sq, np.inf)
    return np.argsort(cost)[:count]


def joint_regressor(verts: np.ndarray, weights: np.ndarray, skel: Skeleton) -> np.ndarray:
    """(16, V) non-negative rows summing to 1 with regressor @ verts == skel.joints."""
    reg = np.zeros((16, len(verts)))
    for j in range(16):
        for count, restrict in [(c, True) for c in RING_SIZES] + [(c, False) for c in RING_SIZES]:
            ids = _ring(verts, weights, skel, j, count, restrict)
            w = _ring_weights(verts[ids], skel.joints[j])
            if w is not None:
                reg[j, ids] = w
                break
        else:
            raise RuntimeError(f"no vertex ring encloses joint {j}")
    return reg


def _ring_weights(points: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """Non-negative weights near uniform with sum 1 and weighted mean ``target``, or None."""
    n = len(points)
    if n < 4:
        return None
    a = np.vstack([points.T, np.ones(n)])
    b = np.append(target, 1.0)
    w0 = np.full(n, 1.0 / n)
    res = minimize(lambda w: ((w - w0) ** 2).sum() * n, w0, jac=lambda w: 2 * (w - w0) * n,
                   bounds=[(0.0, None)] * n, method="SLSQP",
                   constraints=[{"type": "eq", "fun": lambda w: a @ w - b, "jac": lambda w: a}],
                   options={"ftol": 1e-14, "maxiter": 500})
    w = np.clip(res.x, 0.0, None)
    if not res.success or np.abs(a @ w - b).max() > 1e-9:
        return None
    return w


def _minimal_rotation(d0: np.ndarray, d1: np.ndarray) -> np.ndarray:
    """Rotation taking unit vector d0 to unit vector d1 about their common normal."""
    v = np.cross(d0, d1)
    c = float(d0 @ d1)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1.0 + c)


def _palm_affine(old: Skeleton, new: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """3x3 matrix and offset mapping the old palm to the new one (xy affine, z scale)."""
    knuckles = [CHAIN[f][0] for f in ("index", "middle", "ring", "little")] + [0, 13]
    src = np.vstack([palm_outline(old), old.joints[knuckles, :2]])
    dst = np.vstack([palm_outline(new), new.joints[knuckles, :2]])
    design = np.hstack([src, np.ones((len(src), 1))])
    coef, *_ = np.linalg.lstsq(design, dst, rcond=None)  # (3, 2)
    mat = np.eye(3)
    mat[:2, :2] = coef[:2].T
    mat[2, 2] = _thickness(new) / _thickness(old)
    offset = np.array([coef[2, 0], coef[2, 1], 0.0])
    return mat, offset


def _thickness(skel: Skeleton) -> float:
    return skel.scale * skel.params.thickness


def deform(verts: np.ndarray, weights: np.ndarray, old: Skeleton, new: Skeleton) -> np.ndarray:
    """Move template vertices from skeleton ``old`` to ``new`` (skinning-weighted bone maps)."""
    mat, offset = _palm_affine(old, new)
    out = weights[:, :1] * (verts @ mat.T + offset)
    radial_scale = _thickness(new) / _thickness(old)
    for j in range(1, 16):
        a0, b0 = old.joints[j], child_point(old, j)
        a1, b1 = new.joints[j], child_point(new, j)
        d0 = (b0 - a0) / np.linalg.norm(b0 - a0)
        d1 = (b1 - a1) / np.linalg.norm(b1 - a1)
        stretch = np.linalg.norm(b1 - a1) / np.linalg.norm(b0 - a0)
        rel = verts - a0
        axial = rel @ d0
        local = radial_scale * (rel - axial[:, None] * d0) + stretch * axial[:, None] * d0
        out += weights[:, j : j + 1] * (a1 + local @ _minimal_rotation(d0, d1).T)
    return out


def shape_directions(verts: np.ndarray, weights: np.ndarray, skel: Skeleton) -> np.ndarray:
    """(V, 3, 10) central differences of ``deform`` at +-1 SD of each component."""
    dirs = np.zeros((len(verts), 3, NUM_SHAPE))
    for k in range(NUM_SHAPE):
        delta = np.zeros(NUM_SHAPE)
        delta[k] = 1.0
        plus = deform(verts, weights, skel, build_skeleton(shape_params(delta, skel.params)))
        minus = deform(verts, weights, skel, build_skeleton(shape_params(-delta, skel.params)))
        dirs[:, :, k] = 0.5 * (plus - minus)
    return dirs


def fingertip_ids(verts: np.ndarray, weights: np.ndarray, skel: Skeleton) -> np.ndarray:
    """(5,) vertex furthest along each distal bone, thumb..little."""
    ids = []
    for finger in TIP_ORDER:
        j = CHAIN[finger][2]
        direction = skel.tips[TIP_ORDER.index(finger)] - skel.joints[j]
        candidates = np.flatnonzero(weights.argmax(1) == j)
        ids.append(candidates[np.argmax((verts[candidates] - skel.joints[j]) @ direction)])
    return np.array(ids, dtype=np.int64)
