"""A synthetic video clip with known ground truth: a moving, shaded hand over a background.

The open hand model in a random plausible pose, shape and viewpoint (``scenes.py``) moves a
little every frame (``perturb_params``, pose kept inside the prior's limits) and is rendered
with Lambert shading over a smooth procedural background. Used by the demo, tests and the
pipeline benchmark; mediapipe detects these hands, so the whole pipeline can be measured
against exact 3D truth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from hand_mesh_ros.camera import intrinsics_matrix, project
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.synthetic.scenes import SceneConfig, perturb_params, sample_scene_params
from hand_mesh_ros.visualize import shade_mesh

SKIN_RGB = (224, 172, 140)
# Views mediapipe handles well: moderate tilt, near enough to be ~100-200 px tall.
CLIP_SCENE = SceneConfig(depth_range=(0.3, 0.5), max_tilt_deg=40.0)
FRAME_PERIOD_S = 0.1  # the clip plays as a 10 Hz camera (stamps of the demo and benchmarks)


@dataclass(frozen=True, eq=False)
class ClipFrame:
    """image (H,W,3) uint8 RGB; mask (H,W) bool; truth: HandParams (batch 1, camera frame);
    keypoints_2d (21,2) px and keypoints_3d (21,3) m of the true hand."""

    image: np.ndarray
    mask: np.ndarray
    truth: HandParams
    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray


@dataclass(frozen=True, eq=False)
class Clip:
    K: torch.Tensor  # (3,3)
    frames: tuple[ClipFrame, ...]


def background(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth procedural RGB background (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 200, size=(4, 5, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return smooth.clip(0, 255).astype(np.uint8)


def render_clip(
    model,
    prior,
    frames: int,
    *,
    seed: int,
    image_size: tuple[int, int] = (480, 640),
    focal: float = 550.0,
    pose_step: float = 0.03,
    orient_step: float = 0.02,
    transl_step: float = 0.003,
    scene: SceneConfig = CLIP_SCENE,
) -> Clip:
    """Render ``frames`` frames of one right hand moving smoothly (steps: radians, metres)."""
    h, w = image_size
    g = torch.Generator().manual_seed(seed)
    K = intrinsics_matrix(focal, focal, (w - 1) / 2, (h - 1) / 2)
    params = sample_scene_params(model, prior, 1, K, image_size, generator=g, config=scene)
    bg = background(h, w, seed)
    out_frames = []
    for _ in range(frames):
        with torch.no_grad():
            out = model(**params.as_kwargs())
        shaded, mask = shade_mesh(out.vertices[0], model.faces, K, image_size, SKIN_RGB)
        image = bg.copy()
        image[mask] = shaded[mask]
        kp2d = project(out.keypoints, K)[0].double().numpy()
        out_frames.append(ClipFrame(image, mask, params, kp2d, out.keypoints[0].double().numpy()))
        params = perturb_params(
            params,
            generator=g,
            pose_step=pose_step,
            orient_step=orient_step,
            transl_step=transl_step,
        )
        params = replace(params, pose=prior.clamp(params.pose).to(params.pose.dtype))
    return Clip(K, tuple(out_frames))
