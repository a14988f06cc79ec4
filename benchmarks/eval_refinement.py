"""Measure test-time refinement (DHPE Eq. 13) on synthetic targets; writes docs numbers.

1. Accuracy: N random plausible hands (pose from the prior, shape ~ N(0,1) clipped, random
   viewpoint and position) in a 320x240 image with a 300 px focal length. Targets are the
   exact projected keypoints and the hard masks. Each is fitted from the prior's mean pose and
   zero shape (global rotation/translation from PnP on the keypoints), with the given masks and,
   separately, with keypoints plus the self-rendered mask (what exists at test time).
   Reports 2D keypoint error (px), mask IoU and 3D PA-MPJPE (mm), before and after.
2. Warm start: a sequence whose hand moves a little each frame. Each frame is fitted cold
   (mean pose, 50 iterations); then warm from the previous frame's warm result. Reports how
   many iterations the warm start needs to reach the cold start's final loss.

Usage: python benchmarks/eval_refinement.py [--samples 50] [--frames 30] [--out docs/refinement]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from hand_mesh_ros import load_hand_model
from hand_mesh_ros.camera import intrinsics_matrix, project
from hand_mesh_ros.fitting import RefineConfig, align_to_keypoints, refine
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.metrics import mask_iou, pa_mpjpe
from hand_mesh_ros.render import rasterize
from hand_mesh_ros.synthetic import perturb_params, sample_scene_params

IMAGE_SIZE = (240, 320)  # H, W
FOCAL = 300.0
REACHED_TOLERANCE = 0.01  # a start "reaches" the cold loss when within 1 % of it


def camera() -> torch.Tensor:
    h, w = IMAGE_SIZE
    return intrinsics_matrix(FOCAL, FOCAL, (w - 1) / 2, (h - 1) / 2)


def observe(model, params: HandParams, K):
    """Exact projected keypoints (B,21,2), hard masks (B,H,W) and 3D keypoints (B,21,3)."""
    with torch.no_grad():
        out = model(**params.as_kwargs())
        masks = rasterize(out.vertices, model.faces, K, image_size=IMAGE_SIZE).mask.float()
        return project(out.keypoints, K), masks, out.keypoints


def scores(model, params: HandParams, K, kp2d, masks, kp3d) -> dict[str, torch.Tensor]:
    pred_kp2d, pred_masks, pred_kp3d = observe(model, params, K)
    return {
        "kp2d_px": (pred_kp2d - kp2d).norm(dim=-1).mean(-1),
        "mask_iou": mask_iou(pred_masks, masks),
        "pa_mpjpe_mm": 1000.0 * pa_mpjpe(pred_kp3d.double(), kp3d.double()),
    }


def summarise(values: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    return {
        k: {"mean": float(v.double().mean()), "median": float(v.double().median())}
        for k, v in values.items()
    }


def cold_start(model, prior, K, kp2d) -> HandParams:
    mean = prior.mean_pose().to(kp2d.dtype).expand(kp2d.shape[0], -1)
    return align_to_keypoints(model, kp2d, K, pose=mean)


def accuracy(model, prior, n: int, generator) -> dict:
    K = camera()
    truth = sample_scene_params(model, prior, n, K, IMAGE_SIZE, generator=generator)
    kp2d, masks, kp3d = observe(model, truth, K)
    init = cold_start(model, prior, K, kp2d)
    report = {"initial": summarise(scores(model, init, K, kp2d, masks, kp3d))}
    cfg = RefineConfig()
    for name, mask in (("keypoints+mask", masks), ("keypoints+self_rendered_mask", None)):
        start = time.perf_counter()
        result = refine(model, init, K, kp2d, mask=mask, prior=prior, config=cfg)
        seconds = time.perf_counter() - start
        report[name] = summarise(scores(model, result.params, K, kp2d, masks, kp3d))
        report[name]["iterations"] = result.iterations
        report[name]["seconds_for_batch"] = seconds
    report["samples"] = n
    return report


def warm_start(model, prior, frames: int, generator) -> dict:
    K = camera()
    truth = sample_scene_params(model, prior, 1, K, IMAGE_SIZE, generator=generator)
    no_early_stop = RefineConfig(rel_tol=0.0, abs_tol=0.0)
    needed, cold_needed, cold_losses, warm_final = [], [], [], []
    previous = None
    for _ in range(frames):
        kp2d, masks, _ = observe(model, truth, K)
        cold = refine(
            model,
            cold_start(model, prior, K, kp2d),
            K,
            kp2d,
            mask=masks,
            prior=prior,
            config=no_early_stop,
        )
        # "reached" = within 1 % of the cold start's final loss, for both starts
        target_loss = float(cold.loss_history[-1]) * (1 + REACHED_TOLERANCE)
        cold_losses.append(float(cold.loss_history[-1]))
        cold_needed.append(int(torch.nonzero(cold.loss_history <= target_loss)[0]))
        if previous is not None:
            warm = refine(model, previous, K, kp2d, mask=masks, prior=prior, config=no_early_stop)
            hist = warm.loss_history
            reached = torch.nonzero(hist <= target_loss)
            needed.append(int(reached[0]) if len(reached) else None)
            warm_final.append(float(hist[-1]))
            previous = warm.params
        else:
            previous = cold.params
        truth = perturb_params(truth, generator=generator)
        truth = replace(truth, pose=prior.clamp(truth.pose))
    reached = [n for n in needed if n is not None]
    return {
        "frames": frames,
        "cold_iterations": no_early_stop.iterations,
        "reached_tolerance": REACHED_TOLERANCE,
        "cold_iterations_to_reach_cold_loss": cold_needed,
        "cold_iterations_mean": sum(cold_needed) / len(cold_needed),
        "cold_iterations_median": sorted(cold_needed)[len(cold_needed) // 2],
        "warm_iterations_to_reach_cold_loss": needed,
        "warm_reached_fraction": len(reached) / max(len(needed), 1),
        "warm_iterations_mean": sum(reached) / max(len(reached), 1),
        "warm_iterations_median": sorted(reached)[len(reached) // 2] if reached else None,
        "cold_final_loss_mean": sum(cold_losses) / len(cold_losses),
        "warm_final_loss_mean": sum(warm_final) / max(len(warm_final), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    model = load_hand_model("right")
    prior = PosePrior.from_model(model)
    report = {
        "accuracy": accuracy(model, prior, args.samples, generator),
        "warm_start": warm_start(model, prior, args.frames, generator),
        "threads": args.threads,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
