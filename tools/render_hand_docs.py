#!/usr/bin/env python3
"""Render the documentation figures of the open hand model into docs/hand_model/.

Run from the repository root (a few seconds):

    .venv/bin/python tools/render_hand_docs.py

Writes pose_<name>.png (six poses, views: palm, side, back, 3/4), shape_<k>.png (-3 SD,
mean, +3 SD of each shape component, palm and side views), left_right.png, and prints the
self-intersection count of every pose (docs/hand_model.md quotes them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from open_hand.anatomy import SHAPE_COMPONENTS  # noqa: E402
from open_hand.poses import POSES, named_pose  # noqa: E402
from open_hand.raster import render_mesh, view_rotation  # noqa: E402

from hand_mesh_ros.handmodel.mesh_checks import self_intersections  # noqa: E402
from hand_mesh_ros.handmodel.mirror import mirror_axis_angle  # noqa: E402
from hand_mesh_ros.handmodel.model import load_hand_model  # noqa: E402
from hand_mesh_ros.topology import FINGERS, TIP_KEYPOINTS  # noqa: E402

OUT_DIR = REPO / "docs" / "hand_model"
TILE = 240  # pixels per view
EXTENT = 0.25  # metres across a tile
CENTRE = np.array([0.005, -0.085, 0.0])  # model point at the tile centre
VIEWS = {"palm": (0, 0), "side": (90, 0), "back": (180, 0), "3/4": (-50, -30),
         "3/4 mirrored": (50, -30)}
POSE_VIEWS = ("palm", "side", "back", "3/4")
SHAPE_SDS = (-3.0, 0.0, 3.0)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(image, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (40, 40, 40), 1,
                cv2.LINE_AA)
    return image


def _views(verts: np.ndarray, faces: np.ndarray, names, caption: str = "") -> np.ndarray:
    tiles = []
    for name in names:
        image = render_mesh(verts, faces, view_rotation(*VIEWS[name]), size=TILE,
                            extent=EXTENT, centre=CENTRE)
        tiles.append(_label(image, f"{caption}{name}"))
    return np.hstack(tiles)


def render_poses(model) -> dict[str, int]:
    faces = model.faces.numpy()
    rest_joints = model().joints[0].numpy()
    rest_kp = model.rest_keypoints()[0].numpy()
    tips = {f: rest_kp[TIP_KEYPOINTS[i]] for i, f in enumerate(FINGERS)}
    counts = {}
    for name in POSES:
        pose = torch.as_tensor(named_pose(name, rest_joints, tips))[None]
        verts = model(pose).vertices[0].numpy()
        counts[name] = self_intersections(verts, faces)
        image = _views(verts, faces, POSE_VIEWS, caption=f"{name}: ")
        cv2.imwrite(str(OUT_DIR / f"pose_{name}.png"), image)
    return counts


def render_shapes(model) -> None:
    faces = model.faces.numpy()
    for k, (description, _, _) in enumerate(SHAPE_COMPONENTS):
        tiles = []
        for sd in SHAPE_SDS:
            shape = torch.zeros(1, 10, dtype=model.v_template.dtype)
            shape[0, k] = sd
            verts = model(shape=shape).vertices[0].numpy()
            tiles.append(_views(verts, faces, ("palm", "side"), caption=f"{sd:+.0f} SD "))
        image = np.hstack(tiles)
        cv2.putText(image, f"shape {k}: {description}", (8, TILE - 12),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (40, 40, 40), 1, cv2.LINE_AA)
        cv2.imwrite(str(OUT_DIR / f"shape_{k}.png"), image)


def render_left_right(right, left) -> None:
    rest_joints = right().joints[0].numpy()
    rest_kp = right.rest_keypoints()[0].numpy()
    tips = {f: rest_kp[TIP_KEYPOINTS[i]] for i, f in enumerate(FINGERS)}
    pose = named_pose("ok", rest_joints, tips)
    tiles = []
    for model, p, views in ((right, pose, ("palm", "3/4")),
                            (left, mirror_axis_angle(pose), ("palm", "3/4 mirrored"))):
        verts = model(torch.as_tensor(p)[None]).vertices[0].numpy()
        tiles.append(_views(verts, model.faces.numpy(), views, caption=f"{model.side} "))
    cv2.imwrite(str(OUT_DIR / "left_right.png"), np.hstack(tiles))


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    right = load_hand_model("right", dtype=torch.float64)
    left = load_hand_model("left", dtype=torch.float64)
    with torch.inference_mode():
        counts = render_poses(right)
        render_shapes(right)
        render_left_right(right, left)
    for name, count in counts.items():
        print(f"self-intersecting face pairs, {name}: {count}")


if __name__ == "__main__":
    main()
