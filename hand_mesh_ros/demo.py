"""The embedded-default demonstration: the whole pipeline on a synthetic clip with known truth.

No camera and no downloads: a clip of a moving hand is rendered from the bundled open hand
model (random plausible pose, shape and viewpoint, small moves every frame, shaded over a
procedural background; ``synthetic/clip.py``). Each frame goes through the real pipeline --
mediapipe finds the hand and its 2D keypoints, the DHPE mesh estimator regresses the
articulation, PnP places it with the clip's intrinsics, test-time refinement fits it, and
the tracker warm-starts every later frame. Writes overlays, a contact sheet, per-frame JSON
(the ``hand-mesh estimate`` schema) and ``summary.json`` with the errors against the truth
and frames/s to --out.

Usage: python -m hand_mesh_ros.demo [--out out/demo] [--frames 24] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import cv2
import numpy as np
import torch

from hand_mesh_ros.handmodel.model import load_hand_model
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.metrics import pa_mpjpe
from hand_mesh_ros.outputs import write_frame
from hand_mesh_ros.pipeline import CameraIntrinsics, EstimatorConfig, HandMeshEstimator, HandTracker
from hand_mesh_ros.synthetic.clip import FRAME_PERIOD_S, render_clip

SHEET_TILES = 4  # frames shown in the contact sheet


ERROR_KEYS = ("kp2d_px", "pa_mpjpe_mm", "wrist_depth_error_mm")


def keypoint_errors(keypoints_2d, keypoints_3d, frame) -> dict[str, float]:
    """Errors of an estimate's keypoints ((21,2) px, (21,3) m) against a clip frame's truth."""
    keypoints_3d = np.asarray(keypoints_3d, dtype=np.float64)
    truth = torch.tensor(frame.keypoints_3d)[None]
    return {
        "kp2d_px": float(np.linalg.norm(keypoints_2d - frame.keypoints_2d, axis=1).mean()),
        "pa_mpjpe_mm": 1000 * float(pa_mpjpe(torch.tensor(keypoints_3d)[None], truth)),
        "wrist_depth_error_mm": 1000 * abs(keypoints_3d[0, 2] - frame.keypoints_3d[0, 2]),
    }


def frame_errors(hand, frame) -> dict[str, float]:
    return keypoint_errors(hand.keypoints_2d, hand.keypoints_3d, frame)


def mean_errors(rows: list[dict]) -> dict[str, float] | None:
    """Mean of each ERROR_KEYS over the rows that have a hand (None when none has)."""
    found = [r for r in rows if r["hands"]]
    if not found:
        return None
    return {key: round(statistics.mean(r[key] for r in found), 2) for key in ERROR_KEYS}


def write_contact_sheet(tiles: list[np.ndarray], path: Path) -> None:
    """SHEET_TILES RGB tiles spread over the clip, stacked vertically, as a PNG."""
    step = max(1, len(tiles) // SHEET_TILES)
    sheet = np.concatenate(tiles[::step][:SHEET_TILES], axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def run(out_dir: Path, frames: int, seed: int) -> dict:
    torch.set_num_threads(2)
    model = load_hand_model("right")
    clip = render_clip(model, PosePrior.from_model(model), frames, seed=seed)
    camera = CameraIntrinsics.from_matrix(clip.K)
    out_dir.mkdir(parents=True, exist_ok=True)
    estimator = HandMeshEstimator(EstimatorConfig(device="cpu"))
    tracker = HandTracker(estimator)
    rows, tiles = [], []
    try:
        for index, frame in enumerate(clip.frames):
            result = tracker.update(frame.image, camera, stamp=index * FRAME_PERIOD_S)
            files = write_frame(
                out_dir, f"frame_{index:03d}", frame.image, result, f"frame_{index:03d}"
            )
            row = {
                "frame": index,
                "hands": len(result.hands),
                "ms": round(result.timings_ms["total"], 1),
            }
            if result.hands:
                hand = result.hands[0]
                row.update(
                    side=hand.side, track_id=hand.track_id, iterations=hand.refine_iterations
                )
                row.update({key: round(v, 2) for key, v in frame_errors(hand, frame).items()})
            rows.append(row)
            tiles.append(
                np.concatenate(
                    (frame.image, cv2.cvtColor(cv2.imread(str(files.overlay)), cv2.COLOR_BGR2RGB)),
                    axis=1,
                )
            )
            print(
                f"frame {index:2d}: "
                + ", ".join(f"{k}={v}" for k, v in row.items() if k != "frame")
            )
    finally:
        estimator.close()
    write_contact_sheet(tiles, out_dir / "contact_sheet.png")
    found = [r for r in rows if r["hands"]]
    summary = {
        "input": f"synthetic clip (open hand model), {frames} frames 640x480, seed {seed}",
        "frames_with_a_hand": f"{len(found)}/{len(rows)}",
        "tracked_frames_per_s": round(1000 / statistics.mean(r["ms"] for r in rows[1:]), 2)
        if len(rows) > 1
        else None,
        "mean_errors_vs_truth": mean_errors(rows),
        "frames": rows,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "frames"}))
    print(f"wrote {out_dir}/contact_sheet.png, frame_*_overlay.png, frame_*.json, summary.json")
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(args.out, args.frames, args.seed)


if __name__ == "__main__":
    main()
