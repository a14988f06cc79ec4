"""Images in, metric 3D hand meshes out: detection, DHPE regression, placement, refinement.

Per hand: mediapipe finds the hand and its 21 2D keypoints (``detect/``); the DHPE mesh
estimator fed by those keypoints (``nets/keypoint_regressor.py``, trained on synthetic hands)
regresses the finger articulation in the paper's 224 px crop; the hand is placed in the camera
by PnP with the real intrinsics and the model's metric size (``fitting/init.py``); test-time
refinement (Eq. 13) then fits pose, shape, rotation and position to the keypoints and the
self-rendered silhouette (``fitting/refine.py``).

Left hands are processed as right hands in the mirrored image (u -> W - 1 - u, cx -> W - 1 -
cx) with the right model the regressor was trained for, and mirrored back: the left model with
pose (a, -b, -c) per joint, orientation M R M and translation M t (M = diag(-1, 1, 1)) gives
exactly the mirrored mesh. ``HandEstimate`` holds the left model's parameters.

Metric scale: from 2D evidence alone, a hand's size and its distance are tied. The estimate
takes the size from the shape (the shape prior keeps it near the mean adult hand, ~19 cm
wrist to middle tip), so its depth error is about the hand's size deviation from the mean
(a 10 % larger hand is placed ~10 % too close). See docs/pipeline.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from hand_mesh_ros.detect import Detection2D, MediapipeConfig, MediapipeHandDetector
from hand_mesh_ros.fitting import RefineConfig, align_to_keypoints, hand_roi, refine
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.handmodel.mirror import mirror_axis_angle
from hand_mesh_ros.handmodel.model import load_hand_model
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.nets.keypoint_regressor import load_keypoint_regressor
from hand_mesh_ros.pipeline.types import CameraIntrinsics, FrameResult, HandEstimate

LOG = logging.getLogger(__name__)
DEVICES = ("auto", "cpu", "cuda")
MIRROR = np.array([-1.0, 1.0, 1.0])  # x-mirror of the camera frame


@dataclass(frozen=True, kw_only=True)
class EstimatorConfig:
    device: str = "auto"  # auto|cpu|cuda; auto = cuda when available
    max_hands: int = 2
    mirrored_input: bool = False  # True for selfie (mirrored) images: mediapipe's convention
    min_detection_confidence: float = 0.3
    refine_iterations: int = 50  # cold start (the paper's count; early stop applies)
    warm_iterations: int = 10  # tracked hands, warm-started from the previous frame
    horizontal_fov_deg: float = 60.0  # used when no intrinsics are given
    max_missed_frames: int = 3  # a track unseen for longer is dropped (HandTracker)
    # trained weights of the paper's 2D evidence estimator (ResNet + CPM); when given, its
    # heatmap keypoints replace mediapipe's (mediapipe still finds the hands). "" = none.
    evidence_weights: str = ""
    # weight of the detector's 3D landmarks (mediapipe's "world" skeleton) in refinement:
    # they constrain finger articulation where 2D keypoints are ambiguous (0 = unused)
    skeleton_weight: float = 0.1
    # tracked hands: weight of staying near the previous frame's fit (damps detector jitter)
    temporal_weight: float = 100.0

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if not 1 <= self.max_hands <= 8:
            raise ValueError(f"max_hands must be in [1, 8], got {self.max_hands}")
        if self.refine_iterations < 0 or self.warm_iterations < 0:
            raise ValueError("refinement iteration counts must be >= 0")
        if not 10.0 <= self.horizontal_fov_deg <= 170.0:
            raise ValueError(
                f"horizontal_fov_deg must be in [10, 170], got {self.horizontal_fov_deg}"
            )


def load_params_file(path: str | Path, *, ignore: Iterable[str] = ()) -> EstimatorConfig:
    """EstimatorConfig from a ROS 2 parameter file (``config/estimator.yaml`` layout:
    ``<node or /**>: ros__parameters: {...}``); unknown keys are rejected except those named in
    ``ignore`` (e.g. the ROS node's own options, ``ros.config.NodeConfig``)."""
    import yaml

    with open(path) as f:
        document = yaml.safe_load(f) or {}
    params = {}
    for section in document.values():
        if isinstance(section, dict):
            params.update(section.get("ros__parameters", {}))
    known = {f.name for f in fields(EstimatorConfig)}
    unknown = sorted(set(params) - known - set(ignore))
    if unknown:
        raise ValueError(f"{path}: unknown estimator parameters {unknown}; known: {sorted(known)}")
    return EstimatorConfig(**{k: v for k, v in params.items() if k in known})


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available; 'cuda' without CUDA falls back to the CPU with a warning."""
    if name == "cuda" and not torch.cuda.is_available():
        LOG.warning("device 'cuda' requested but CUDA is not available: using the CPU")
        return torch.device("cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class HandBatch:
    """Detections prepared for fitting in the right-hand processing frame (B hands)."""

    detections: tuple[Detection2D, ...]
    keypoints: torch.Tensor  # (B,21,2) pixels, mirrored for left hands
    weights: torch.Tensor  # (B,21) keypoint confidences
    K: torch.Tensor  # (B,3,3) intrinsics, mirrored principal point for left hands
    left: torch.Tensor  # (B,) bool
    skeleton3d: torch.Tensor | None  # (B,21,3) detector's 3D landmarks (any frame), or None


class HandMeshEstimator:
    """Stateless per-image estimator; ``HandTracker`` adds tracks and warm starts for video."""

    def __init__(self, config: EstimatorConfig | None = None, *, detector=None) -> None:
        self.config = config or EstimatorConfig()
        self.device = resolve_device(self.config.device)
        self.detector = detector or MediapipeHandDetector(
            MediapipeConfig(
                max_hands=self.config.max_hands,
                mirrored_input=self.config.mirrored_input,
                min_detection_confidence=self.config.min_detection_confidence,
            )
        )
        self.model = load_hand_model("right", device=self.device)
        self.prior = PosePrior.from_model(self.model).to(self.device)
        self.regressor = load_keypoint_regressor(device=self.device)
        self.faces = self.model.faces.cpu().numpy()
        self.evidence = None
        if self.config.evidence_weights:
            from hand_mesh_ros.detect.dhpe_evidence import DHPEEvidence

            self.evidence = DHPEEvidence(self.config.evidence_weights, device=self.device)

    def detect(self, image: np.ndarray) -> list[Detection2D]:
        """Hands and their 2D keypoints (mediapipe, or the DHPE evidence estimator)."""
        detections = self.detector.detect(image)[: self.config.max_hands]
        if self.evidence is not None and detections:
            detections = self.evidence.refine_detections(image, detections)
        return detections

    def close(self) -> None:
        if hasattr(self.detector, "close"):
            self.detector.close()

    def camera_for(self, image: np.ndarray, camera: CameraIntrinsics | None) -> CameraIntrinsics:
        h, w = image.shape[:2]
        return camera or CameraIntrinsics.assumed_for(w, h, self.config.horizontal_fov_deg)

    def prepare(self, detections, camera: CameraIntrinsics, width: int) -> HandBatch:
        """Stack detections; mirror left hands into the right-hand processing frame."""
        kp = torch.tensor(np.stack([d.keypoints for d in detections]), dtype=torch.float32)
        weights = torch.tensor(np.stack([d.confidence for d in detections]), dtype=torch.float32)
        left = torch.tensor([d.side == "left" for d in detections])
        kp[left, :, 0] = (width - 1) - kp[left, :, 0]
        K = camera.matrix().expand(len(detections), 3, 3).clone()
        K[left, 0, 2] = (width - 1) - camera.cx
        weights = weights.clamp_min(1e-3)  # confidences are weights, never all zero
        worlds = [d.world_keypoints for d in detections]
        skeleton = None
        if all(w is not None for w in worlds):
            skeleton = torch.tensor(np.stack(worlds), dtype=torch.float32, device=self.device)
        return HandBatch(
            tuple(detections),
            kp.to(self.device),
            weights.to(self.device),
            K.to(self.device),
            left,
            skeleton,
        )

    def cold_start(self, batch: HandBatch) -> tuple[HandParams, dict[str, float]]:
        """Regression (DHPE mesh estimator on the keypoints) then PnP placement."""
        t0 = time.perf_counter()
        roi = hand_roi(batch.keypoints, self.regressor.config.crop_size, batch.weights)
        with torch.no_grad():
            theta = self.regressor(roi.to_roi_pixels(batch.keypoints), batch.weights)
        pose = theta[:, :45]
        t1 = time.perf_counter()
        init = align_to_keypoints(
            self.model, batch.keypoints, batch.K, pose=pose, weights=batch.weights
        )
        t2 = time.perf_counter()
        return init, {"regress": (t1 - t0) * 1e3, "align": (t2 - t1) * 1e3}

    def fit(self, batch: HandBatch, init: HandParams, iterations: int, *, warm: bool):
        """Test-time refinement. Warm starts keep the track's shape (a person's hand does not
        change) and skip the self-rendered silhouette, which would anchor the hand to the
        previous frame's."""
        config = RefineConfig(
            iterations=iterations,
            self_silhouette_weight=0.0 if warm else 1.0,
            optimise_shape=not warm,
            skeleton_weight=self.config.skeleton_weight,
            temporal_weight=self.config.temporal_weight if warm else 0.0,
        )
        return refine(
            self.model,
            init,
            batch.K,
            batch.keypoints,
            keypoint_weights=batch.weights,
            prior=self.prior,
            config=config,
            skeleton3d=batch.skeleton3d,
        )

    def finish(self, batch: HandBatch, result, track_ids, camera: CameraIntrinsics):
        """Camera-frame outputs per hand, mirrored back for left hands; non-finite dropped."""
        with torch.no_grad():
            out = self.model(**result.params.as_kwargs())
        verts = out.vertices.double().cpu().numpy()
        kps = out.keypoints.double().cpu().numpy()
        p = result.params
        pose, shape = p.pose.double().cpu().numpy(), p.shape.double().cpu().numpy()
        orient, transl = p.global_orient.double().cpu().numpy(), p.transl.double().cpu().numpy()
        focal = np.array([camera.fx, camera.fy])
        centre = np.array([camera.cx, camera.cy])
        hands = []
        for i, det in enumerate(batch.detections):
            left = bool(batch.left[i])
            m = MIRROR if left else np.ones(3)
            vertices, keypoints = verts[i] * m, kps[i] * m
            if left:
                pose_i, orient_i = mirror_axis_angle(pose[i]), mirror_axis_angle(orient[i])
            else:
                pose_i, orient_i = pose[i], orient[i]
            values = (vertices, keypoints, pose_i, shape[i], orient_i, transl[i])
            if not all(np.isfinite(v).all() for v in values) or (keypoints[:, 2] <= 0).any():
                LOG.warning("dropping a %s hand: the fit produced invalid values", det.side)
                continue
            hands.append(
                HandEstimate(
                    side=det.side,
                    score=float(det.score),
                    track_id=int(track_ids[i]),
                    keypoints_2d=keypoints[:, :2] / keypoints[:, 2:3] * focal + centre,
                    detected_keypoints_2d=np.asarray(det.keypoints, dtype=np.float64),
                    keypoints_3d=keypoints,
                    pose=pose_i,
                    shape=shape[i],
                    global_orient=orient_i,
                    transl=transl[i] * m,
                    vertices=vertices,
                    faces=self.faces,
                    model_name=self.model.name,  # mirroring keeps the model (and its name)
                    refine_iterations=int(result.iterations),
                    refine_loss=float(result.final_loss[i]),
                    keypoint_error_px=float(result.keypoint_error_px[i]),
                )
            )
        return hands

    def estimate(self, image: np.ndarray, camera: CameraIntrinsics | None = None) -> FrameResult:
        """All hands of one RGB uint8 image (H,W,3), each cold-started."""
        t0 = time.perf_counter()
        camera = self.camera_for(image, camera)
        detections = self.detect(image)
        timings = {"detect": (time.perf_counter() - t0) * 1e3}
        hands: list[HandEstimate] = []
        if detections:
            batch = self.prepare(detections, camera, image.shape[1])
            init, stage_ms = self.cold_start(batch)
            t1 = time.perf_counter()
            result = self.fit(batch, init, self.config.refine_iterations, warm=False)
            timings.update(stage_ms, refine=(time.perf_counter() - t1) * 1e3)
            hands = self.finish(batch, result, list(range(len(detections))), camera)
        timings["total"] = (time.perf_counter() - t0) * 1e3
        h, w = image.shape[:2]
        return FrameResult(w, h, camera, tuple(hands), timings)


def __getattr__(name: str):
    # HandTracker lives in tracker.py (which imports this module); re-exported lazily
    if name == "HandTracker":
        from hand_mesh_ros.pipeline.tracker import HandTracker

        return HandTracker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
