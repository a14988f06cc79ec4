#!/usr/bin/env python3
"""Generate the open hand model asset ``hand_mesh_ros/assets/open_hand_right.npz``.

Run from the repository root (deterministic; ~20-30 s on 2 CPU cores):

    .venv/bin/python tools/generate_open_hand.py            # writes the asset
    .venv/bin/python tools/generate_open_hand.py --out /tmp/x.npz

Pipeline (details and sources in docs/hand_model.md):
    anatomy.build_skeleton  -> 16 joint centres + 5 fingertips from published proportions
    surface.extract_mesh    -> implicit surface (capsules + palm slab), marching cubes
    remesh.collapse_to      -> adaptive edge collapse to 900 vertices, then relaxation
    rig.*                   -> skinning weights, joint regressor, 10 shape directions
The result is checked (closed, consistently oriented, outward, regressor exact) before saving.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from open_hand import remesh, rig, surface  # noqa: E402
from open_hand.anatomy import build_skeleton  # noqa: E402

from hand_mesh_ros.handmodel import mesh_checks  # noqa: E402
from hand_mesh_ros.handmodel.data import HandModelData  # noqa: E402

DEFAULT_OUT = REPO / "hand_mesh_ros" / "assets" / "open_hand_right.npz"
TARGET_VERTICES = 900  # MANO has 778
EDGE_SIZE_RANGE = (0.004, 0.014)  # m, clip of the sizing field (local limb radius)


def edge_size(points: np.ndarray, skel) -> np.ndarray:
    """Desired edge length: the distance to the nearest bone (finger radius, palm depth)."""
    dist = np.min([rig.segment_distance(points, a, b) for _, a, b in rig.bone_segments(skel)], 0)
    return np.clip(dist, *EDGE_SIZE_RANGE)


def build_mesh(skel) -> tuple[np.ndarray, np.ndarray]:
    """Closed outward mesh of the mean hand (verts metres, faces)."""
    verts, faces = surface.extract_mesh(skel)
    verts, faces = remesh.collapse_to(verts, faces, TARGET_VERTICES, lambda p: edge_size(p, skel))
    verts = surface.relax(verts, faces, skel)
    check_mesh(verts, faces)
    return verts, faces


def check_mesh(verts: np.ndarray, faces: np.ndarray) -> None:
    problems = []
    if not mesh_checks.is_watertight(faces):
        problems.append("not watertight")
    if not mesh_checks.is_consistently_oriented(faces):
        problems.append("inconsistent orientation")
    if mesh_checks.euler_characteristic(verts, faces) != 2:
        problems.append("Euler characteristic != 2")
    if mesh_checks.signed_volume(verts, faces) <= 0:
        problems.append("inward normals")
    if problems:
        raise RuntimeError("generated mesh is bad: " + ", ".join(problems))


def generate() -> HandModelData:
    """Build the right open hand model from scratch (deterministic)."""
    skel = build_skeleton()
    verts, faces = build_mesh(skel)
    weights = rig.skinning_weights(verts, faces, skel)
    regressor = rig.joint_regressor(verts, weights, skel)
    return HandModelData(
        v_template=verts,
        faces=faces,
        shapedirs=rig.shape_directions(verts, weights, skel),
        posedirs=None,
        j_regressor=regressor,
        skinning_weights=weights,
        parents=np.array(rig.PARENTS, dtype=np.int64),
        fingertip_vertex_ids=rig.fingertip_ids(verts, weights, skel),
        hands_mean=np.zeros(45),
        hands_components=None,
        side="right",
        name="open_hand",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    data = generate()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data.save_npz(args.out)
    size_kb = args.out.stat().st_size / 1024
    print(f"wrote {args.out} ({data.num_vertices} vertices, {len(data.faces)} faces, "
          f"{size_kb:.0f} KiB)")


if __name__ == "__main__":
    main()
