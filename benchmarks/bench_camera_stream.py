"""A camera in another process streaming to the node: frames sent / received / processed /
lost before the node / stale, per image size and QoS (issue: every frame received).

The camera is ``python -m hand_mesh_ros.ros.camera_stream`` (its own process, as a driver on a
robot); the estimator node runs here. For each image size, camera reliability and the node's
``image_qos``, a fresh node receives ``--frames`` frames at ``--rate`` Hz. Prints a table and
writes JSON (docs/benchmarks_camera_stream.json by default).

    python benchmarks/bench_camera_stream.py [--frames 300] [--rate 30]
        [--sizes 640x480,1280x720] [--node-qos auto,sensor_data] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from hand_mesh_ros.ros.node import HandMeshNode

SETTLE_S = 3.0  # after the camera ends: the last frame is processed


def run_one(size: str, camera_qos: str, node_qos: str, args, domain: int) -> dict:
    node = HandMeshNode(
        parameter_overrides=[
            Parameter("device", value=args.device),
            Parameter("image_qos", value=node_qos),
        ],
        cli_args=["--ros-args", "-r", "image:=/camera/image_raw",
                  "-r", "camera_info:=/camera/camera_info"],
    )
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    camera = subprocess.Popen(
        [sys.executable, "-m", "hand_mesh_ros.ros.camera_stream", "--frames", str(args.frames),
         "--rate", str(args.rate), "--size", size, "--reliability", camera_qos],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    deadline, subscribed = None, set()
    while True:
        executor.spin_once(timeout_sec=0.05)
        if node.stats.received and node._image_input is not None:
            subscribed.add(node._image_input.reliability)  # while frames arrive
        if camera.poll() is not None and deadline is None:
            deadline = time.monotonic() + SETTLE_S
        if deadline is not None and time.monotonic() > deadline:
            break
    sent = json.loads(camera.stdout.read().strip().splitlines()[-1])
    values = node.stats.snapshot(time.monotonic())
    node._stop_input()
    executor.shutdown()
    node.destroy_node()
    row = {
        "size": size,
        "camera": camera_qos,
        "node_image_qos": node_qos,
        "subscribed": "+".join(sorted(subscribed)),
        "sent": sent["sent"],
        "camera_rate_hz": sent["rate_hz"],
        "received": values["frames_received"],
        "processed": values["frames_processed"],
        "stale": values.get("dropped_stale", 0),
        "lost_in_transport": values["frames_lost_in_transport"],
        "missed_in_sequence": values["frames_missed_in_sequence"],
        "other_drops": values["frames_dropped"] - values.get("dropped_stale", 0),
    }
    row["received_pct"] = round(100.0 * row["received"] / max(row["sent"], 1), 1)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--cameras", default="reliable,best_effort")
    parser.add_argument("--node-qos", default="auto,sensor_data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks_camera_stream.json"))
    args = parser.parse_args(argv)
    domain = 50 + os.getpid() % 50
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rclpy.init(domain_id=domain)
    rows = []
    try:
        for size in args.sizes.split(","):
            for camera_qos in args.cameras.split(","):
                for node_qos in args.node_qos.split(","):
                    row = run_one(size, camera_qos, node_qos, args, domain)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        rclpy.shutdown()
    header = ("size", "camera", "node_image_qos", "subscribed", "sent", "received",
              "processed", "stale", "lost_in_transport", "missed_in_sequence", "received_pct")
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[k]) for k in header))
    env = {k: v for k, v in os.environ.items() if k.startswith(("FASTDDS", "FASTRTPS", "RMW"))}
    result = {"rate_hz": args.rate, "device": args.device, "dds_environment": env, "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
