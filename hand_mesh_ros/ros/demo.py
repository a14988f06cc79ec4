"""The README's first command: the estimator node on an embedded RGB-D clip, over real ROS 2
topics, against the same frames without depth.

A moving right hand rendered from the bundled open hand model (so the truth is known), with
the aligned depth an RGB-D camera would give of the same scene (``synthetic/depth_camera.py``:
noise growing with z^2, holes at edges and on dark or shiny parts, 1 mm quantisation, a few
px of misalignment), is published frame by frame on /camera/image_raw + /camera/camera_info +
/camera/aligned_depth_to_color/image_raw (16UC1 mm) by a camera-side node; the estimator node
(the same one `ros2 launch hand_mesh_ros estimator.launch.py depth_topic:=...` starts) answers
on /hand/joints, /hand/mano, /hand/mesh and /hand/mesh_indexed. Everything it publishes is
recorded into a ROS 2 bag; overlays drawn from the received messages, a video, and a summary
with frames/s and the errors against the truth are written next to it.

RGB only vs RGB-D: the same frames also go, without their depth, through ``HandTracker.update``
in this process -- the call the node makes for each frame, with the same settings -- so the
summary and the contact sheet show both side by side (camera-frame MPJPE, wrist position
error, PA-MPJPE, 2D keypoint error). One node run over ROS, not two: the RGB-only pass needs
no middleware to be honest, and a second node run would double the demo's time.

Usage: python -m hand_mesh_ros.ros.demo [--out out/demo] [--frames 32] [--seed 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import rclpy
import torch
from rclpy.parameter import Parameter

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.demo import keypoint_errors, write_contact_sheet
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.metrics import mpjpe
from hand_mesh_ros.pipeline import CameraIntrinsics, EstimatorConfig, HandMeshEstimator, HandTracker
from hand_mesh_ros.ros.bag import BagRecorder
from hand_mesh_ros.ros.client import (
    EstimatorClient,
    NodeRunner,
    camera_info_msg,
    make_header,
)
from hand_mesh_ros.ros.config import (
    DEFAULT_CAMERA_INFO_TOPIC,
    DEFAULT_DEPTH_TOPIC,
    DEFAULT_IMAGE_TOPIC,
)
from hand_mesh_ros.ros.node import HandMeshNode
from hand_mesh_ros.ros.topics import CLIENT_OUTPUTS, OUTPUTS
from hand_mesh_ros.synthetic.clip import FRAME_PERIOD_S, render_clip
from hand_mesh_ros.synthetic.depth_camera import DepthNoiseModel
from hand_mesh_ros.visualize import SIDE_COLORS, draw_keypoints, overlay_mesh

FRAME_ID = "camera_optical_frame"
FRAME_TIMEOUT_S = 60.0
VIDEO_FPS = 10
FIRST_STAMP_NS = 1_800_000_000_000_000_000
REPO_MSG_DIR = Path(__file__).resolve().parents[2] / "msg"
# per pass and frame: camera-frame MPJPE, wrist position error, PA-MPJPE, 2D keypoints,
# and the wrist's depth error (the part of the wrist error along the optical axis)
ERROR_KEYS = ("mpjpe_mm", "wrist_error_mm", "pa_mpjpe_mm", "kp2d_px", "wrist_depth_error_mm")
PASSES = ("rgb_only", "rgbd")
DEPTH_SHOWN_M = (0.2, 2.0)  # the depth panel's colour scale, metres


def message_dir() -> Path:
    """msg/*.msg of this package: the source tree, or a ROS install's share/hand_mesh_ros/msg."""
    if REPO_MSG_DIR.is_dir():
        return REPO_MSG_DIR
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / "hand_mesh_ros" / "msg"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("hand_mesh_ros msg/*.msg not found (source tree or AMENT_PREFIX_PATH)")


def errors_vs_truth(keypoints_2d, keypoints_3d, frame) -> dict[str, float]:
    """ERROR_KEYS of one hand's keypoints ((21,2) px, (21,3) m, camera frame) against a clip
    frame's truth, mm and px."""
    xyz = np.asarray(keypoints_3d, dtype=np.float64).reshape(21, 3)
    uv = np.asarray(keypoints_2d, dtype=np.float64).reshape(21, 2)
    errors = keypoint_errors(uv, xyz, frame)
    truth = torch.tensor(frame.keypoints_3d)[None]
    errors["mpjpe_mm"] = 1000 * float(mpjpe(torch.tensor(xyz)[None], truth))
    errors["wrist_error_mm"] = 1000 * float(np.linalg.norm(xyz[0] - frame.keypoints_3d[0]))
    return {key: round(errors[key], 2) for key in ERROR_KEYS}


def mean_errors(rows: list[dict], name: str) -> dict[str, float] | None:
    """Mean of each ERROR_KEYS of pass ``name`` over the frames where it found the hand."""
    found = [r[name] for r in rows if r.get(name)]
    if not found:
        return None
    return {key: round(statistics.mean(r[key] for r in found), 2) for key in ERROR_KEYS}


def draw_outputs(image: np.ndarray, meshes, joints, K: np.ndarray) -> np.ndarray:
    """Meshes ((side, (V,3) m, (F,3)) per hand) and 2D joints ((21,2) px per hand) drawn."""
    out = image.copy()
    Kt = torch.tensor(K)
    for side, vertices, faces in meshes:
        out = overlay_mesh(
            out, torch.tensor(vertices), torch.tensor(faces), Kt, color=SIDE_COLORS[side]
        )
    for uv in joints:
        out = draw_keypoints(out, uv)
    return out


def received_drawing(image: np.ndarray, received, K: np.ndarray) -> np.ndarray:
    """The received meshes (hand/mesh_indexed) and joints (hand/joints) drawn on the image."""
    meshes = [
        (
            m.side,
            np.array(m.vertices, dtype=np.float64).reshape(-1, 3),
            np.array(m.triangles, dtype=np.int64).reshape(-1, 3),
        )
        for m in received.messages["mesh_indexed"].hands
    ]
    joints = [
        np.array(h.joints_2d, dtype=np.float64).reshape(21, 2)
        for h in received.messages["joints"].hands
    ]
    return draw_outputs(image, meshes, joints, K)


def result_drawing(image: np.ndarray, result, K: np.ndarray) -> np.ndarray:
    """A library FrameResult's meshes and fitted 2D keypoints drawn on the image."""
    meshes = [(h.side, h.vertices.astype(np.float64), h.faces) for h in result.hands]
    return draw_outputs(image, meshes, [h.keypoints_2d for h in result.hands], K)


def label(panel: np.ndarray, title: str, errors: dict | None) -> np.ndarray:
    """The panel with its title and errors written in its top-left corner."""
    lines = [title + (f" ({errors['side']} hand)" if errors else "")]
    if errors:
        lines += [
            f"3D {errors['mpjpe_mm']:.1f} mm  wrist {errors['wrist_error_mm']:.1f} mm",
            f"PA {errors['pa_mpjpe_mm']:.1f} mm  2D {errors['kp2d_px']:.1f} px",
        ]
    out = panel.copy()
    for i, text in enumerate(lines):
        origin = (10, 28 + 26 * i)
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2,
                    cv2.LINE_AA)
    return out


def depth_panel(depth: np.ndarray) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RGB, near warm, far cool, no data black."""
    near, far = DEPTH_SHOWN_M
    scaled = ((far - depth.clip(near, far)) / (far - near) * 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[depth <= 0] = 0
    return rgb


def rgb_only_pass(clip, device: str) -> list:
    """The clip's frames through ``HandTracker.update`` without depth, as the node runs them:
    the same settings (the config defaults the node's parameters declare), on a worker thread
    like the node's (torch's intra-op threads are per calling thread: in the main thread, two
    of them on a busy 2-core machine made the fits ~10x slower than the node's)."""

    def fit_all() -> list:
        camera = CameraIntrinsics.from_matrix(clip.K)
        estimator = HandMeshEstimator(EstimatorConfig(device=device))
        try:
            tracker = HandTracker(estimator)
            return [
                tracker.update(frame.image, camera, stamp=index * FRAME_PERIOD_S)
                for index, frame in enumerate(clip.frames)
            ]
        finally:
            estimator.close()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rgb_only") as worker:
        return worker.submit(fit_all).result()


def run(out_dir: Path, frames: int, seed: int, device: str) -> dict:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = load_hand_model("right")
    noise = DepthNoiseModel()
    clip = render_clip(model, PosePrior.from_model(model), frames, seed=seed, depth_noise=noise)
    K = clip.K.double().numpy()
    h, w = clip.frames[0].image.shape[:2]
    out_dir.mkdir(parents=True, exist_ok=True)
    bag_dir = out_dir / "hand_topics_bag"
    shutil.rmtree(bag_dir, ignore_errors=True)
    print(f"RGB-only pass: {frames} frames through HandTracker.update, no depth", flush=True)
    rgb_only = rgb_only_pass(clip, device)

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rclpy.init(
        args=[
            "demo",
            "--ros-args",
            "-r",
            f"image:={DEFAULT_IMAGE_TOPIC}",
            "-r",
            f"camera_info:={DEFAULT_CAMERA_INFO_TOPIC}",
        ],
        domain_id=int(os.environ.get("ROS_DOMAIN_ID", 42)),
    )
    node = HandMeshNode(
        parameter_overrides=[
            Parameter("device", value=device),
            Parameter("depth_topic", value=DEFAULT_DEPTH_TOPIC),
        ]
    )
    client = EstimatorClient(depth_topic=DEFAULT_DEPTH_TOPIC)
    runner = NodeRunner(node, client)
    video = cv2.VideoWriter(
        str(out_dir / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (3 * w, h)
    )
    rows, tiles = [], []
    try:
        time.sleep(0.5)  # discovery
        t_start = time.perf_counter()
        with BagRecorder(bag_dir, message_dir()) as bag:
            for index, frame in enumerate(clip.frames):
                stamp = FIRST_STAMP_NS + round(index * FRAME_PERIOD_S * 1e9)
                header = make_header(stamp, FRAME_ID)
                bag.write(DEFAULT_CAMERA_INFO_TOPIC, camera_info_msg(K, w, h, header), stamp)
                client.publish_frame(frame.image, K, stamp, FRAME_ID, depth=frame.depth)
                received = client.wait_for(stamp, FRAME_TIMEOUT_S)
                latency = received.arrival["mesh"] - client.sent[stamp]
                for key in CLIENT_OUTPUTS:
                    bag.write(f"/{OUTPUTS[key].topic}", received.messages[key], stamp)
                row, tile = _frame_row(index, frame, received, rgb_only[index], K, out_dir)
                row["image_to_mesh_ms"] = round(latency * 1e3, 1)
                row["stages_ms"] = {k: round(v, 1) for k, v in _wait_stats(node, index + 1).items()}
                rows.append(row)
                tiles.append(tile)
                video.write(cv2.cvtColor(tile, cv2.COLOR_RGB2BGR))
                print(_frame_line(row), flush=True)
        wall_s = time.perf_counter() - t_start
        diagnostics = _final_diagnostics(client, len(rows))
    finally:
        video.release()
        runner.stop()
        node._stop_input()
        node.destroy_node()
        client.destroy_node()
        rclpy.shutdown()

    write_contact_sheet(tiles, out_dir / "contact_sheet.png")
    summary = _summary(rows, clip, frames, seed, noise, wall_s, diagnostics, bag_dir)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "frames"}, indent=1))
    print(
        f"wrote {out_dir}/contact_sheet.png, overlay.mp4, frame_*_overlay.png, summary.json "
        f"and the bag {bag_dir}/"
    )
    return summary


def _frame_row(index: int, frame, received, rgb_only, K: np.ndarray, out_dir: Path):
    """One frame's row of summary.json and its tile: RGB-only fit | RGB-D fit (the node's
    received messages, also written as frame_<index>_overlay.png) | the depth the node got."""
    joints = received.messages["joints"]
    row = {"frame": index, "hands": len(joints.hands), "rgb_only": None, "rgbd": None}
    if rgb_only.hands:
        plain = rgb_only.hands[0]
        row["rgb_only"] = {
            "side": plain.side,
            **errors_vs_truth(plain.keypoints_2d, plain.keypoints_3d, frame),
        }
    if joints.hands:
        hand = joints.hands[0]
        row.update(side=hand.side, track_id=hand.track_id, depth_used=bool(hand.depth_used))
        row["rgbd"] = {"side": hand.side, **errors_vs_truth(hand.joints_2d, hand.joints_3d, frame)}
    overlay = received_drawing(frame.image, received, K)
    cv2.imwrite(
        str(out_dir / f"frame_{index:03d}_overlay.png"), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)
    )
    tile = np.concatenate(
        (
            label(result_drawing(frame.image, rgb_only, K), "RGB only", row["rgb_only"]),
            label(overlay, "RGB-D: the node with the aligned depth", row["rgbd"]),
            label(depth_panel(frame.depth), "the aligned depth (16UC1, noisy)", None),
        ),
        axis=1,
    )
    return row, tile


def _frame_line(row: dict) -> str:
    text = f"frame {row['frame']:2d}: hands={row['hands']} image->mesh {row['image_to_mesh_ms']} ms"
    for name in PASSES:
        if row[name]:
            text += f", {name} 3D {row[name]['mpjpe_mm']} mm PA {row[name]['pa_mpjpe_mm']} mm"
    return text


def _summary(rows, clip, frames, seed, noise, wall_s, diagnostics, bag_dir) -> dict:
    h, w = clip.frames[0].image.shape[:2]
    found = [r for r in rows if r["hands"]]
    tracked = rows[1:] or rows
    return {
        "input": f"synthetic RGB-D clip (open hand model), {frames} frames {w}x{h}, seed {seed}",
        "transport": "ROS 2 topics over Fast DDS: camera node (image, camera_info, aligned "
        "depth 16UC1) -> hand_mesh_estimator (depth_topic set) -> client",
        "depth_noise": dataclasses.asdict(noise),
        "rgb_only": "the same frames without depth through HandTracker.update in this process "
        "(the node's per-frame call, the same settings)",
        "frames_with_a_hand": f"{len(found)}/{len(rows)}",
        "frames_with_depth_used": sum(bool(r.get("depth_used")) for r in rows),
        # the node's rate: one frame in flight at a time, image published -> /hand/mesh received
        "node_frames_per_s": round(
            1000 / statistics.mean(r["image_to_mesh_ms"] for r in tracked), 2
        ),
        "image_to_mesh_ms_median_tracked": round(
            statistics.median(r["image_to_mesh_ms"] for r in tracked), 1
        ),
        "demo_frames_per_s_with_drawing": round(len(rows) / wall_s, 2),
        # side by side: the same frames, RGB only and with the aligned depth
        "mean_errors_vs_truth": {name: mean_errors(rows, name) for name in PASSES},
        "node_depth_diagnostics": {
            k: v for k, v in diagnostics.items() if "depth" in k and k != "depth_topic"
        },
        "bag": str(bag_dir),
        "frames": rows,
    }


def _final_diagnostics(client: EstimatorClient, frames: int, timeout: float = 3.0) -> dict:
    """The node's /diagnostics once they count all ``frames`` (the newest, after timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        values = client.latest_diagnostics()
        if int(values.get("frames_with_depth", 0)) + sum(
            int(v) for k, v in values.items() if k.startswith("frames_without_depth_")
        ) >= frames:
            return values
        time.sleep(0.05)
    return client.latest_diagnostics()


def _wait_stats(node: HandMeshNode, processed: int, timeout: float = 5.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while node.stats.processed < processed and time.monotonic() < deadline:
        time.sleep(0.002)
    return dict(node.stats.stage_ms)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    run(args.out, args.frames, args.seed, args.device)


if __name__ == "__main__":
    main()
