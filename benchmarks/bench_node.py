"""End-to-end benchmark of the ROS 2 node: image in on /camera/image_raw -> /hand/mesh out.

Two runs over real DDS on a rendered clip of one moving hand (warm-started tracking):
  closed loop: publish a frame, wait for its mesh, repeat -> latency per stage and frames/s;
  camera rate: publish at --rate Hz regardless (the hand moving at the clip's 10 Hz pace)
    -> frames answered / sent, image -> mesh latency p50 / p95 / max, frames dropped stale,
    and the CPU use of each thread of the process (the camera node shares it).
Prints the numbers and writes JSON (docs/benchmarks_node.json by default). --planner-only
subscribes to /hand/joints and /hand/mesh_indexed only, so the RViz markers are not built.

    python benchmarks/bench_node.py [--device cpu|cuda] [--frames 120] [--rate 30]
        [--planner-only] [--out F]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import torch
from rclpy.parameter import Parameter

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.ros.client import EstimatorClient, NodeRunner
from hand_mesh_ros.ros.node import HandMeshNode
from hand_mesh_ros.synthetic.clip import render_clip

FRAME_ID = "camera_optical_frame"
WARMUP_FRAMES = 5  # cold start and allocator warm-up, excluded from the statistics
CLIP_HZ = 10.0  # the clip's motion per frame is that of a 10 Hz recording


def clip_frame(clip, index: int):
    """Frames played forwards then backwards (no jump at the end: no spurious cold starts)."""
    n = len(clip.frames)
    k = index % (2 * n - 2)
    return clip.frames[k if k < n else 2 * n - 2 - k]


def closed_loop(node, client, clip, K, frames: int, wait_topic: str) -> dict:
    latencies, stages = [], []
    for i in range(frames):
        frame = clip_frame(clip, i)
        stamp = 1_000_000_000 * (i + 1)
        processed = node.stats.processed
        client.publish_frame(frame.image, K, stamp, FRAME_ID)
        got = client.wait_for(stamp, 60.0, topics=(wait_topic,))
        while node.stats.processed <= processed:
            time.sleep(0.001)
        if i >= WARMUP_FRAMES:
            latencies.append((got.arrival[wait_topic] - client.sent[stamp]) * 1e3)
            stages.append(dict(node.stats.stage_ms))
    keys = stages[0].keys()
    return {
        "frames": len(latencies),
        "image_to_mesh_ms_median": round(statistics.median(latencies), 1),
        "image_to_mesh_ms_p90": round(float(np.percentile(latencies, 90)), 1),
        "frames_per_s": round(1000 / statistics.mean(latencies), 2),
        "stage_ms_median": {k: round(statistics.median(s[k] for s in stages), 2) for k in keys},
    }


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each thread of this process, by name."""
    ticks = os.sysconf("SC_CLK_TCK")
    python_names = {t.native_id: t.name for t in threading.enumerate()}  # worker, ros_spin...
    seconds: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = python_names.get(int(task.name)) or (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        used = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        seconds[name] = seconds.get(name, 0.0) + used
    return seconds


def camera_rate(node, client, clip, K, frames: int, rate: float, wait_topic: str) -> dict:
    before_processed = node.stats.processed
    before_stale = node.stats.dropped["stale"]
    cpu_before = thread_cpu_seconds()
    start = time.perf_counter()
    stamps = []
    for i in range(frames):
        # the hand moves at the clip's speed whatever the camera rate
        frame = clip_frame(clip, int(i * CLIP_HZ / rate))
        stamp = 10_000_000_000_000 + int(i * 1e9 / rate)
        client.publish_frame(frame.image, K, stamp, FRAME_ID)
        stamps.append(stamp)
        time.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
    time.sleep(1.0)
    wall = time.perf_counter() - start
    cpu_after = thread_cpu_seconds()
    processed = node.stats.processed - before_processed
    latencies = []
    for stamp in stamps:
        got = client.outputs(stamp)
        if got is not None and wait_topic in got.arrival:
            latencies.append((got.arrival[wait_topic] - client.sent[stamp]) * 1e3)
    cpu = {
        name: round(100.0 * (used - cpu_before.get(name, 0.0)) / wall, 1)
        for name, used in sorted(cpu_after.items())
        if used - cpu_before.get(name, 0.0) > 0.01 * wall
    }
    result = {
        "published": frames,
        "rate_hz": rate,
        "answered": len(latencies),
        "processed": processed,
        "dropped_stale": node.stats.dropped["stale"] - before_stale,
        "frames_per_s": round(processed / wall, 2),
        "cpu_percent_per_thread": cpu,  # 100 = one core busy for the whole run
    }
    if latencies:
        result.update(
            image_to_mesh_ms_p50=round(float(np.percentile(latencies, 50)), 1),
            image_to_mesh_ms_p95=round(float(np.percentile(latencies, 95)), 1),
            image_to_mesh_ms_max=round(max(latencies), 1),
        )
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--size", default="640x480", help="image WxH")
    parser.add_argument(
        "--planner-only",
        action="store_true",
        help="subscribe only to /hand/joints and /hand/mesh_indexed (no RViz markers built)",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks_node.json"))
    args = parser.parse_args(argv)
    w, h = map(int, args.size.split("x"))
    model = load_hand_model("right")
    clip = render_clip(model, PosePrior.from_model(model), 40, seed=0, image_size=(h, w))
    K = clip.K.double().numpy()

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rclpy.init(
        args=[
            "bench",
            "--ros-args",
            "-r",
            "image:=/camera/image_raw",
            "-r",
            "camera_info:=/camera/camera_info",
        ],
        domain_id=43,
    )
    node = HandMeshNode(parameter_overrides=[Parameter("device", value=args.device)])
    outputs = (
        ("joints", "mesh_indexed")
        if args.planner_only
        else ("joints", "mano", "mesh", "mesh_indexed")
    )
    wait_topic = "mesh_indexed" if args.planner_only else "mesh"
    client = EstimatorClient(outputs=outputs)
    runner = NodeRunner(node, client)
    try:
        time.sleep(0.5)
        loop = closed_loop(node, client, clip, K, args.frames, wait_topic)
        paced = camera_rate(node, client, clip, K, args.frames, args.rate, wait_topic)
    finally:
        runner.stop()
        node._stop_input()
        node.destroy_node()
        client.destroy_node()
        rclpy.shutdown()
    result = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": torch.get_num_threads(),
        "image": f"{w}x{h} rgb8",
        "subscribed": [f"/hand/{name}" for name in outputs],
        "closed_loop": loop,
        "camera_rate": paced,
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
