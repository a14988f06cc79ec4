"""Point-cloud benchmark (issue 13): the cost per frame of ``hand/points`` for 2 hands.

For each case -- the mesh vertices (900 per hand) or 2,000 points sampled per hand, without or
with a 1 cm inflation, built by sensor_msgs_py or by the numpy fallback -- it times, per frame:

    points     surface_points.hand_points for both hands (sampling, normals, inflation)
    cloud      ros.point_cloud.points_cloud (HandPoints validation + PointCloud2 build)
    frame      points + cloud, what the node adds per frame when someone subscribes
    serialise  rclpy's CDR serialisation of the message (what publishing to another process
               adds on top; the same for both backends)

and prints median and 95th percentile milliseconds over ``--repeats`` frames after a warm-up.
The hands are the bundled open hand model at zero pose, 0.5 m and 0.6 m in front of the
camera. Run it pinned to the node's budget, e.g.

    taskset -c 0,1 python benchmarks/bench_point_cloud.py [--repeats 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch
from rclpy.serialization import serialize_message
from std_msgs.msg import Header

from hand_mesh_ros.handmodel.model import load_hand_model
from hand_mesh_ros.ros.point_cloud import HAVE_SENSOR_MSGS_PY, HandPoints, points_cloud
from hand_mesh_ros.surface_points import hand_points

SAMPLED = 2000  # points per hand, the figure
INFLATE_M = 0.01  # a 1 cm safety margin
WARMUP = 10
HANDS = (("right", 1, (0.0, 0.0, 0.5)), ("left", 2, (0.15, 0.0, 0.6)))  # side, track id, metres
FRAME_BUDGET_MS = 1000.0 / 30.0  # one frame at 30 Hz


def load_hands() -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """(side, track id, vertices (V,3) float32 camera frame, faces (F,3)) for both hands."""
    hands = []
    for side, track_id, transl in HANDS:
        model = load_hand_model(side)
        with torch.inference_mode():
            vertices = model(transl=torch.tensor([transl])).vertices[0]
        hands.append((side, track_id, vertices.numpy(), model.faces.numpy()))
    return hands


def stats(times_ms: list[float]) -> dict[str, float]:
    return {"median_ms": float(np.median(times_ms)), "p95_ms": float(np.percentile(times_ms, 95))}


def bench_case(hands, count: int, inflate_m: float, backend: str, repeats: int) -> dict:
    header = Header(frame_id="camera_optical_frame")
    times = {"points": [], "cloud": [], "frame": [], "serialise": []}
    width = 0
    for i in range(WARMUP + repeats):
        start = time.perf_counter()
        per_hand = [
            (side, track_id, hand_points(v, f, count=count, inflate_m=inflate_m, seed=0))
            for side, track_id, v, f in hands
        ]
        middle = time.perf_counter()
        msg = points_cloud(
            [HandPoints(track_id, side, p) for side, track_id, p in per_hand],
            header,
            backend=backend,
        )
        end = time.perf_counter()
        serialize_message(msg)
        done = time.perf_counter()
        width = msg.width
        if i >= WARMUP:
            times["points"].append((middle - start) * 1e3)
            times["cloud"].append((end - middle) * 1e3)
            times["frame"].append((end - start) * 1e3)
            times["serialise"].append((done - end) * 1e3)
    return {
        "points_per_hand": "vertices" if count == 0 else count,
        "inflate_m": inflate_m,
        "backend": backend,
        "cloud_points": width,
        "cloud_bytes": width * msg.point_step,
        **{name: stats(values) for name, values in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", default="docs/benchmarks_point_cloud.json")
    args = parser.parse_args()

    hands = load_hands()
    backends = ["sensor_msgs_py", "numpy"] if HAVE_SENSOR_MSGS_PY else ["numpy"]
    load_before = os.getloadavg()
    results = [
        bench_case(hands, count, inflate, backend, args.repeats)
        for count in (0, SAMPLED)
        for inflate in (0.0, INFLATE_M)
        for backend in backends
    ]
    load_after = os.getloadavg()

    print(f"{args.repeats} frames of 2 hands; ms per frame, median / p95")
    print(
        f"{'points/hand':>11} {'inflate':>7} {'backend':>14} {'N':>5} "
        f"{'points':>13} {'cloud':>13} {'frame':>13} {'serialise':>13}"
    )
    for r in results:
        cells = " ".join(
            f"{r[k]['median_ms']:6.3f}/{r[k]['p95_ms']:6.3f}"
            for k in ("points", "cloud", "frame", "serialise")
        )
        print(
            f"{r['points_per_hand']!s:>11} {r['inflate_m']:7.3f} {r['backend']:>14} "
            f"{r['cloud_points']:5d} {cells}"
        )
    worst = max(r["frame"]["p95_ms"] for r in results)
    print(f"worst p95 per frame {worst:.2f} ms = {100 * worst / FRAME_BUDGET_MS:.1f}% of 33.3 ms")
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}")

    report = {
        "repeats": args.repeats,
        "hands": len(hands),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sensor_msgs_py": HAVE_SENSOR_MSGS_PY,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "note": "shared machine: other engineers' tests ran at the same time",
        "results": results,
    }
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
            out.write("\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
