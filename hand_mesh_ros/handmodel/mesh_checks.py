"""Geometric checks of triangle meshes: closedness, orientation, volume, self-intersections.

All functions take numpy arrays: verts (V, 3) float, faces (F, 3) int, counter-clockwise seen
from outside for outward normals.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12
_CHUNK = 4096  # candidate pairs per vectorised batch in the intersection test


def directed_edges(faces: np.ndarray) -> np.ndarray:
    """(3F, 2) directed edges (a, b) of every face, in face order."""
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def is_watertight(faces: np.ndarray) -> bool:
    """Every undirected edge is shared by exactly two faces."""
    edges = np.sort(directed_edges(faces), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return bool(np.all(counts == 2))


def is_consistently_oriented(faces: np.ndarray) -> bool:
    """Every directed edge occurs once (neighbouring faces traverse shared edges oppositely)."""
    _, counts = np.unique(directed_edges(faces), axis=0, return_counts=True)
    return bool(np.all(counts == 1))


def euler_characteristic(verts: np.ndarray, faces: np.ndarray) -> int:
    """V - E + F (2 for a closed genus-0 surface)."""
    edges = np.unique(np.sort(directed_edges(faces), axis=1), axis=0)
    return int(len(verts) - len(edges) + len(faces))


def signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume (m^3 for metres); positive for outward-oriented closed meshes."""
    a, b, c = (verts[faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def _candidate_pairs(tri: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(P, 2) face pairs with overlapping bounding boxes and no shared vertex."""
    lo, hi = tri.min(1), tri.max(1)
    order = np.argsort(lo[:, 0])
    lo, hi, sorted_faces = lo[order], hi[order], faces[order]
    pairs = []
    for i in range(len(order)):
        # sweep along x: faces starting before face i ends
        stop = np.searchsorted(lo[:, 0], hi[i, 0], side="right")
        j = np.arange(i + 1, stop)
        if not len(j):
            continue
        overlap = np.all((lo[j] <= hi[i]) & (hi[j] >= lo[i]), axis=1)
        j = j[overlap]
        shared = (sorted_faces[j][:, :, None] == sorted_faces[i][None, None, :]).any((1, 2))
        j = j[~shared]
        pairs.append(np.stack([np.full(len(j), i), j], axis=1))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    return order[np.concatenate(pairs)]


def _segments_cross_triangles(p0, p1, tri) -> np.ndarray:
    """Does segment p0->p1 (N, 3) cross triangle tri (N, 3, 3) (Moller-Trumbore, closed)?"""
    d = p1 - p0
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    h = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, h)
    ok = np.abs(det) > _EPS
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = p0 - tri[:, 0]
    u = inv * np.einsum("ij,ij->i", s, h)
    q = np.cross(s, e1)
    v = inv * np.einsum("ij,ij->i", d, q)
    t = inv * np.einsum("ij,ij->i", e2, q)
    return ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t >= 0) & (t <= 1)


def self_intersections(verts: np.ndarray, faces: np.ndarray) -> int:
    """Number of pairs of non-adjacent faces (no shared vertex) that intersect.

    Two triangles intersect iff an edge of one crosses the other (coplanar touching ignored).
    """
    verts = np.asarray(verts, dtype=np.float64)
    tri = verts[faces]
    pairs = _candidate_pairs(tri, faces)
    hits = 0
    for start in range(0, len(pairs), _CHUNK):
        a, b = pairs[start : start + _CHUNK].T
        ta, tb = tri[a], tri[b]
        crossed = np.zeros(len(a), dtype=bool)
        for k in range(3):
            e0, e1 = k, (k + 1) % 3
            crossed |= _segments_cross_triangles(ta[:, e0], ta[:, e1], tb)
            crossed |= _segments_cross_triangles(tb[:, e0], tb[:, e1], ta)
        hits += int(crossed.sum())
    return hits
