"""Reference geometry for tests: exact point-to-triangle distances (numpy, float64)."""

from __future__ import annotations

import numpy as np


def point_triangle_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """(N,3) points, (M,3) corners -> (N,M) distances (Ericson, Real-Time Collision Detection
    5.1.5: the Voronoi region of the closest feature decides; every region test is exact)."""
    p, a, b, c = p[:, None], a[None], b[None], c[None]
    ab, ac = b - a, c - a
    d1, d2 = _dot(ab, p - a), _dot(ac, p - a)
    d3, d4 = _dot(ab, p - b), _dot(ac, p - b)
    d5, d6 = _dot(ab, p - c), _dot(ac, p - c)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        total = va + vb + vc
        q = a + ab * (vb / total)[..., None] + ac * (vc / total)[..., None]  # face interior
        t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        regions = [  # lowest priority first; later ones overwrite (they differ only on borders)
            ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), b + (c - b) * t[..., None]),
            ((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + ac * (d2 / (d2 - d6))[..., None]),
            ((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + ab * (d1 / (d1 - d3))[..., None]),
            ((d6 >= 0) & (d5 <= d6), c),
            ((d3 >= 0) & (d4 <= d3), b),
            ((d1 <= 0) & (d2 <= 0), a),
        ]
    for mask, closest in regions:
        q = np.where(mask[..., None], np.broadcast_to(closest, q.shape), q)
    return np.linalg.norm(p - q, axis=-1)


def _dot(u, v):
    return (u * v).sum(-1)


def slow_point_triangle_distance(p, a, b, c) -> float:
    """One point, one triangle: in-plane projection if it lies inside, else the nearest edge."""
    n = np.cross(b - a, c - a)
    n = n / np.linalg.norm(n)
    q = p - np.dot(p - a, n) * n
    inside = [np.dot(np.cross(e1 - e0, q - e0), n) >= 0 for e0, e1 in ((a, b), (b, c), (c, a))]
    if all(inside):
        return float(np.linalg.norm(p - q))
    best = np.inf
    for e0, e1 in ((a, b), (b, c), (c, a)):
        s = np.clip(np.dot(p - e0, e1 - e0) / np.dot(e1 - e0, e1 - e0), 0.0, 1.0)
        best = min(best, float(np.linalg.norm(p - (e0 + s * (e1 - e0)))))
    return best


def _distances_in_chunks(points, vertices, faces, reduce, chunk: int = 200) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    parts = [
        reduce(point_triangle_distance(p[i : i + chunk], a, b, c)) for i in range(0, len(p), chunk)
    ]
    return np.concatenate(parts)


def surface_distance(points, vertices, faces) -> np.ndarray:
    """(N,) distance of each point to the nearest triangle of the mesh, float64."""
    return _distances_in_chunks(points, vertices, faces, lambda d: d.min(1))


def nearest_face(points, vertices, faces) -> np.ndarray:
    """(N,) index of the triangle nearest to each point."""
    return _distances_in_chunks(points, vertices, faces, lambda d: d.argmin(1))
