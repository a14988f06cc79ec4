"""Adaptive decimation by shortest-edge collapse (keeps a closed manifold closed).

Edges are collapsed to their midpoints in order of length relative to a sizing field (the
local limb radius: fine on the fingers, coarse on the palm), until the target vertex count is
reached. A collapse is refused when it would break the manifold (link condition), fold a
neighbouring face over (normal turns by more than ~70 degrees) or make a vertex too crowded.
"""

from __future__ import annotations

import heapq

import numpy as np

MIN_NORMAL_DOT = 0.35  # cos of the largest allowed normal change of a surrounding face
MAX_VALENCE = 10  # refuse collapses producing vertices with more neighbours than this


class _Mesh:
    def __init__(self, verts: np.ndarray, faces: np.ndarray) -> None:
        self.pos = verts.astype(np.float64).copy()
        self.faces = faces.astype(np.int64).copy()
        self.face_alive = np.ones(len(faces), dtype=bool)
        self.vert_alive = np.ones(len(verts), dtype=bool)
        self.vert_faces: list[set[int]] = [set() for _ in range(len(verts))]
        for f, tri in enumerate(self.faces):
            for v in tri:
                self.vert_faces[v].add(f)
        self.version = np.zeros(len(verts), dtype=np.int64)

    def neighbours(self, v: int) -> set[int]:
        out = set()
        for f in self.vert_faces[v]:
            out.update(int(x) for x in self.faces[f])
        out.discard(v)
        return out

    def normal(self, tri: np.ndarray) -> np.ndarray:
        n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
        return n / (np.linalg.norm(n) + 1e-18)

    def can_collapse(self, a: int, b: int, p: np.ndarray) -> bool:
        shared = self.vert_faces[a] & self.vert_faces[b]
        if len(shared) != 2:
            return False
        opposite = {int(x) for f in shared for x in self.faces[f]} - {a, b}
        na, nb = self.neighbours(a), self.neighbours(b)
        if (na & nb) != opposite or len(na | nb) - 2 > MAX_VALENCE:
            return False
        for f in (self.vert_faces[a] | self.vert_faces[b]) - shared:
            tri = self.pos[self.faces[f]]
            moved = tri.copy()
            moved[(self.faces[f] == a) | (self.faces[f] == b)] = p
            if self.normal(tri) @ self.normal(moved) < MIN_NORMAL_DOT:
                return False
        return True

    def collapse(self, a: int, b: int, p: np.ndarray) -> None:
        shared = self.vert_faces[a] & self.vert_faces[b]
        for f in shared:
            self.face_alive[f] = False
            for v in self.faces[f]:
                self.vert_faces[v].discard(f)
        for f in self.vert_faces[b]:
            self.faces[f][self.faces[f] == b] = a
            self.vert_faces[a].add(f)
        self.vert_faces[b] = set()
        self.vert_alive[b] = False
        self.pos[a] = p
        self.version[a] += 1

    def compact(self) -> tuple[np.ndarray, np.ndarray]:
        remap = np.cumsum(self.vert_alive) - 1
        return self.pos[self.vert_alive], remap[self.faces[self.face_alive]]


def collapse_to(verts: np.ndarray, faces: np.ndarray, target_vertices: int,
                sizing) -> tuple[np.ndarray, np.ndarray]:
    """Collapse edges shortest-relative-to-``sizing`` first until ``target_vertices`` remain.

    sizing: function (N, 3) points -> (N,) desired edge length there (m).
    """
    mesh = _Mesh(verts, faces)
    size = sizing(mesh.pos)
    heap: list[tuple[float, int, int, int, int]] = []

    def push(a: int, b: int) -> None:
        length = np.linalg.norm(mesh.pos[a] - mesh.pos[b])
        prio = length / (0.5 * (size[a] + size[b]))
        heapq.heappush(heap, (prio, a, b, int(mesh.version[a]), int(mesh.version[b])))

    edges = np.unique(np.sort(np.concatenate(
        [faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1), axis=0)
    for a, b in edges:
        push(int(a), int(b))
    alive = len(verts)
    while alive > target_vertices and heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if not (mesh.vert_alive[a] and mesh.vert_alive[b]):
            continue
        if mesh.version[a] != va or mesh.version[b] != vb:
            continue
        p = 0.5 * (mesh.pos[a] + mesh.pos[b])
        if not mesh.can_collapse(a, b, p):
            continue
        mesh.collapse(a, b, p)
        size[a] = 0.5 * (size[a] + size[b])
        alive -= 1
        for n in mesh.neighbours(a):  # a moved: its old queue entries are stale (version)
            push(a, n)
    return mesh.compact()
