"""Hand tracks over a stream: identity, side, warm starts, and every rule of continuity.

Each track keeps its hand's last estimate and detected keypoints. A new frame's detections are
matched to tracks by the mean distance between keypoints, relative to the track's hand size --
not by side: mediapipe's handedness label flickers from frame to frame on some views. A track
owns its side, the score-weighted vote of its detections' labels; a matched hand is processed
with the track's side and refined from its last estimate. When the vote changes side, the hand
is cold-started as the other side (same id). An unmatched detection is cold-started and opens
a new track.

Continuity rules (``TrackerConfig``), all here so that the node, the CLI's video mode, the
demo and the benchmarks share them:
- a track unseen for more than ``max_missed_frames`` frames ends;
- every track ends when the stream jumps: a stamp gap over ``track_timeout_s``, a stamp going
  backwards (a bag restarting), or a new image size;
- a hand whose fit was invalid ends its track; a result the caller rejects
  (``reject_last``) ends every track;
- detection: the whole image is searched for hands (palm detection) every
  ``palm_search_frames`` frames (1, the default: every frame), whenever no hand is tracked
  and after a stream jump; in between, tracked hands' landmarks are followed from the
  previous frame (``detect/mediapipe_stream.py``).
A hand whose track ended is cold-started with a new id when it is seen again.

Hand size (aligned depth, ``update(..., depth=)``): a track learns its hand's shape -- above
all its size, which one RGB image cannot tell from its distance -- and warm-starts every later
frame with it, so a known hand stays metric when the depth drops out (tracked hands do not
refit their shape). A new hand's shape is fitted with the depth (the cold start; a track that
began without depth is cold-started once, same id, on its first frame with depth); on every
later frame whose depth is used, the fit reports the size correction the depth still implies
(``HandDepth.scale``), and the track's shape is the running mean of its shapes corrected by
it (``HandDepth.measured_shape``; the last ``SIZE_MEMORY_FRAMES`` weigh most): independent
measurements of one size, not a chain of corrections (a hand moving towards the camera is not
a hand shrinking).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from hand_mesh_ros.pipeline.config import TrackerConfig
from hand_mesh_ros.pipeline.estimator import Detections, HandMeshEstimator
from hand_mesh_ros.pipeline.types import CameraIntrinsics, FrameResult, HandEstimate

MAX_MATCH_DISTANCE = 0.5  # mean keypoint distance / hand box diagonal above which no match
SIDE_SWITCH_RATIO = 1.5  # a track changes side when the other side's votes outweigh it so much
SIZE_MEMORY_FRAMES = 30  # depth frames over which a track's learned shape averages


@dataclass
class Track:
    track_id: int
    side: str
    keypoints: np.ndarray  # (21,2) last detected keypoints, image pixels
    estimate: HandEstimate | None = None  # last valid estimate: the warm start
    missed: int = 0
    votes: dict[str, float] = field(default_factory=lambda: {"left": 0.0, "right": 0.0})
    learned_shape: np.ndarray | None = None  # (10,) mean shape of the depth frames
    depth_frames: int = 0
    depth_sizing_tried: bool = False  # cold-started once on a depth frame to be sized by it

    def learn_shape(self, shape: np.ndarray) -> None:
        """Fold in a shape measured on a frame whose depth was used."""
        self.depth_frames += 1
        rate = 1.0 / min(self.depth_frames, SIZE_MEMORY_FRAMES)
        previous = shape if self.learned_shape is None else self.learned_shape
        self.learned_shape = previous + rate * (np.asarray(shape) - previous)

    def warm_start(self) -> HandEstimate | None:
        """The last estimate with the learned shape (the estimate itself while none is)."""
        if self.estimate is None or self.learned_shape is None:
            return self.estimate
        return replace(self.estimate, shape=self.learned_shape)

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
    """Stateful video front of ``HandMeshEstimator``: detects, matches detections to tracks,
    calls the estimator once with the tracks' warm starts, and updates the tracks."""

    def __init__(self, estimator: HandMeshEstimator, config: TrackerConfig | None = None) -> None:
        self.estimator = estimator
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self._next_id = 0
        self._last_frame: tuple[float | None, tuple[int, int]] | None = None  # stamp, (h, w)
        self._since_search = 0  # frames since the image was last searched for new hands
        self._last_detected: tuple[float | None, tuple[int, int]] | None = None  # detect's

    def reset(self) -> None:
        """End every track (the next frame starts cold)."""
        self.tracks.clear()

    def reject_last(self) -> None:
        """The caller could not use the last result (e.g. its messages failed to build): end
        every track rather than warm-start from it."""
        self.reset()

    def update(
        self,
        image: np.ndarray,
        camera: CameraIntrinsics | None = None,
        *,
        stamp: float | None = None,
        depth=None,
    ) -> FrameResult:
        """All hands of the next frame of the stream. stamp: its capture time in seconds
        (e.g. the image header's); None when unknown (only missed frames then end tracks).
        depth: (H,W) metres aligned to the image, or None (``HandMeshEstimator.estimate``).
        The same as ``fit(image, camera, self.detect(image), ...)``."""
        return self.fit(image, camera, self.detect(image, stamp=stamp), stamp=stamp, depth=depth)

    def detect(self, image: np.ndarray, *, stamp: float | None = None) -> Detections:
        """The next frame's hands in 2D: the tracked hands followed from the previous frame,
        or a search for every hand (no tracks, a stream jump, or every
        ``palm_search_frames`` frames). May run on another thread one frame ahead of ``fit``
        (the node overlaps them): it reads only the number of tracks."""
        last, self._last_detected = self._last_detected, (stamp, image.shape[:2])
        tracked = 0 if self._jumped(last, stamp, image.shape[:2]) else len(self.tracks)
        search = not tracked or self._since_search + 1 >= self.config.palm_search_frames
        self._since_search = 0 if search else self._since_search + 1
        return self.estimator.detect(image, tracked=0 if search else tracked)

    def fit(
        self,
        image: np.ndarray,
        camera: CameraIntrinsics | None,
        detections: Detections,
        *,
        stamp: float | None = None,
        depth=None,
    ) -> FrameResult:
        """All hands of the next frame from its ``detect`` result (``update``'s arguments)."""
        self._apply_stream_rules(stamp, image.shape[:2])
        if depth is not None:  # the side the depth shows votes (a new track takes it)
            detections = self.estimator.sides_from_depth(detections, depth, camera)
        matched = match_tracks(self.tracks, detections.hands)
        sides, warm, owner = [], [], []
        for i, det in enumerate(detections.hands):
            track = self.tracks[matched[i]] if i in matched else None
            flipped = track is not None and track.vote(det.side, det.score)
            sides.append(track.side if track is not None else det.side)
            warm.append(None if track is None or flipped or self._size_by_depth(track, depth)
                        else track.warm_start())
            owner.append(track)
        result = self.estimator.estimate(
            image, camera, depth=depth, detections=detections.with_sides(sides), warm=warm
        )
        hands = [self._record(hand, owner[hand.track_id], detections.hands[hand.track_id])
                 for hand in result.hands]
        ended = {id(owner[i]) for i in result.invalid if owner[i] is not None}
        seen = {id(owner[i]) for i in matched}
        for track in self.tracks:
            track.missed = 0 if id(track) in seen else track.missed + 1
        self.tracks = [
            t for t in self.tracks
            if t.missed <= self.config.max_missed_frames and id(t) not in ended
        ]
        hands.sort(key=lambda h: h.track_id)
        return replace(result, hands=tuple(hands))

    @staticmethod
    def _size_by_depth(track: Track, depth) -> bool:
        """A track that began without depth is cold-started (same id) on its first frame with
        depth, once: a warm start only moves a hand by the depth, a cold start sizes it."""
        if depth is None or track.depth_frames or track.depth_sizing_tried:
            return False
        track.depth_sizing_tried = True
        return True

    def _record(self, hand: HandEstimate, track: Track | None, det) -> HandEstimate:
        """Store a valid estimate on its track (a new track for a new hand); the estimate with
        the track's id."""
        if track is None:
            track = Track(self._next_id, hand.side, det.keypoints)
            track.vote(det.side, det.score)
            self._next_id += 1
            self.tracks.append(track)
        track.estimate, track.keypoints = hand, det.keypoints
        if hand.depth_used:
            track.learn_shape(hand.depth.measured_shape)
        return replace(hand, track_id=track.track_id)

    def _apply_stream_rules(self, stamp: float | None, size: tuple[int, int]) -> None:
        """End every track when the stream jumps (see the module docstring)."""
        last, self._last_frame = self._last_frame, (stamp, size)
        if self._jumped(last, stamp, size):
            self.reset()

    def _jumped(self, last, stamp: float | None, size: tuple[int, int]) -> bool:
        """Whether the stream jumped since ``last`` (its (stamp, size), None at the start)."""
        if last is None:
            return False
        last_stamp, last_size = last
        jumped = size != last_size
        if stamp is not None and last_stamp is not None:
            gap_s = stamp - last_stamp
            jumped = jumped or gap_s < 0 or gap_s > self.config.track_timeout_s
        return jumped
