"""The README's first command: the estimator node on an embedded clip, over real ROS 2 topics.

A moving right hand rendered from the bundled open hand model (so the truth is known) is
published frame by frame on /camera/image_raw + /camera/camera_info by a camera-side node; the
estimator node (the same one `ros2 launch hand_mesh_ros estimator.launch.py` starts) answers on
/hand/joints, /hand/mano, /hand/mesh and /hand/mesh_indexed. Everything it publishes is recorded
into a ROS 2 bag; overlays drawn from the received messages, a video, and a summary with
frames/s and the error against the truth are written next to it.

Usage: python -m hand_mesh_ros.ros.demo [--out out/demo] [--frames 48] [--seed 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
import torch
from rclpy.parameter import Parameter

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.demo import keypoint_errors, mean_errors, write_contact_sheet
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.ros.bag import BagRecorder
from hand_mesh_ros.ros.client import (
    EstimatorClient,
    NodeRunner,
    camera_info_msg,
    make_header,
)
from hand_mesh_ros.ros.config import DEFAULT_CAMERA_INFO_TOPIC, DEFAULT_IMAGE_TOPIC
from hand_mesh_ros.ros.node import HandMeshNode
from hand_mesh_ros.ros.topics import CLIENT_OUTPUTS, OUTPUTS
from hand_mesh_ros.synthetic.clip import FRAME_PERIOD_S, render_clip
from hand_mesh_ros.visualize import SIDE_COLORS, draw_keypoints, overlay_mesh

FRAME_ID = "camera_optical_frame"
FRAME_TIMEOUT_S = 60.0
VIDEO_FPS = 10
REPO_MSG_DIR = Path(__file__).resolve().parents[2] / "msg"


def message_dir() -> Path:
    """msg/*.msg of this package: the source tree, or a ROS install's share/hand_mesh_ros/msg."""
    if REPO_MSG_DIR.is_dir():
        return REPO_MSG_DIR
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / "hand_mesh_ros" / "msg"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("hand_mesh_ros msg/*.msg not found (source tree or AMENT_PREFIX_PATH)")


def hand_errors(joints_msg, frame) -> dict[str, float]:
    """Errors of the first hand in a HandJointsArray against the clip frame's truth."""
    hand = joints_msg.hands[0]
    xyz = np.array(hand.joints_3d, dtype=np.float64).reshape(21, 3)
    uv = np.array(hand.joints_2d, dtype=np.float64).reshape(21, 2)
    return keypoint_errors(uv, xyz, frame)


def draw_outputs(image: np.ndarray, received, K: np.ndarray) -> np.ndarray:
    """The received meshes (hand/mesh_indexed) and joints (hand/joints) drawn on the image."""
    out = image.copy()
    Kt = torch.tensor(K)
    for mesh in received.messages["mesh_indexed"].hands:
        vertices = torch.tensor(np.array(mesh.vertices, dtype=np.float64).reshape(-1, 3))
        faces = torch.tensor(np.array(mesh.triangles, dtype=np.int64).reshape(-1, 3))
        out = overlay_mesh(out, vertices, faces, Kt, color=SIDE_COLORS[mesh.side])
    for hand in received.messages["joints"].hands:
        out = draw_keypoints(out, np.array(hand.joints_2d, dtype=np.float64).reshape(21, 2))
    return out


def _wait_stats(node: HandMeshNode, processed: int, timeout: float = 5.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while node.stats.processed < processed and time.monotonic() < deadline:
        time.sleep(0.002)
    return dict(node.stats.stage_ms)


def run(out_dir: Path, frames: int, seed: int, device: str) -> dict:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = load_hand_model("right")
    clip = render_clip(model, PosePrior.from_model(model), frames, seed=seed)
    K = clip.K.double().numpy()
    h, w = clip.frames[0].image.shape[:2]
    out_dir.mkdir(parents=True, exist_ok=True)
    bag_dir = out_dir / "hand_topics_bag"
    shutil.rmtree(bag_dir, ignore_errors=True)

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
    node = HandMeshNode(parameter_overrides=[Parameter("device", value=device)])
    client = EstimatorClient()
    runner = NodeRunner(node, client)
    video = cv2.VideoWriter(
        str(out_dir / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (2 * w, h)
    )
    rows, tiles = [], []
    try:
        time.sleep(0.5)  # discovery
        t_start = time.perf_counter()
        with BagRecorder(bag_dir, message_dir()) as bag:
            for index, frame in enumerate(clip.frames):
                stamp = 1_800_000_000_000_000_000 + round(index * FRAME_PERIOD_S * 1e9)
                header = make_header(stamp, FRAME_ID)
                bag.write(DEFAULT_CAMERA_INFO_TOPIC, camera_info_msg(K, w, h, header), stamp)
                client.publish_frame(frame.image, K, stamp, FRAME_ID)
                received = client.wait_for(stamp, FRAME_TIMEOUT_S)
                latency = received.arrival["mesh"] - client.sent[stamp]
                stages = _wait_stats(node, index + 1)
                for key in CLIENT_OUTPUTS:
                    bag.write(f"/{OUTPUTS[key].topic}", received.messages[key], stamp)
                joints = received.messages["joints"]
                row = {
                    "frame": index,
                    "hands": len(joints.hands),
                    "image_to_mesh_ms": round(latency * 1e3, 1),
                    "stages_ms": {k: round(v, 1) for k, v in stages.items()},
                }
                if joints.hands:
                    row.update(side=joints.hands[0].side, track_id=joints.hands[0].track_id)
                    errors = hand_errors(joints, frame)
                    row.update({k: round(v, 2) for k, v in errors.items()})
                rows.append(row)
                overlay = draw_outputs(frame.image, received, K)
                cv2.imwrite(
                    str(out_dir / f"frame_{index:03d}_overlay.png"),
                    cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR),
                )
                tile = np.concatenate((frame.image, overlay), axis=1)
                tiles.append(tile)
                video.write(cv2.cvtColor(tile, cv2.COLOR_RGB2BGR))
                print(
                    f"frame {index:2d}: hands={row['hands']} "
                    f"image->mesh {row['image_to_mesh_ms']} ms"
                    + (
                        f", 2D {row['kp2d_px']} px, PA-MPJPE {row['pa_mpjpe_mm']} mm"
                        if joints.hands
                        else ""
                    ),
                    flush=True,
                )
        wall_s = time.perf_counter() - t_start
    finally:
        video.release()
        runner.stop()
        node._stop_input()
        node.destroy_node()
        client.destroy_node()
        rclpy.shutdown()

    write_contact_sheet(tiles, out_dir / "contact_sheet.png")
    found = [r for r in rows if r["hands"]]
    tracked = rows[1:] or rows
    summary = {
        "input": f"synthetic clip (open hand model), {frames} frames {w}x{h}, seed {seed}",
        "transport": "ROS 2 topics over Fast DDS: camera node -> hand_mesh_estimator -> client",
        "frames_with_a_hand": f"{len(found)}/{len(rows)}",
        # the node's rate: one frame in flight at a time, image published -> /hand/mesh received
        "node_frames_per_s": round(
            1000 / statistics.mean(r["image_to_mesh_ms"] for r in tracked), 2
        ),
        "image_to_mesh_ms_median_tracked": round(
            statistics.median(r["image_to_mesh_ms"] for r in tracked), 1
        ),
        "demo_frames_per_s_with_drawing": round(len(rows) / wall_s, 2),
        "mean_errors_vs_truth": mean_errors(rows),
        "bag": str(bag_dir),
        "frames": rows,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "frames"}, indent=1))
    print(
        f"wrote {out_dir}/contact_sheet.png, overlay.mp4, frame_*_overlay.png, summary.json "
        f"and the bag {bag_dir}/"
    )
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    run(args.out, args.frames, args.seed, args.device)


if __name__ == "__main__":
    main()
