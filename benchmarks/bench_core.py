"""Core benchmark: prints per-operation times on the CPU and, when present, on CUDA.

Operations: hand model forward and forward+backward at batch 1 and 32; soft silhouette
forward+backward (renderer defaults, and the refinement's sigma with back-face culling) and
hard rasterisation at 64/128/224 px; one test-time refinement
iteration at 64 and 128 px. Times are medians over repeats after warm-up.

Usage: python benchmarks/bench_core.py [--threads 2] [--repeats 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial

import torch

from hand_mesh_ros import load_hand_model, render_silhouette
from hand_mesh_ros.camera import intrinsics_matrix
from hand_mesh_ros.fitting import RefineConfig, align_to_keypoints, refine
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.render import rasterize

HAND_DEPTH = 0.5  # metres
REFINE = RefineConfig()  # the refinement's renderer settings (sigma, back-face culling)


def timed(fn, device: str, repeats: int, warmup: int = 3) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def hand_in_view(model, batch: int, device: str):
    """A relaxed hand filling the middle of the view (camera frame), and its pose tensor."""
    prior = PosePrior.from_model(model)
    pose = prior.mean_pose().to(device).expand(batch, -1).clone()
    transl = torch.tensor([[0.0, 0.08, HAND_DEPTH]], device=device).expand(batch, -1)
    return pose, transl, prior


def bench_model(model, device: str, repeats: int) -> dict[str, float]:
    results = {}
    for batch in (1, 32):
        pose, transl, _ = hand_in_view(model, batch, device)
        shape = torch.zeros(batch, 10, device=device)
        forward = partial(model, pose=pose, shape=shape, transl=transl)
        results[f"hand_model_forward_b{batch}_ms"] = timed(forward, device, repeats)
        trainable = partial(model, pose=pose.clone().requires_grad_(), shape=shape, transl=transl)
        results[f"hand_model_forward_backward_b{batch}_ms"] = timed(
            lambda fn=trainable: fn().vertices.sum().backward(), device, repeats
        )
    return results


def bench_renderer(model, device: str, repeats: int) -> dict[str, float]:
    results = {}
    pose, transl, _ = hand_in_view(model, 1, device)
    with torch.no_grad():
        verts = model(pose=pose, transl=transl).vertices
    for size in (64, 128, 224):
        # focal chosen so the hand fills about 2/3 of the image at every size
        K = intrinsics_matrix(size * 1.6, size * 1.6, (size - 1) / 2, (size - 1) / 2, device=device)
        image_size = (size, size)
        soft = partial(
            render_silhouette, verts.clone().requires_grad_(), model.faces, K, image_size
        )
        soft_fit = partial(
            render_silhouette,
            verts.clone().requires_grad_(),
            model.faces,
            K,
            image_size,
            sigma=REFINE.sigma,
            cull_backfaces=REFINE.cull_backfaces,
        )
        results[f"soft_silhouette_refine_settings_fwd_bwd_{size}px_ms"] = timed(
            lambda fn=soft_fit: fn().sum().backward(), device, repeats
        )
        hard = partial(rasterize, verts, model.faces, K, image_size)
        results[f"soft_silhouette_fwd_bwd_{size}px_ms"] = timed(
            lambda fn=soft: fn().sum().backward(), device, repeats
        )
        results[f"hard_rasterize_{size}px_ms"] = timed(hard, device, repeats)
    return results


def bench_refinement(model, device: str, repeats: int) -> dict[str, float]:
    results = {}
    pose, transl, prior = hand_in_view(model, 1, device)
    K = intrinsics_matrix(300.0, 300.0, 159.5, 119.5, device=device)
    with torch.no_grad():
        from hand_mesh_ros.camera import project

        target = project(model(pose=pose + 0.1, transl=transl).keypoints, K)
    init = align_to_keypoints(model, target, K, pose=pose)
    iterations = 10
    for size in (64, 128):
        cfg = RefineConfig(iterations=iterations, render_size=size, rel_tol=0.0, abs_tol=0.0)
        ms = timed(
            lambda cfg=cfg: refine(model, init, K, target, prior=prior, config=cfg),
            device,
            max(3, repeats // 4),
            warmup=1,
        )
        results[f"refine_iteration_{size}px_ms"] = ms / iterations
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report = {"torch": torch.__version__, "cpu_threads": args.threads}
    for device in devices:
        model = load_hand_model("right", device=device)
        row = {}
        row.update(bench_model(model, device, args.repeats))
        row.update(bench_renderer(model, device, args.repeats))
        row.update(bench_refinement(model, device, args.repeats))
        report[device] = row
        if device == "cuda":
            report["cuda_device"] = torch.cuda.get_device_name()
        for key, value in row.items():
            print(f"{device:5s} {key:42s} {value:9.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
