"""Hand tracks over a video: identity, side, and warm-started refinement.

Each track keeps its last fitted parameters (in the right-hand processing frame, see
``estimator.py``) and the last keypoints. A new frame's detections are matched to tracks by
the mean distance between keypoints, relative to the track's hand size -- not by side:
mediapipe's handedness label flickers from frame to frame on some views. A track owns its side,
the score-weighted vote of its detections' labels; a matched hand is processed with the
track's side and refined from its parameters with ``warm_iterations``. When the vote changes
side, the hand is cold-started as the other side (same id). An unmatched detection is
cold-started and opens a new track; a track unseen for more than ``max_missed_frames`` frames
is dropped (its next detection starts cold with a new id).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from hand_mesh_ros.hand_params import HandParams
from hand_mesh_ros.pipeline.estimator import HandBatch, HandMeshEstimator
from hand_mesh_ros.pipeline.types import CameraIntrinsics, FrameResult, HandEstimate

MAX_MATCH_DISTANCE = 0.5  # mean keypoint distance / hand box diagonal above which no match
SIDE_SWITCH_RATIO = 1.5  # a track changes side when the other side's votes outweigh it so much


@dataclass
class Track:
    track_id: int
    side: str
    params: HandParams  # batch of one, processing frame
    keypoints: np.ndarray  # (21,2) last detected keypoints, image pixels
    missed: int = 0
    votes: dict[str, float] = field(default_factory=lambda: {"left": 0.0, "right": 0.0})

    def vote(self, side: str, score: float) -> bool:
        """Add a detection's label; returns True when the track's side changed. The other side
        must outweigh the track's by SIDE_SWITCH_RATIO: each switch costs a cold start, and
        near-even labels would otherwise flip the track every few frames."""
        self.votes[side] += max(score, 1e-3)
        other = "left" if self.side == "right" else "right"
        if self.votes[other] > SIDE_SWITCH_RATIO * self.votes[self.side]:
            self.side = other
            return True
        return False


def match_tracks(tracks: list[Track], detections) -> dict[int, int]:
    """Greedy matching detection index -> track index by relative keypoint distance."""
    pairs = []
    for ti, track in enumerate(tracks):
        size = np.linalg.norm(np.ptp(track.keypoints, axis=0)) + 1e-6
        for di, det in enumerate(detections):
            distance = np.linalg.norm(det.keypoints - track.keypoints, axis=1).mean() / size
            if distance < MAX_MATCH_DISTANCE:
                pairs.append((distance, di, ti))
    matched, used = {}, set()
    for _, di, ti in sorted(pairs):
        if di not in matched and ti not in used:
            matched[di] = ti
            used.add(ti)
    return matched


class HandTracker:
    """Stateful video front of ``HandMeshEstimator``: stable track ids and warm starts."""

    def __init__(self, estimator: HandMeshEstimator) -> None:
        self.estimator = estimator
        self.tracks: list[Track] = []
        self._next_id = 0

    def reset(self) -> None:
        self.tracks.clear()

    def update(self, image: np.ndarray, camera: CameraIntrinsics | None = None) -> FrameResult:
        est, cfg = self.estimator, self.estimator.config
        t0 = time.perf_counter()
        camera = est.camera_for(image, camera)
        detections = est.detect(image)
        timings = {"detect": (time.perf_counter() - t0) * 1e3}
        matched = match_tracks(self.tracks, detections)
        warm, cold, relabel = [], [], {}
        for i, det in enumerate(detections):
            if i not in matched:
                cold.append(i)
                continue
            track = self.tracks[matched[i]]
            flipped = track.vote(det.side, det.score)
            detections[i] = replace(det, side=track.side)
            (cold if flipped else warm).append(i)
            if flipped:
                relabel[i] = matched[i]
        hands: list[HandEstimate] = []
        for indices, is_warm in ((warm, True), (cold, False)):
            if indices:
                tracks = [matched.get(i) if is_warm else relabel.get(i) for i in indices]
                hands += self._run(
                    image, camera, [detections[i] for i in indices], tracks, is_warm, timings
                )
        seen = set(matched.values())
        for ti, track in enumerate(self.tracks):
            track.missed = 0 if ti in seen else track.missed + 1
        self.tracks = [t for t in self.tracks if t.missed <= cfg.max_missed_frames]
        timings["total"] = (time.perf_counter() - t0) * 1e3
        hands.sort(key=lambda h: h.track_id)
        return FrameResult(image.shape[1], image.shape[0], camera, tuple(hands), timings)

    def _run(self, image, camera, detections, track_indices, warm: bool, timings) -> list:
        est = self.estimator
        batch: HandBatch = est.prepare(detections, camera, image.shape[1])
        if warm:
            init = HandParams.cat([self.tracks[ti].params for ti in track_indices])
            iterations = est.config.warm_iterations
        else:
            init, stage_ms = est.cold_start(batch)
            for key, value in stage_ms.items():
                timings[key] = timings.get(key, 0.0) + value
            iterations = est.config.refine_iterations
        t0 = time.perf_counter()
        result = est.fit(batch, init, iterations, warm=warm)
        timings["refine"] = timings.get("refine", 0.0) + (time.perf_counter() - t0) * 1e3
        ids = []
        for k, det in enumerate(detections):
            params = result.params.select(k)
            if track_indices[k] is not None:  # warm, or a known track whose side flipped
                track = self.tracks[track_indices[k]]
                track.params, track.keypoints = params, det.keypoints
            else:
                track = Track(self._next_id, det.side, params, det.keypoints)
                track.vote(det.side, det.score)
                self._next_id += 1
                self.tracks.append(track)
            ids.append(track.track_id)
        return est.finish(batch, result, ids, camera)
