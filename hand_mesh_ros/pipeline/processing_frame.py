"""The processing frame: how detections become a fitting batch, and fits become camera-frame
``HandEstimate``s (and back, for warm starts). The one home of the mirror rule.

Mirrored side models (the open model, whose left hand is the exact mirror image of its right):
left hands are processed as right hands in the mirrored image (u -> W - 1 - u, cx -> W - 1 -
cx) with the right model the regressor was trained for, and mirrored back: the left model with
pose (a, -b, -c) per joint, orientation M R M and translation M t (M = diag(-1, 1, 1)) gives
exactly the mirrored mesh. ``HandEstimate`` holds the left model's parameters. The mirror is
an involution, so ``params_from_estimates`` recovers the processing-frame parameters exactly.

Separate side models (MANO: MANO_LEFT.pkl is its own model, not a mirror): every hand is
fitted in the camera frame with its side's model (``mirror_left=False``); only the regressor,
trained on right hands, sees left hands mirrored (``regressor_keypoints``), and its
articulation reaches the left model through anatomical joint angles, which a pose and its
mirror image share (``handmodel/convert.py`` ``transfer_pose``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hand_mesh_ros.detect import Detection2D
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.handmodel.mirror import mirror_axis_angle
from hand_mesh_ros.pipeline.types import CameraIntrinsics, HandDepth, HandEstimate

LOG = logging.getLogger(__name__)
MIRROR = np.array([-1.0, 1.0, 1.0])  # x-mirror of the camera frame
MIN_KEYPOINT_WEIGHT = 1e-3  # confidences are weights, never all zero


@dataclass(frozen=True)
class HandBatch:
    """Detections prepared for fitting in the processing frame (B hands)."""

    detections: tuple[Detection2D, ...]
    keypoints: torch.Tensor  # (B,21,2) pixels, mirrored for mirrored hands
    weights: torch.Tensor  # (B,21) keypoint confidences
    K: torch.Tensor  # (B,3,3) intrinsics, mirrored principal point for mirrored hands
    left: torch.Tensor  # (B,) bool
    skeleton3d: torch.Tensor | None  # (B,21,3) detector's 3D landmarks (any frame), or None
    mirrored: torch.Tensor | None = None  # (B,) bool: processed mirrored; None = ``left``
    width: int = 0  # image width, pixels (the mirror u -> W - 1 - u)

    @property
    def mirrored_hands(self) -> torch.Tensor:
        return self.left if self.mirrored is None else self.mirrored


def regressor_keypoints(batch: HandBatch) -> torch.Tensor:
    """(B,21,2) keypoints as the right-hand regressor sees them: the left hands that are not
    already mirrored are mirrored (u -> W - 1 - u); the batch's own keypoints otherwise."""
    flip = batch.left & ~batch.mirrored_hands
    if not bool(flip.any()):
        return batch.keypoints
    keypoints, flip = batch.keypoints.clone(), flip.to(batch.keypoints.device)
    keypoints[flip, :, 0] = (batch.width - 1) - keypoints[flip, :, 0]
    return keypoints


def prepare_batch(
    detections: Sequence[Detection2D],
    camera: CameraIntrinsics,
    width: int,
    device,
    *,
    mirror_left: bool = True,
) -> HandBatch:
    """Stack detections; mirror left hands into the right-hand processing frame (unless
    ``mirror_left`` is False: separate side models fit left hands as they are)."""
    kp = torch.tensor(np.stack([d.keypoints for d in detections]), dtype=torch.float32)
    weights = torch.tensor(np.stack([d.confidence for d in detections]), dtype=torch.float32)
    left = torch.tensor([d.side == "left" for d in detections])
    mirrored = left if mirror_left else torch.zeros_like(left)
    kp[mirrored, :, 0] = (width - 1) - kp[mirrored, :, 0]
    K = camera.matrix().expand(len(detections), 3, 3).clone()
    K[mirrored, 0, 2] = (width - 1) - camera.cx
    weights = weights.clamp_min(MIN_KEYPOINT_WEIGHT)
    worlds = [d.world_keypoints for d in detections]
    skeleton = None
    if all(w is not None for w in worlds):
        skeleton = torch.tensor(np.stack(worlds), dtype=torch.float32, device=device)
    return HandBatch(
        tuple(detections), kp.to(device), weights.to(device), K.to(device), left, skeleton,
        mirrored, width,
    )


def processing_depth(batch: HandBatch, depth: torch.Tensor) -> torch.Tensor:
    """(H,W) depth (metres, 0, NaN or inf = none) -> (B,H,W) each hand's depth in its
    processing frame: mirrored hands see it mirrored (u -> W - 1 - u; depth is unchanged by
    the x-mirror)."""
    mirrored = batch.mirrored_hands.to(depth.device)
    if not bool(mirrored.any()):  # no copy: every hand reads the image's own depth
        return depth.expand(len(mirrored), *depth.shape)
    return torch.where(mirrored[:, None, None], depth.flip(-1), depth)


def params_from_estimates(
    estimates: Sequence[HandEstimate], device, *, mirror_left: bool = True
) -> HandParams:
    """Processing-frame parameters (B hands) of camera-frame estimates: the warm start."""
    rows = []
    for hand in estimates:
        pose, orient, transl = hand.pose, hand.global_orient, hand.transl
        if hand.side == "left" and mirror_left:
            pose, orient = mirror_axis_angle(pose), mirror_axis_angle(orient)
            transl = transl * MIRROR
        rows.append((pose, hand.shape, orient, transl))
    return HandParams(
        *(
            torch.tensor(np.stack(column), dtype=torch.float32, device=device)
            for column in zip(*rows, strict=True)
        )
    )


def estimates_from_fit(
    model, batch: HandBatch, result, camera: CameraIntrinsics, faces: np.ndarray, *,
    depths: Sequence[HandDepth | None] | None = None,
) -> list[HandEstimate | None]:
    """Camera-frame estimates per hand of the batch, mirrored back for mirrored hands; None
    where the fit produced non-finite values or a keypoint behind the camera. depths: per
    hand, how the depth image was used (None: no depth)."""
    depths = depths if depths is not None else [None] * len(batch.detections)
    with torch.no_grad():
        out = model(**result.params.as_kwargs())
    verts = out.vertices.double().cpu().numpy()
    kps = out.keypoints.double().cpu().numpy()
    p = result.params
    pose, shape = p.pose.double().cpu().numpy(), p.shape.double().cpu().numpy()
    orient, transl = p.global_orient.double().cpu().numpy(), p.transl.double().cpu().numpy()
    focal = np.array([camera.fx, camera.fy])
    centre = np.array([camera.cx, camera.cy])
    hands: list[HandEstimate | None] = []
    for i, det in enumerate(batch.detections):
        left = bool(batch.mirrored_hands[i])
        m = MIRROR if left else np.ones(3)
        vertices, keypoints = verts[i] * m, kps[i] * m
        if left:
            pose_i, orient_i = mirror_axis_angle(pose[i]), mirror_axis_angle(orient[i])
        else:
            pose_i, orient_i = pose[i], orient[i]
        values = (vertices, keypoints, pose_i, shape[i], orient_i, transl[i])
        if not all(np.isfinite(v).all() for v in values) or (keypoints[:, 2] <= 0).any():
            LOG.warning("dropping a %s hand: the fit produced invalid values", det.side)
            hands.append(None)
            continue
        hands.append(
            HandEstimate(
                side=det.side,
                score=float(det.score),
                track_id=-1,  # set by the caller (the detection index, or the track's id)
                keypoints_2d=keypoints[:, :2] / keypoints[:, 2:3] * focal + centre,
                detected_keypoints_2d=np.asarray(det.keypoints, dtype=np.float64),
                keypoints_3d=keypoints,
                pose=pose_i,
                shape=shape[i],
                global_orient=orient_i,
                transl=transl[i] * m,
                vertices=vertices,
                faces=faces,
                model_name=model.name,  # mirroring keeps the model (and its name)
                refine_iterations=int(result.iterations),
                refine_loss=float(result.final_loss[i]),
                keypoint_error_px=float(result.keypoint_error_px[i]),
                depth=depths[i],
            )
        )
    return hands
