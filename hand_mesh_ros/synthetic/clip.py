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
from hand_mesh_ros.synthetic.depth_camera import (
    DepthNoiseModel,
    apply_depth_noise,
    sample_wall,
    scene_depth,
)
from hand_mesh_ros.synthetic.scenes import SceneConfig, perturb_params, sample_scene_params
from hand_mesh_ros.visualize import shade_mesh

SKIN_RGB = (224, 172, 140)
# Views mediapipe handles well: moderate tilt, near enough to be ~100-200 px tall.
CLIP_SCENE = SceneConfig(depth_range=(0.3, 0.5), max_tilt_deg=40.0)
FRAME_PERIOD_S = 0.1  # the clip plays as a 10 Hz camera (stamps of the demo and benchmarks)
DEPTH_STREAM = 1  # the depth Generator is seeded with (seed, DEPTH_STREAM): its own stream


@dataclass(frozen=True, eq=False)
class ClipFrame:
    """image (H,W,3) uint8 RGB; mask (H,W) bool; truth: HandParams (batch 1, camera frame);
    keypoints_2d (21,2) px and keypoints_3d (21,3) m of the true hand; depth (H,W) float32
    metres aligned to the image, 0 = no data (None: rendered without depth)."""

    image: np.ndarray
    mask: np.ndarray
    truth: HandParams
    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray
    depth: np.ndarray | None = None


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


def render_frame(model, params: HandParams, K: torch.Tensor, bg: np.ndarray) -> ClipFrame:
    """One hand (``params``, batch 1) of ``model`` shaded over the background ``bg``
    (H,W,3) uint8, seen through K (3,3); no depth."""
    image_size = bg.shape[:2]
    with torch.no_grad():
        out = model(**params.as_kwargs())
    shaded, mask = shade_mesh(out.vertices[0], model.faces, K, image_size, SKIN_RGB)
    image = bg.copy()
    image[mask] = shaded[mask]
    kp2d = project(out.keypoints, K)[0].double().numpy()
    return ClipFrame(image, mask, params, kp2d, out.keypoints[0].double().numpy())


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
    depth_noise: DepthNoiseModel | None = None,
) -> Clip:
    """Render ``frames`` frames of one hand of ``model`` (and its ``prior``) moving smoothly
    (steps: radians, metres); with ``depth_noise``, each frame's aligned noisy depth too."""
    h, w = image_size
    g = torch.Generator().manual_seed(seed)
    K = intrinsics_matrix(focal, focal, (w - 1) / 2, (h - 1) / 2)
    params = sample_scene_params(model, prior, 1, K, image_size, generator=g, config=scene)
    bg = background(h, w, seed)
    depth_rng = np.random.default_rng((seed, DEPTH_STREAM))
    wall = sample_wall(depth_rng) if depth_noise is not None else None
    out_frames = []
    for _ in range(frames):
        frame = render_frame(model, params, K, bg)
        if depth_noise is not None:
            with torch.no_grad():
                vertices = model(**params.as_kwargs()).vertices[0]
            clean = scene_depth(vertices, model.faces, K.numpy(), image_size, wall)
            depth = apply_depth_noise(clean, frame.image, depth_noise, depth_rng)
            frame = replace(frame, depth=depth)
        out_frames.append(frame)
        params = perturb_params(
            params,
            generator=g,
            pose_step=pose_step,
            orient_step=orient_step,
            transl_step=transl_step,
        )
        params = replace(params, pose=prior.clamp(params.pose).to(params.pose.dtype))
    return Clip(K, tuple(out_frames))
