"""End-to-end benchmark of the ROS 2 node as a robot runs it: three processes over real DDS.

  node      python -m hand_mesh_ros.ros.main (hand-mesh-node: the node the launch file runs)
  camera    python -m hand_mesh_ros.ros.camera_stream: --rate Hz, WxH rgb8, reliable, stamps =
            wall-clock capture time; the rendered clip of a moving hand (its 10 Hz pace
            whatever the rate) or --image FILE repeated; --depth: with its aligned depth
  this one  subscribes to what a grasp planner reads (/hand/joints, /hand/mesh_indexed; with
            --rviz also the RViz markers /hand/mesh) and /diagnostics

A short warm-up stream first (cold start, allocator), then the measured one. Prints and writes
(JSON, docs/benchmarks_node.json by default): frames answered / sent, image -> mesh latency
p50 / p95 / max (capture stamp -> the mesh's arrival in this process), the node's per-stage
times (medians of its /diagnostics), frames received / processed / stale, and the CPU use of
each thread of the node process (100 = one core busy for the whole run).

    python benchmarks/bench_node.py [--device cpu|cuda] [--frames 300] [--rate 30]
        [--size 640x480] [--image FILE] [--rviz] [--depth] [--param NAME:=VALUE ...] [--out F]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy

from hand_mesh_ros.ros.client import EstimatorClient, NodeRunner
from hand_mesh_ros.ros.config import DEFAULT_DEPTH_TOPIC

CLIP_HZ = 10.0  # the clip's motion per frame is that of a 10 Hz recording
WARMUP_FRAMES = 45
DOMAIN_ID = 47
TOPICS = ("/camera/image_raw", "/camera/camera_info")


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each thread of process ``pid``, by name
    (threads of one name summed: mediapipe's pool, the DDS threads)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        name = name.split("/")[0]  # mediapipe/123 -> mediapipe
        seconds[name] = seconds.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def stream(args, frames: int, env: dict) -> dict:
    """Run the camera process to the end; its JSON summary."""
    command = [
        sys.executable, "-m", "hand_mesh_ros.ros.camera_stream", "--rate", str(args.rate),
        "--frames", str(frames), "--size", args.size, "--reliability", "reliable",
        "--stamp-now", "--clip-hz", str(CLIP_HZ), "--wait-subscribers", "30",
        "--image-topic", TOPICS[0], "--camera-info-topic", TOPICS[1],
    ]
    if args.image:
        command += ["--image", args.image]
    if args.depth:
        command += ["--depth-topic", DEFAULT_DEPTH_TOPIC]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"camera_stream failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def diagnostics_between(client, start_ns: int, end_ns: int) -> list[dict[str, str]]:
    """The node's /diagnostics values published between two wall-clock times."""
    found = []
    with client._lock:
        arrays = list(client.diagnostics)
    for array in arrays:
        stamp = array.header.stamp.sec * 1_000_000_000 + array.header.stamp.nanosec
        if start_ns <= stamp <= end_ns:
            for status in array.status:
                if status.name.startswith("hand_mesh_ros"):
                    found.append({kv.key: kv.value for kv in status.values})
    return found


class CpuSampler:
    """Samples the node's per-thread CPU seconds every ``period_s`` (wall-clock stamped), so
    the use can be taken over the streaming window alone."""

    def __init__(self, pid: int, period_s: float = 0.25) -> None:
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._pid, self._period_s = pid, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), thread_cpu_seconds(self._pid)))
            self._stop.wait(self._period_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def percent_between(self, start_s: float, end_s: float) -> dict[str, float]:
        """Per thread name, % of one core used between two wall-clock times."""
        inside = [s for s in self.samples if start_s <= s[0] <= end_s]
        if len(inside) < 2:
            return {}
        (t0, before), (t1, after) = inside[0], inside[-1]
        wall = t1 - t0
        return {
            name: round(100.0 * (used - before.get(name, 0.0)) / wall, 1)
            for name, used in sorted(after.items())
            if used - before.get(name, 0.0) > 0.01 * wall
        }


def measure(args, client, node_pid: int, env: dict, wait_topic: str) -> dict:
    sampler = CpuSampler(node_pid)
    summary = stream(args, args.frames, env)
    time.sleep(1.0)  # the last frames' outputs
    sampler.stop()
    first, last = summary["first_stamp_ns"], summary["last_stamp_ns"]
    latencies = []
    to_wall_s = time.time() - time.perf_counter()  # the client's arrival times are perf_counter
    with client._lock:
        entries = [(s, r) for s, r in client.received.items() if first <= s <= last]
    for stamp, entry in entries:
        if wait_topic in entry.arrival:
            latencies.append((entry.arrival[wait_topic] + to_wall_s) * 1e3 - stamp * 1e-6)
    diagnostics = diagnostics_between(client, first, last + 2_000_000_000)
    stage_keys = sorted({k for d in diagnostics for k in d if k.startswith("latency_")})
    stages = {
        k[len("latency_"):-len("_ms")]: round(statistics.median(float(d[k]) for d in diagnostics
                                                                if k in d), 2)
        for k in stage_keys
    }
    end = diagnostics[-1] if diagnostics else {}
    start = diagnostics_between(client, 0, first)[-1:] or [{}]
    counts = {
        key: int(end.get(key, 0)) - int(start[0].get(key, 0))
        for key in ("frames_received", "frames_processed", "dropped_stale",
                    "frames_stale_after_detect",
                    "frames_lost_in_transport", "frames_missed_in_sequence")
    }
    result = {
        "sent": summary["sent"],
        "camera_rate_hz": summary["rate_hz"],
        "answered": len(latencies),
        "answered_fraction": round(len(latencies) / summary["sent"], 3),
        "node_counts": counts,
        "stage_ms_median": stages,  # the node's own per-frame times (its /diagnostics)
        # from the first frame to the last one's processing
        "cpu_percent_per_thread": sampler.percent_between(first * 1e-9, last * 1e-9 + 0.5),
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
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--size", default="640x480", help="image WxH")
    parser.add_argument("--image", default=None, help="stream this image instead of the clip")
    parser.add_argument("--rviz", action="store_true", help="also subscribe to /hand/mesh")
    parser.add_argument("--depth", action="store_true",
                        help="an RGB-D camera: the clip's aligned 16UC1 depth too, depth_topic set")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="a node parameter (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks_node.json"))
    args = parser.parse_args(argv)
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    outputs = ("joints", "mesh_indexed", "mesh") if args.rviz else ("joints", "mesh_indexed")
    wait_topic = "mesh_indexed"
    params = [f"device:={args.device}", "diagnostics_period_s:=0.25", *args.param]
    if args.depth:
        params.append(f"depth_topic:={DEFAULT_DEPTH_TOPIC}")
    node = subprocess.Popen(
        [sys.executable, "-m", "hand_mesh_ros.ros.main", "--image-topic", TOPICS[0],
         "--camera-info-topic", TOPICS[1], "--ros-args",
         *[a for p in params for a in ("-p", p)]],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    os.environ.update(ROS_DOMAIN_ID=str(DOMAIN_ID), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    rclpy.init(args=["bench_node"])
    client = EstimatorClient(image_topic=None, outputs=outputs, max_kept=100_000)
    runner = NodeRunner(client)
    try:
        deadline = time.monotonic() + 120
        while not client.latest_diagnostics() and time.monotonic() < deadline:
            if node.poll() is not None:
                raise RuntimeError(f"the node exited: {node.stderr.read()[-2000:]}")
            time.sleep(0.2)
        stream(args, WARMUP_FRAMES, env)  # cold start, warm-up
        time.sleep(1.0)
        result = measure(args, client, node.pid, env, wait_topic)
    finally:
        runner.stop()
        client.destroy_node()
        rclpy.shutdown()
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
    report = {
        "device": args.device,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "image": f"{args.size} rgb8, {'--image ' + args.image if args.image else 'rendered clip'}"
        + (", aligned 16UC1 depth" if args.depth else ""),
        "processes": "node | camera_stream | this subscriber",
        "subscribed": [f"/hand/{name}" for name in outputs],
        "node_parameters": params,
        "rate_hz": args.rate,
        **result,
    }
    print(json.dumps(report, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
