"""Hand keypoints from MediaPipe Hands (mediapipe 0.10.21, the legacy ``solutions.hands`` API).

The wheel ships ``palm_detection_full.tflite`` and ``hand_landmark_full.tflite``; everything
runs offline on the CPU. mediapipe is imported when a detector is built, not when this
module is imported, so the rest of the package works without it.

What the detector returns (``Detection2D``), and how it is made from MediaPipe's output:

- keypoints: MediaPipe's 21 landmarks, whose order (WRIST, THUMB_CMC..TIP, INDEX_FINGER_MCP..
  TIP, MIDDLE, RING, PINKY) is the core's keypoint order (checked in the tests). MediaPipe
  normalises x, y by the image width and height with 0 and 1 at the image's outer edges,
  so u = x * W - 0.5, v = y * H - 0.5 in the core's pixel-centre convention.
- side: MediaPipe's handedness label assumes a mirrored (selfie) image. With
  ``mirrored_input=False`` (an ordinary camera) the label is swapped; with True it is kept.
  On the unmirrored RHD and FreiHAND test images the raw label was wrong on every hand.
  Where MediaPipe's world landmarks show the hand's chirality clearly (``chirality``: the
  fingertips bent out of the palm's plane by at least ``CHIRALITY_MIN`` of the palm length),
  the side they show wins over the label: on the rendered clip of a right hand
  (``synthetic/clip.py``, 40 frames) the label said left on 16 frames while the landmarks said
  right on all 40 (0.22-0.68); on the 17 annotated hands of shared/data/hands label,
  landmarks and truth agree (|chirality| 0.14-0.73); on the 194 real hands of
  shared/data/real3d it changes 1 label (chirality -0.23, against the 193 others' side) and
  none of the 5 whose weak chirality (<= 0.16) disagrees with their label.
- score: MediaPipe's handedness classification score (the legacy API exposes no palm
  detection or hand-presence score); hands below ``min_detection_confidence`` (palm
  detection) or, in video mode, below ``min_tracking_confidence`` (hand presence) are
  already dropped by MediaPipe.
- confidence: the legacy API fills neither landmark ``visibility`` nor ``presence`` for
  hands, so every keypoint gets the hand's score; if a landmark carries presence (else
  visibility), that value is used instead.
- world_keypoints: MediaPipe's world landmarks, metres, origin near the hand's geometric
  centre. Their axes are approximately parallel to the camera frame of the image given
  (x right, y down, z away from the camera): on the three RHD hands the best rotation from
  them to RHD's camera-frame 3D keypoints is 11-23 degrees, and a mirrored frame fits worse.
  For mirrored input they are in the mirrored image's frame, like the 2D keypoints.
- bbox: the box around the 21 keypoints, clipped to the image (no margin added).

A detector is not thread-safe; use one per thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_mesh_ros.chirality import physical_side
from hand_mesh_ros.detect.types import Detection2D
from hand_mesh_ros.topology import NUM_KEYPOINTS

MEDIAPIPE_VERSION = "0.10.21"  # the version whose bundled models and behaviour were checked
MODEL_COMPLEXITIES = (0, 1)  # 0: lite landmark model, 1: full landmark model
_INSTALL_HINT = f'pip install mediapipe=={MEDIAPIPE_VERSION} "protobuf<5" (it needs numpy<2)'
# MediaPipe's label names the side as seen in a mirrored image.
_SWAPPED_SIDE = {"Left": "right", "Right": "left"}
_SAME_SIDE = {"Left": "left", "Right": "right"}


@dataclass(frozen=True, kw_only=True)
class MediapipeConfig:
    """Settings of ``MediapipeHandDetector``.

    max_hands: most hands returned per image (>= 1).
    mirrored_input: True when images are mirrored (a selfie view); decides the side.
    min_detection_confidence: palm-detection threshold in [0, 1].
    min_tracking_confidence: hand-presence threshold in [0, 1] (video mode only).
    model_complexity: 0 (lite) or 1 (full) landmark model.
    static_image_mode: True detects palms in every image (photos, unrelated frames);
        False tracks hands from frame to frame (a video stream; faster, smoother).
    """

    max_hands: int = 2
    mirrored_input: bool = False
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    model_complexity: int = 1
    static_image_mode: bool = True

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.max_hands, bool) or not isinstance(self.max_hands, int):
            problems.append(f"max_hands must be an int, got {self.max_hands!r}")
        elif self.max_hands < 1:
            problems.append(f"max_hands must be >= 1, got {self.max_hands}")
        for name in ("min_detection_confidence", "min_tracking_confidence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{name} must be a number, got {value!r}")
            elif not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {value}")
        if self.model_complexity not in MODEL_COMPLEXITIES or isinstance(
            self.model_complexity, bool
        ):
            problems.append(f"model_complexity must be 0 or 1, got {self.model_complexity!r}")
        for name in ("mirrored_input", "static_image_mode"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be True or False, got {getattr(self, name)!r}")
        if problems:
            raise ValueError("invalid MediapipeConfig: " + "; ".join(problems))


def _import_hands_solution():
    """mediapipe.solutions.hands, or an ImportError that says how to install it."""
    try:
        from mediapipe.python.solutions import hands
    except ImportError as exc:
        raise ImportError(
            f"MediapipeHandDetector needs mediapipe {MEDIAPIPE_VERSION}, which could not be "
            f"imported ({exc}). Install it with: {_INSTALL_HINT}"
        ) from exc
    return hands


class MediapipeHandDetector:
    """Finds hands and their 21 keypoints in RGB images with MediaPipe Hands.

    Use as a context manager or call ``close()`` to free MediaPipe's graph.
    """

    def __init__(self, config: MediapipeConfig = MediapipeConfig()) -> None:
        hands = _import_hands_solution()
        self.config = config
        self._solution = hands.Hands(
            static_image_mode=config.static_image_mode,
            max_num_hands=config.max_hands,
            model_complexity=config.model_complexity,
            min_detection_confidence=config.min_detection_confidence,
            min_tracking_confidence=config.min_tracking_confidence,
        )

    def detect(self, image_rgb: np.ndarray) -> list[Detection2D]:
        """Hands in one (H, W, 3) uint8 RGB image, highest score first (may be empty)."""
        if self._solution is None:
            raise RuntimeError("MediapipeHandDetector.detect called after close()")
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"detect needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"detect got an empty image {image.shape}")
        result = self._solution.process(np.ascontiguousarray(image))
        if not result.multi_hand_landmarks:
            return []
        height, width = image.shape[:2]
        worlds = result.multi_hand_world_landmarks or [None] * len(result.multi_hand_landmarks)
        detections = [
            self._to_detection(landmarks, world, handedness, width, height)
            for landmarks, world, handedness in zip(
                result.multi_hand_landmarks, worlds, result.multi_handedness, strict=True
            )
        ]
        return sorted(detections, key=lambda d: d.score, reverse=True)

    def close(self) -> None:
        """Free MediaPipe's graph; safe to call more than once."""
        if self._solution is not None:
            self._solution.close()
            self._solution = None

    def __enter__(self) -> MediapipeHandDetector:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _to_detection(self, landmarks, world, handedness, width: int, height: int):
        """One hand of MediaPipe's result -> Detection2D (conventions in the module doc)."""
        best = handedness.classification[0]
        sides = _SAME_SIDE if self.config.mirrored_input else _SWAPPED_SIDE
        score = float(np.clip(best.score, 0.0, 1.0))
        points = landmarks.landmark
        if len(points) != NUM_KEYPOINTS:
            raise RuntimeError(f"MediaPipe returned {len(points)} landmarks, expected 21")
        normalised = np.array([[p.x, p.y] for p in points], dtype=np.float64)
        keypoints = normalised * np.array([width, height], dtype=np.float64) - 0.5
        confidence = np.array([_landmark_confidence(p, score) for p in points])
        world_keypoints = None
        if world is not None:
            world_keypoints = np.array([[p.x, p.y, p.z] for p in world.landmark], np.float64)
        return Detection2D(
            keypoints=keypoints,
            confidence=confidence,
            side=physical_side(sides[best.label], world_keypoints, self.config.mirrored_input),
            score=score,
            world_keypoints=world_keypoints,
            bbox=keypoint_bbox(keypoints, width, height),
        )


def _landmark_confidence(landmark, hand_score: float) -> float:
    """Presence if MediaPipe set it, else visibility, else the hand's score; in [0, 1]."""
    for field in ("presence", "visibility"):
        if landmark.HasField(field):
            return float(np.clip(getattr(landmark, field), 0.0, 1.0))
    return hand_score


def keypoint_bbox(
    keypoints: np.ndarray, width: int, height: int
) -> tuple[float, float, float, float]:
    """(x, y, w, h) box around (K, 2) pixel keypoints, clipped to the image
    [-0.5, W - 0.5] x [-0.5, H - 0.5] (pixel centres at integers)."""
    low = np.maximum(keypoints.min(axis=0), -0.5)
    high = np.minimum(keypoints.max(axis=0), np.array([width, height]) - 0.5)
    size = np.maximum(high - low, 0.0)
    return float(low[0]), float(low[1]), float(size[0]), float(size[1])
