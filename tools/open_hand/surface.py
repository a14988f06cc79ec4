"""Implicit surface of the mean hand and its triangulation.

The hand is a signed distance-like field (negative inside): tapered capsules along the
phalanges with rounded fingertips, a rounded slab for the palm and wrist, capsules for the
thenar and hypothenar eminences, blended with a polynomial smooth minimum. The zero level set
is extracted with marching cubes (decimated by ``remesh.py``) and relaxed back onto it.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import marching_cubes

from open_hand.anatomy import (
    CHAIN,
    FINGER_FLATNESS,
    FINGER_RADII,
    FINGERS4,
    PALM_THICKNESS,
    TIP_ORDER,
    WRIST_HALF_THICKNESS,
    WRIST_HALF_WIDTH,
    WRIST_STUB,
    Skeleton,
)

GRID_STEP = 0.003  # marching-cubes voxel size (m); remesh.py decimates the result
WEB_BLEND = 0.0075  # smooth-min radius between fingers and palm (finger webs), m
THUMB_BLEND = 0.012  # smooth-min radius between thumb metacarpal and palm, m
PALM_ROUNDING = 0.009  # edge rounding radius of the palm slab, m
SHAFT_WAIST = 0.94  # phalanx mid-shaft radius relative to the mean of its end radii


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum with blend radius k (k = 0 is min)."""
    h = np.clip(k - np.abs(a - b), 0.0, None) / max(k, 1e-12)
    return np.minimum(a, b) - h * h * k / 4.0


def tapered_capsule(p: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float,
                    flat: float = 1.0) -> np.ndarray:
    """Approximate distance to a capsule a->b whose radius goes linearly ra->rb.

    ``flat`` < 1 flattens the cross-section along z (dorso-palmar) by that factor.
    """
    q = p.copy()
    q[:, 2] /= flat
    a2, b2 = a.copy(), b.copy()
    a2[2] /= flat
    b2[2] /= flat
    ab = b2 - a2
    t = np.clip(((q - a2) @ ab) / (ab @ ab), 0.0, 1.0)
    closest = a2 + t[:, None] * ab
    return np.linalg.norm(q - closest, axis=1) - (ra + (rb - ra) * t)


def _phalanx(p, a, b, ra, rb, flat):
    """Two tapered halves with a slight waist at mid-shaft."""
    mid = 0.5 * (a + b)
    rm = SHAFT_WAIST * 0.5 * (ra + rb)
    return np.minimum(tapered_capsule(p, a, mid, ra, rm, flat),
                      tapered_capsule(p, mid, b, rm, rb, flat))


def finger_field(p: np.ndarray, skel: Skeleton, name: str) -> np.ndarray:
    """Field of one finger (or the thumb's phalanges) from its first joint to its tip."""
    s = skel.scale * skel.params.thickness
    j = skel.joints[list(CHAIN[name])]
    radii = np.array(FINGER_RADII[name]) * s
    tip = skel.tips[TIP_ORDER.index(name)]
    direction = (tip - j[2]) / np.linalg.norm(tip - j[2])
    tip_centre = tip - radii[3] * direction
    flat = FINGER_FLATNESS
    start = 1 if name == "thumb" else 0  # the thumb metacarpal belongs to the thenar field
    points = [j[0], j[1], j[2], tip_centre]
    d = np.full(len(p), np.inf)
    for i in range(start, 3):
        d = np.minimum(d, _phalanx(p, points[i], points[i + 1], radii[i], radii[i + 1], flat))
    return d


def _polygon_distance(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Signed distance to a convex counter-clockwise polygon in the plane (negative inside)."""
    d = np.full(len(xy), np.inf)
    inside = np.ones(len(xy), dtype=bool)
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        e = b - a
        w = xy - a
        t = np.clip((w @ e) / (e @ e), 0.0, 1.0)
        d = np.minimum(d, np.linalg.norm(w - t[:, None] * e, axis=1))
        inside &= (e[0] * w[:, 1] - e[1] * w[:, 0]) > 0
    return np.where(inside, -d, d)


def palm_outline(skel: Skeleton) -> np.ndarray:
    """Convex counter-clockwise palm + wrist outline (N, 2) in the xy plane."""
    j = skel.joints
    s = skel.scale
    ww = WRIST_HALF_WIDTH * s * skel.params.palm_width
    index, little = j[CHAIN["index"][0]], j[CHAIN["little"][0]]
    middle, ring = j[CHAIN["middle"][0]], j[CHAIN["ring"][0]]
    edge = 0.0085 * s  # soft tissue beyond the outer metacarpal heads
    stub = WRIST_STUB * s
    return np.array([
        (-ww, stub),
        (ww, stub),
        (ww + 0.006 * s, -0.030 * s),
        (index[0] + edge, index[1] + 0.008 * s),
        (index[0], index[1] - 0.002 * s),
        (middle[0], middle[1] - 0.002 * s),
        (ring[0], ring[1] - 0.002 * s),
        (little[0] - 0.003 * s, little[1]),
        (little[0] - edge, little[1] + 0.012 * s),
        (-ww - 0.010 * s, -0.035 * s),
    ])[::-1]


def palm_field(p: np.ndarray, skel: Skeleton) -> np.ndarray:
    """Rounded slab: thicker at the wrist, thinner at the knuckles; palm slightly hollow."""
    s = skel.scale * skel.params.thickness
    poly = palm_outline(skel)
    d2 = _polygon_distance(p[:, :2], poly)
    y_knuckle = skel.joints[CHAIN["middle"][0]][1]
    t = np.clip(p[:, 1] / y_knuckle, 0.0, 1.0)  # 0 at the wrist, 1 at the knuckles
    half = (WRIST_HALF_THICKNESS * (1 - t) + 0.5 * PALM_THICKNESS * t) * s
    r = PALM_ROUNDING * s
    wx = d2 + r
    wz = np.abs(p[:, 2]) - half + r
    outside = np.sqrt(np.clip(wx, 0, None) ** 2 + np.clip(wz, 0, None) ** 2)
    return np.minimum(np.maximum(wx, wz), 0.0) + outside - r


def thenar_field(p: np.ndarray, skel: Skeleton) -> np.ndarray:
    """Thumb metacarpal with the thenar eminence bulging to the palm side (-z)."""
    s = skel.scale * skel.params.thickness
    cmc, mcp = skel.joints[13], skel.joints[14]
    r0, r1 = FINGER_RADII["thumb"][:2]
    shaft = tapered_capsule(p, cmc, mcp, r0 * s, r1 * s, FINGER_FLATNESS)
    bulge_a = cmc + np.array([-0.010, -0.004, -0.006]) * s
    bulge_b = 0.5 * (cmc + mcp) + np.array([-0.012, 0.0, -0.004]) * s
    bulge = tapered_capsule(p, bulge_a, bulge_b, 0.013 * s, 0.011 * s, 0.75)
    return smooth_min(shaft, bulge, 0.008 * s)


def hypothenar_field(p: np.ndarray, skel: Skeleton) -> np.ndarray:
    """Padding along the little-finger side of the palm, palm side."""
    s = skel.scale * skel.params.thickness
    little = skel.joints[CHAIN["little"][0]]
    a = np.array([-0.022, -0.012, -0.004]) * s
    b = little + np.array([0.004, 0.020, -0.003]) * s
    return tapered_capsule(p, a, b, 0.0125 * s, 0.0105 * s, 0.8)


def hand_field(p: np.ndarray, skel: Skeleton) -> np.ndarray:
    """Field of the whole hand at points p (N, 3); negative inside, ~metres."""
    s = skel.scale
    body = smooth_min(palm_field(p, skel), hypothenar_field(p, skel), 0.008 * s)
    body = smooth_min(body, thenar_field(p, skel), THUMB_BLEND * s)
    for name in FINGERS4 + ("thumb",):
        body = smooth_min(body, finger_field(p, skel, name), WEB_BLEND * s)
    return body


def extract_mesh(skel: Skeleton, *, step: float = GRID_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of ``hand_field``: vertices (V, 3) metres, faces (F, 3), outward."""
    pts = np.concatenate([skel.joints, skel.tips])
    margin = 0.03 * skel.scale
    lo = pts.min(0) - margin
    hi = pts.max(0) + margin
    lo[1] = min(lo[1], -margin)
    hi[1] = max(hi[1], WRIST_STUB * skel.scale + margin)
    axes = [np.arange(lo[i], hi[i] + step, step) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    field = hand_field(grid, skel).reshape(len(axes[0]), len(axes[1]), len(axes[2]))
    verts, faces, _, _ = marching_cubes(field, level=0.0, spacing=(step, step, step))
    verts = verts + lo
    if signed_volume(verts, faces) < 0:
        faces = faces[:, ::-1]
    return verts, faces.astype(np.int64)


def signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed mesh; positive when faces are counter-clockwise outside."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


RELAX_ITERS = 12  # tangential Laplacian relaxation steps after decimation
RELAX_RATE = 0.5
GRAD_STEP = 1e-4  # m, finite-difference step for the field gradient


def _field_gradient(p: np.ndarray, skel: Skeleton) -> np.ndarray:
    grads = []
    for axis in range(3):
        offset = np.zeros(3)
        offset[axis] = GRAD_STEP
        grads.append(hand_field(p + offset, skel) - hand_field(p - offset, skel))
    return np.stack(grads, axis=1) / (2 * GRAD_STEP)


def project_to_surface(p: np.ndarray, skel: Skeleton, steps: int = 3) -> np.ndarray:
    """Newton steps along the field gradient onto the zero level set."""
    for _ in range(steps):
        g = _field_gradient(p, skel)
        p = p - (hand_field(p, skel) / np.maximum((g * g).sum(1), 1e-12))[:, None] * g
    return p


def relax(verts: np.ndarray, faces: np.ndarray, skel: Skeleton) -> np.ndarray:
    """Even out the triangles: tangential umbrella smoothing + re-projection to the surface."""
    nbr_sum = np.zeros((len(verts), len(verts)))
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    nbr_sum[edges[:, 0], edges[:, 1]] = 1.0
    nbr_sum[edges[:, 1], edges[:, 0]] = 1.0
    nbr_sum /= nbr_sum.sum(1, keepdims=True)
    p = project_to_surface(verts, skel)
    for _ in range(RELAX_ITERS):
        g = _field_gradient(p, skel)
        n = g / np.linalg.norm(g, axis=1, keepdims=True)
        step = nbr_sum @ p - p
        step -= (step * n).sum(1, keepdims=True) * n
        p = project_to_surface(p + RELAX_RATE * step, skel, steps=2)
    return p
