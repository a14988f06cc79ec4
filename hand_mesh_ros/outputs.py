"""Writing pipeline results to files: per-frame JSON, PLY meshes and overlay images.

    frame_to_json(result, image_name, mesh_names) -> dict      (schema below)
    write_ply(path, vertices, faces, *, binary=True)           (triangle mesh, metres)
    render_overlay(image_rgb, result) -> (H, W, 3) uint8 RGB
    write_frame(out_dir, stem, image_rgb, result, image_name) -> FrameFiles

The JSON schema (one object per image or video frame; keys may be added, never removed)::

    {"image": str, "width": int, "height": int,
     "camera": {"fx", "fy", "cx", "cy": pixels, "assumed": bool},
     "hands": [{"side": "left" | "right", "score": float, "track_id": int,
                "keypoints_2d": 21 x [u, v],     pixels, the fitted hand's projection
                "keypoints_3d": 21 x [x, y, z],  metres, OpenCV camera frame
                "mano": {"pose": 45, "shape": 10, "global_orient": 3, "transl": 3},
                "mesh": "<stem>_hand<i>.ply",
                "model": str, "detected_keypoints_2d": 21 x [u, v],
                "refine": {"iterations": int, "loss": float, "keypoint_error_px": float},
                "depth_used": bool,              the aligned depth placed and refined it
                "depth": {"status": str, "valid_fraction": float, "residual_mm": float,
                          "scale": float}}],     only when the frame had a depth image
     "depth_given": bool,                        an aligned depth image came with the frame
     "timings_ms": {stage: float}}

``depth`` is ``pipeline/types.py``'s ``HandDepth``: ``status`` "used" or why the depth was
not used, ``valid_fraction`` of the hand's observation cells with a valid depth,
``residual_mm`` the median |observed - fitted surface depth| (null when unused), ``scale``
the size correction the depth implied. Keypoint order is ``topology.py``'s; pixel centres are
at integer coordinates. Non-finite numbers (which JSON cannot hold) are written as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from hand_mesh_ros.pipeline.types import FrameResult, HandDepth, HandEstimate
from hand_mesh_ros.visualize import SIDE_COLORS, draw_keypoints, overlay_mesh

OVERLAY_ALPHA = 0.6  # weight of the shaded mesh over the image in overlays
KEYPOINT_RADIUS_FRACTION = 1 / 160  # keypoint dot radius as a fraction of the longer side
MIN_KEYPOINT_RADIUS = 2  # pixels


@dataclass(frozen=True)
class FrameFiles:
    """The files written for one frame: JSON, overlay PNG, one PLY per hand (in hand order)."""

    json: Path
    overlay: Path
    meshes: tuple[Path, ...]


def mesh_file_names(stem: str, count: int) -> list[str]:
    """``<stem>_hand<i>.ply`` for i = 0..count-1 (i is the hand's index in the frame)."""
    return [f"{stem}_hand{i}.ply" for i in range(count)]


def _number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _numbers(array, shape: tuple[int, ...]) -> list:
    """A numpy array of the given shape -> nested lists of floats (None where non-finite)."""
    values = np.asarray(array, dtype=np.float64)
    if values.shape != shape:
        raise ValueError(f"expected an array of shape {shape}, got {values.shape}")
    out = values.astype(object)
    out[~np.isfinite(values)] = None
    return out.tolist()


def hand_to_json(hand: HandEstimate, mesh_name: str) -> dict:
    """One hand as a JSON-ready dict (see the module docstring)."""
    if hand.side not in SIDE_COLORS:
        raise ValueError(f"hand side must be 'left' or 'right', got {hand.side!r}")
    return {
        "side": hand.side,
        "score": _number(hand.score),
        "track_id": int(hand.track_id),
        "keypoints_2d": _numbers(hand.keypoints_2d, (21, 2)),
        "keypoints_3d": _numbers(hand.keypoints_3d, (21, 3)),
        "mano": {
            "pose": _numbers(hand.pose, (45,)),
            "shape": _numbers(hand.shape, (10,)),
            "global_orient": _numbers(hand.global_orient, (3,)),
            "transl": _numbers(hand.transl, (3,)),
        },
        "mesh": mesh_name,
        "model": hand.model_name,
        "detected_keypoints_2d": _numbers(hand.detected_keypoints_2d, (21, 2)),
        "refine": {
            "iterations": int(hand.refine_iterations),
            "loss": _number(hand.refine_loss),
            "keypoint_error_px": _number(hand.keypoint_error_px),
        },
        "depth_used": bool(hand.depth_used),
        **({} if hand.depth is None else {"depth": depth_to_json(hand.depth)}),
    }


def depth_to_json(depth: HandDepth) -> dict:
    """How a hand used the frame's depth image, JSON-ready (see the module docstring)."""
    return {
        "status": str(depth.status),
        "valid_fraction": _number(depth.valid_fraction),
        "residual_mm": _number(depth.residual_mm),
        "scale": _number(depth.scale),
    }


def frame_to_json(result: FrameResult, image_name: str, mesh_names: Sequence[str]) -> dict:
    """A frame's result as a JSON-ready dict; ``mesh_names[i]`` is hand i's PLY file name."""
    if len(mesh_names) != len(result.hands):
        raise ValueError(f"{len(mesh_names)} mesh names for {len(result.hands)} hands")
    camera = result.camera
    return {
        "image": str(image_name),
        "width": int(result.width),
        "height": int(result.height),
        "camera": {
            "fx": float(camera.fx),
            "fy": float(camera.fy),
            "cx": float(camera.cx),
            "cy": float(camera.cy),
            "assumed": bool(camera.assumed),
        },
        "hands": [hand_to_json(h, name) for h, name in zip(result.hands, mesh_names, strict=True)],
        "depth_given": bool(result.depth_given),
        "timings_ms": {k: _number(v) for k, v in result.timings_ms.items()},
    }


def dumps(data, level: int = 0) -> str:
    """Strict JSON (no NaN/Infinity tokens): objects and lists of objects indented one key
    per line, other lists (numbers, keypoint rows) on one line each."""
    pad, inner = " " * level, " " * (level + 1)
    if isinstance(data, dict) and data:
        items = [f"{inner}{json.dumps(str(k))}: {dumps(v, level + 1)}" for k, v in data.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        items = [f"{inner}{dumps(v, level + 1)}" for v in data]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(data, allow_nan=False)


def write_json(path: str | Path, data: dict) -> None:
    """Write ``data`` as strict JSON (``dumps``)."""
    Path(path).write_text(dumps(data) + "\n")


def write_ply(path: str | Path, vertices, faces, *, binary: bool = True) -> None:
    """Write a triangle mesh as PLY. vertices (V,3) float (metres, camera frame), faces
    (F,3) int vertex indices. Binary little-endian (float32 xyz, uint8 count + int32
    indices) or ASCII."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and f.dtype.kind not in "iu"):
        raise ValueError(f"faces must be (F, 3) integers, got {f.shape} {f.dtype}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"face indices must be in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    fmt = "binary_little_endian" if binary else "ascii"
    header = (
        f"ply\nformat {fmt} 1.0\ncomment hand_mesh_ros hand mesh, metres, camera frame\n"
        f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with Path(path).open("wb") as out:
        out.write(header.encode("ascii"))
        if binary:
            out.write(v.astype("<f4").tobytes())
            rows = np.empty(len(f), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
            rows["n"] = 3
            rows["idx"] = f
            out.write(rows.tobytes())
        else:
            lines = [f"{x:.7g} {y:.7g} {z:.7g}" for x, y, z in v]
            lines += [f"3 {a} {b} {c}" for a, b, c in f]
            out.write(("\n".join(lines) + "\n").encode("ascii"))


def render_overlay(image_rgb: np.ndarray, result: FrameResult) -> np.ndarray:
    """The frame's hand meshes shaded over the image (colored by side, nearer hands drawn
    last), then each hand's fitted keypoints on top. image_rgb (H,W,3) uint8 -> same."""
    image = np.asarray(image_rgb)
    if image.shape != (result.height, result.width, 3) or image.dtype != np.uint8:
        raise ValueError(
            f"image must be ({result.height}, {result.width}, 3) uint8, "
            f"got {image.shape} {image.dtype}"
        )
    out = image.copy()
    K = result.camera.matrix(dtype=torch.float64)
    far_to_near = sorted(result.hands, key=lambda h: -float(np.mean(h.vertices[:, 2])))
    for hand in far_to_near:
        vertices = torch.as_tensor(np.asarray(hand.vertices), dtype=torch.float64)
        faces = torch.as_tensor(np.asarray(hand.faces), dtype=torch.long)
        out = overlay_mesh(
            out, vertices, faces, K, color=SIDE_COLORS[hand.side], alpha=OVERLAY_ALPHA
        )
    radius = max(MIN_KEYPOINT_RADIUS, round(max(image.shape[:2]) * KEYPOINT_RADIUS_FRACTION))
    for hand in far_to_near:
        out = draw_keypoints(out, hand.keypoints_2d, radius=radius)
    return out


def write_frame(
    out_dir: str | Path,
    stem: str,
    image_rgb: np.ndarray,
    result: FrameResult,
    image_name: str,
    *,
    extra: dict | None = None,
) -> FrameFiles:
    """Write ``<stem>.json``, ``<stem>_overlay.png`` and ``<stem>_hand<i>.ply`` to out_dir.
    ``extra``: keys added to the JSON's top level (e.g. a video frame's index)."""
    out_dir = Path(out_dir)
    names = mesh_file_names(stem, len(result.hands))
    meshes = tuple(out_dir / name for name in names)
    for hand, path in zip(result.hands, meshes, strict=True):
        write_ply(path, hand.vertices, hand.faces)
    overlay = out_dir / f"{stem}_overlay.png"
    bgr = cv2.cvtColor(render_overlay(image_rgb, result), cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(overlay), bgr):
        raise OSError(f"{overlay}: OpenCV could not write the overlay")
    json_path = out_dir / f"{stem}.json"
    write_json(json_path, {**frame_to_json(result, image_name, names), **(extra or {})})
    return FrameFiles(json=json_path, overlay=overlay, meshes=meshes)
