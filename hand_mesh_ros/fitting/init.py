"""Rigid initialisation: place a hand of given pose/shape so its keypoints match 2D ones.

Solves a perspective-n-point problem with OpenCV for each hand. Near-planar palm points have
a two-fold (mirror) ambiguity, so candidates from IPPE on the palm and SQPnP on all keypoints
are scored by the reprojection error of all visible keypoints and the best is kept.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from hand_mesh_ros.camera import batched_intrinsics, project
from hand_mesh_ros.hand_params import HandParams

PALM_KEYPOINTS = (0, 5, 9, 13, 17)  # wrist and the four finger MCPs: rigid under finger motion
FALLBACK_DEPTH = 0.5  # metres, used only if every PnP attempt fails


def _pnp_candidates(
    object_pts: np.ndarray, image_pts: np.ndarray, k: np.ndarray, valid: np.ndarray
):
    """Yield (rvec, tvec) candidates; object (21,3), image (21,2), valid (21,) bool."""
    palm = [i for i in PALM_KEYPOINTS if valid[i]]
    if len(palm) >= 4:
        ok, rvecs, tvecs, _ = cv2.solvePnPGeneric(
            object_pts[palm], image_pts[palm], k, None, flags=cv2.SOLVEPNP_IPPE
        )
        if ok:
            yield from zip(rvecs, tvecs, strict=True)
    idx = np.flatnonzero(valid)
    if len(idx) >= 4:
        ok, rvec, tvec = cv2.solvePnP(
            object_pts[idx], image_pts[idx], k, None, flags=cv2.SOLVEPNP_SQPNP
        )
        if ok:
            yield rvec, tvec


def _best_rigid(object_pts, image_pts, k, weights) -> tuple[np.ndarray, np.ndarray]:
    valid = weights > 0
    best, best_err = None, np.inf
    for rvec, tvec in _pnp_candidates(object_pts, image_pts, k, valid):
        rot, _ = cv2.Rodrigues(rvec)
        cam = object_pts @ rot.T + tvec.reshape(1, 3)
        if np.any(cam[valid, 2] <= 0):
            continue
        proj = cam[:, :2] / cam[:, 2:3] * np.diag(k)[:2] + k[:2, 2]
        err = float((weights * ((proj - image_pts) ** 2).sum(-1)).sum())
        if err < best_err:
            best, best_err = (rot, tvec.reshape(3)), err
    if best is None:  # degenerate keypoints: put the hand in front of the camera, unrotated
        centre = image_pts[valid].mean(0) if valid.any() else k[:2, 2]
        xy = (centre - k[:2, 2]) / np.diag(k)[:2] * FALLBACK_DEPTH
        best = (np.eye(3), np.array([xy[0], xy[1], FALLBACK_DEPTH]))
    return best


def align_to_keypoints(
    model,
    keypoints_2d: torch.Tensor,
    K: torch.Tensor,
    *,
    pose: torch.Tensor | None = None,
    shape: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> HandParams:
    """Global rotation and translation of a hand whose keypoints best match the 2D ones.

    keypoints_2d: (B,21,2) pixels; K: (3,3) or (B,3,3); pose (B,45) / shape (B,10) default to
    zeros (add the prior's mean pose yourself); weights (B,21) >= 0 (0 = missing keypoint).
    Returns HandParams in the camera frame with the given pose and shape.
    """
    b = keypoints_2d.shape[0]
    dtype, device = keypoints_2d.dtype, keypoints_2d.device
    params0 = HandParams.zeros(b, dtype=dtype, device=device)
    pose = params0.pose if pose is None else pose.to(dtype)
    shape = params0.shape if shape is None else shape.to(dtype)
    weights = torch.ones_like(keypoints_2d[..., 0]) if weights is None else weights
    k_all = batched_intrinsics(K, b)
    with torch.no_grad():
        local = model(pose=pose, shape=shape)
        obj = local.keypoints.double().cpu().numpy()
        root = local.joints[:, 0].double().cpu().numpy()
    img = keypoints_2d.detach().double().cpu().numpy()
    ks = k_all.detach().double().cpu().numpy()
    wts = weights.detach().double().cpu().numpy()
    orients, transls = [], []
    for i in range(b):
        rot, t = _best_rigid(obj[i], img[i], ks[i], wts[i])
        rvec, _ = cv2.Rodrigues(rot)
        orients.append(rvec.reshape(3))
        transls.append(t + rot @ root[i] - root[i])  # rotation about the root joint
    orient = torch.as_tensor(np.stack(orients), dtype=dtype, device=device)
    transl = torch.as_tensor(np.stack(transls), dtype=dtype, device=device)
    return HandParams(pose.detach().clone(), shape.detach().clone(), orient, transl)


def reprojection_error(model, params: HandParams, keypoints_2d: torch.Tensor, K: torch.Tensor):
    """(B,21) pixel distance between the hand's projected keypoints and keypoints_2d."""
    out = model(**params.as_kwargs())
    return (project(out.keypoints, K) - keypoints_2d).norm(dim=-1)


__all__ = ["align_to_keypoints", "reprojection_error"]
