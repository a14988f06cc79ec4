"""Images in, metric 3D hand meshes out: the one recipe for a frame.

Per hand: mediapipe finds the hand and its 21 2D keypoints (``detect/``); the DHPE mesh
estimator fed by those keypoints (``nets/keypoint_regressor.py``, trained on synthetic hands)
regresses the finger articulation in the paper's 224 px crop; the hand is placed in the camera
by PnP with the real intrinsics and the model's metric size (``fitting/init.py``); test-time
refinement (Eq. 13) then fits pose, shape, rotation and position to the keypoints and the
self-rendered silhouette (``fitting/refine.py``). A hand with a warm start (its previous
estimate, from ``HandTracker``) skips regression and placement and is refined from it.
Left hands are fitted in the mirrored image with the open model, with their own left model
with MANO (``processing_frame.py``; the hand model is the ``hand_model`` setting,
``handmodel/choice.py``).

Metric scale: from 2D evidence alone, a hand's size and its distance are tied. The estimate
takes the size from the shape (the shape prior keeps it near the mean adult hand, ~19 cm
wrist to middle tip), so its depth error is about the hand's size deviation from the mean
(a 10 % larger hand is placed ~10 % too close). See docs/pipeline.md. An aligned depth image
(``depth=``) breaks the tie: each hand is placed and sized by the depth observed over it and
refined against it (``fitting/depth.py``, docs/depth.md); a hand whose depth is missing or
disagrees is fitted from RGB alone, and its ``HandEstimate.depth`` says why.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from hand_mesh_ros.detect import Detection2D, MediapipeConfig, StreamHandDetector
from hand_mesh_ros.devices import resolve_device
from hand_mesh_ros.fitting import RefineConfig, align_to_keypoints, hand_roi, refine
from hand_mesh_ros.fitting.depth import DEPTH_IGNORED, as_depth_tensor
from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.handmodel.choice import load_hand_models
from hand_mesh_ros.handmodel.prior import PosePrior
from hand_mesh_ros.handmodel.size import hand_size_of
from hand_mesh_ros.handmodel.skeleton import KeypointSkeleton
from hand_mesh_ros.nets.keypoint_regressor import load_keypoint_regressor
from hand_mesh_ros.pipeline.config import EstimatorConfig
from hand_mesh_ros.pipeline.depth_side import side_from_depth
from hand_mesh_ros.pipeline.initialiser import ArticulationInit
from hand_mesh_ros.pipeline.processing_frame import (
    HandBatch,
    estimates_from_fit,
    params_from_estimates,
    prepare_batch,
    processing_depth,
    regressor_keypoints,
)
from hand_mesh_ros.pipeline.types import CameraIntrinsics, FrameResult, HandDepth, HandEstimate
from hand_mesh_ros.settings import settings_of


@dataclass(frozen=True, eq=False)
class Detections:
    """The 2D hands found in one image and what finding them cost."""

    hands: tuple[Detection2D, ...]
    elapsed_ms: float

    def with_sides(self, sides: Sequence[str]) -> Detections:
        """The same detections processed as the given sides (a track's vote overrides the
        detector's flickering label)."""
        hands = tuple(replace(d, side=s) for d, s in zip(self.hands, sides, strict=True))
        return replace(self, hands=hands)


DETECTOR_SETTINGS = ("max_hands", "mirrored_input", "min_detection_confidence")
# tracked hands stop refining after this many calm iterations (new hands: RefineConfig's 3):
# a warm start is near its optimum. On the tracked benchmark clip (bench_pipeline.py, one
# torch thread) 3 -> 2 -> 1 took 4.8 -> 3.9 -> 2.9 iterations, 39 -> 30 -> 29 ms (another run:
# 23 -> 20 ms for 2 -> 1) at the same PA-MPJPE (11.80-11.84 mm) and jitter (12.5-12.6); in
# the node 2 cost ~12 of 283 frames answered and ~20 ms latency. A rejected first step is
# never calm (refine._Stopper), so an overshoot is retried rather than ending the fit
WARM_PATIENCE = 1


def _mediapipe_detector(config: EstimatorConfig) -> StreamHandDetector:
    return StreamHandDetector(
        MediapipeConfig(
            max_hands=config.max_hands,
            mirrored_input=config.mirrored_input,
            min_detection_confidence=config.min_detection_confidence,
        )
    )


class _StageClock:
    """Accumulates per-stage milliseconds (a stage may run once per group of hands)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = self.ms.get(stage, 0.0) + (now - self._last) * 1e3
        self._last = now


class HandMeshEstimator:
    """Runs every stage of a frame: detect, prepare, cold start or warm start, refine, finish.
    Stateless between frames: continuity (tracks, warm starts) is ``HandTracker``'s."""

    def __init__(self, config: EstimatorConfig | None = None, *, detector=None) -> None:
        self.config = config or EstimatorConfig()
        self.device = resolve_device(self.config.device)
        self._own_detector = detector is None
        self.detector = detector or _mediapipe_detector(self.config)
        self.hand_models = load_hand_models(self.config.hand_model, device=self.device)
        self.model = self.hand_models.right
        self.priors = {
            side: PosePrior.from_model(model).to(self.device)
            for side, model in self.hand_models.models.items()
        }
        self.prior = self.priors["right"]
        # the refinement's keypoint skeletons, made once (copies of the models' arrays: 0.2
        # ms per frame on one CPU thread when refine built them)
        self.skeletons = {
            side: KeypointSkeleton(model) for side, model in self.hand_models.models.items()
        }
        self.faces = {
            side: model.faces.cpu().numpy() for side, model in self.hand_models.models.items()
        }
        self.regressor = load_keypoint_regressor(device=self.device)
        self.init = ArticulationInit(self.regressor, self.hand_models, self.priors)
        self.evidence = None
        if self.config.evidence_weights:
            from hand_mesh_ros.detect.dhpe_evidence import DHPEEvidence  # optional, heavy

            self.evidence = DHPEEvidence(self.config.evidence_weights, device=self.device)

    def close(self) -> None:
        if hasattr(self.detector, "close"):
            self.detector.close()

    def reconfigure(self, config: EstimatorConfig) -> None:
        """Take new settings between frames. Only ``live`` settings may change (the device and
        the weights are loaded at construction: ValueError); the detector's settings rebuild
        the mediapipe detector."""
        fixed = [
            name
            for name, (_, spec) in settings_of(config).items()
            if not spec.live and getattr(config, name) != getattr(self.config, name)
        ]
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change after construction")
        changed = any(getattr(config, n) != getattr(self.config, n) for n in DETECTOR_SETTINGS)
        if changed and self._own_detector:
            self.detector.close()
            self.detector = _mediapipe_detector(config)
        self.config = config

    def detect(self, image: np.ndarray, tracked: int = 0) -> Detections:
        """Hands and their 2D keypoints (mediapipe, or the DHPE evidence estimator).
        tracked: 0 looks for every hand (palm detection); k > 0 follows the k hands a
        ``HandTracker`` tracks from its previous frame without palm detection (the built-in
        detector, ``detect/mediapipe_stream.py``; a detector given at construction is always
        called on the image alone)."""
        t0 = time.perf_counter()
        if tracked > 0 and self._own_detector:
            found = self.detector.detect(image, tracked)
        else:
            found = self.detector.detect(image)
        found = found[: self.config.max_hands]
        if self.evidence is not None and found:
            found = self.evidence.refine_detections(image, found)
        return Detections(tuple(found), (time.perf_counter() - t0) * 1e3)

    def sides_from_depth(self, detections: Detections, depth, camera=None) -> Detections:
        """The detections with the side an aligned depth image shows where it is clear
        (``depth_side.py``: the keypoints lifted by the depth, the detector's chirality rule);
        unchanged when ``depth_weight`` is 0. depth: (H,W) metres (array or tensor, 0, NaN or
        inf = no data) aligned to the image the detections are in; camera: its intrinsics
        (None: ``estimate``'s assumed camera)."""
        if self.config.depth_weight <= 0 or not detections.hands:
            return detections
        depth = depth.detach().cpu().numpy() if torch.is_tensor(depth) else np.asarray(depth)
        h, w = depth.shape
        camera = camera or CameraIntrinsics.assumed_for(w, h, self.config.horizontal_fov_deg)
        K = camera.matrix(dtype=torch.float64).numpy()
        hands = tuple(side_from_depth(d, depth, K, self.config.mirrored_input)
                      for d in detections.hands)
        return replace(detections, hands=hands)

    def estimate(
        self,
        image: np.ndarray,
        camera: CameraIntrinsics | None = None,
        *,
        depth=None,
        detections: Detections | None = None,
        warm: Sequence[HandEstimate | None] | None = None,
    ) -> FrameResult:
        """All hands of one RGB uint8 image (H,W,3).

        depth: (H,W) metres aligned to the image (0, NaN or inf = no data), or None for RGB
            only; another size raises ValueError.
        detections: this image's ``detect`` result, its sides used as given (None: detected
            here, with the sides the depth shows where it is given: ``sides_from_depth``).
        warm: per detection, that hand's previous estimate to refine from, or None for a cold
            start; all cold when None.
        Returns the valid hands in detection order with ``track_id`` = detection index;
        ``FrameResult.invalid`` lists the detections whose fit was dropped.
        """
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        camera = camera or CameraIntrinsics.assumed_for(w, h, self.config.horizontal_fov_deg)
        depth_map = None if depth is None else as_depth_tensor(depth, (h, w), self.device)
        if detections is None:
            detections = self.detect(image)
            if depth_map is not None:
                detections = self.sides_from_depth(detections, depth, camera)
        found = detections.hands
        warm = list(warm) if warm is not None else [None] * len(found)
        if len(warm) != len(found):
            raise ValueError(f"{len(warm)} warm starts for {len(found)} detections")
        clock = _StageClock()
        by_index: dict[int, HandEstimate | None] = {}
        for is_warm in (True, False):  # warm hands first, then cold (each group one batch)
            group = [i for i in range(len(found)) if (warm[i] is not None) == is_warm]
            if group:
                hands = self._fit_group(image, camera, [found[i] for i in group],
                                        [warm[i] for i in group] if is_warm else None,
                                        depth_map, clock)
                by_index.update(zip(group, hands, strict=True))
        valid = tuple(
            replace(by_index[i], track_id=i) for i in range(len(found)) if by_index[i] is not None
        )
        invalid = tuple(i for i in range(len(found)) if by_index[i] is None)
        timings = {"detect": detections.elapsed_ms, **clock.ms}
        timings["total"] = detections.elapsed_ms + (time.perf_counter() - t0) * 1e3
        return FrameResult(w, h, camera, valid, timings, invalid, depth_given=depth is not None)

    def _fit_group(self, image, camera, found, warm, depth, clock: _StageClock):
        """Fit one group of hands (all warm or all cold): one batch per fitting model (the
        mirrored open model fits both sides; with MANO each side has its own)."""
        hands: list = [None] * len(found)
        for side in ("right", "left"):
            part = [
                i for i, det in enumerate(found)
                if self.hand_models.fitting_model(det.side).side == side
            ]
            if part:
                fitted = self._fit_batch(image, camera, side, [found[i] for i in part],
                                         None if warm is None else [warm[i] for i in part],
                                         depth, clock)
                for i, hand in zip(part, fitted, strict=True):
                    hands[i] = hand
        return hands

    def _fit_batch(self, image, camera, side: str, found, warm, depth, clock: _StageClock):
        """Fit hands of one fitting model (``side``'s) as one batch; depth: (H,W) tensor
        (0, NaN or inf = no data) or None."""
        mirror = self.hand_models.mirrored_left
        model = self.hand_models.fitting_model(side)
        batch = prepare_batch(found, camera, image.shape[1], self.device, mirror_left=mirror)
        clock.lap("prepare")
        if warm is not None:
            init = params_from_estimates(warm, self.device, mirror_left=mirror)
            iterations = self.config.warm_iterations
        else:
            init = self._cold_start(model, batch, clock)
            iterations = self.config.refine_iterations
        batch_depth = None
        if depth is not None and self.config.depth_weight > 0:
            batch_depth = processing_depth(batch, depth)
        result = self._refine(model, self.priors[model.side], batch, init, iterations,
                              warm=warm is not None, depth=batch_depth)
        clock.lap("refine")
        depths = _hand_depths(model, result, len(found), depth is not None)
        hands = estimates_from_fit(model, batch, result, camera, self.faces[model.side],
                                   depths=depths)
        clock.lap("finish")
        return hands

    def _cold_start(self, model, batch: HandBatch, clock: _StageClock) -> HandParams:
        """Regression (DHPE mesh estimator on the keypoints, right-hand view), the articulation
        for the fitting model (``initialiser.py``), then PnP placement."""
        keypoints = regressor_keypoints(batch)
        roi = hand_roi(keypoints, self.regressor.config.crop_size, batch.weights)
        with torch.no_grad():
            theta = self.regressor(roi.to_roi_pixels(keypoints), batch.weights)
        pose = self.init.pose(theta, model.side)
        clock.lap("regress")
        init = align_to_keypoints(
            model, batch.keypoints, batch.K, pose=pose, weights=batch.weights
        )
        clock.lap("align")
        return init

    def _refine(self, model, prior, batch: HandBatch, init: HandParams, iterations: int, *,
                warm: bool, depth=None):
        """Test-time refinement. Warm starts keep the track's shape (a person's hand does not
        change) unless the depth is used -- it measures the size -- and skip the self-rendered
        silhouette (``self_silhouette_weight``: new hands only), which would anchor the hand
        to the previous frame's. A warm start's depth change is the hand's motion: the depth
        moves it rather than resizing it."""
        config = RefineConfig(
            iterations=iterations,
            self_silhouette_weight=0.0 if warm else self.config.self_silhouette_weight,
            optimise_shape=not warm,
            skeleton_weight=self.config.skeleton_weight,
            temporal_weight=self.config.temporal_weight if warm else 0.0,
            depth_weight=self.config.depth_weight,
            depth_placement="distance" if warm else "size",
            depth_fits_shape=not warm,
            patience=WARM_PATIENCE if warm else RefineConfig.patience,
        )
        return refine(
            model,
            init,
            batch.K,
            batch.keypoints,
            keypoint_weights=batch.weights,
            prior=prior,
            config=config,
            skeleton3d=batch.skeleton3d,
            depth=depth,
            keypoint_skeleton=self.skeletons[model.side],
        )


def _hand_depths(model, result, count: int, given: bool) -> list[HandDepth | None]:
    """Per hand of a batch, how the depth was used (None per hand without a depth image)."""
    if not given:
        return [None] * count
    if result.depth is None:  # depth_weight 0
        return [HandDepth(False, DEPTH_IGNORED, float("nan"))] * count
    obs = result.depth
    ratio = torch.where(obs.used, result.depth_size_ratio, torch.ones_like(obs.scale))
    measured = hand_size_of(model).scaled(result.params.shape, ratio)
    return [
        HandDepth(
            used=bool(obs.used[i]),
            status=obs.status[i],
            valid_fraction=float(obs.valid_fraction[i]),
            residual_mm=float(result.depth_residual_mm[i]),
            scale=float(ratio[i]),
            measured_shape=measured[i].double().cpu().numpy() if obs.used[i] else None,
        )
        for i in range(count)
    ]
