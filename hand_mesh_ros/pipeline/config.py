"""Settings of the image -> hands pipeline: ``EstimatorConfig`` (one frame) and
``TrackerConfig`` (continuity over a stream). Each field's default, range and description are
written once (``settings.setting``); ``config/estimator.yaml`` holds the same defaults and
test/test_config.py checks that they agree. The ROS node declares its parameters from these
tables (``ros/params.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hand_mesh_ros.devices import DEVICES
from hand_mesh_ros.settings import check_settings, setting

MAX_HANDS = 8  # most hands one frame may ask for (mediapipe's cost grows with each)


@dataclass(frozen=True, kw_only=True)
class EstimatorConfig:
    """How one frame is estimated (detector, refinement, weights)."""

    device: str = setting(
        "auto", f"torch device, one of {DEVICES}; cuda falls back to the CPU", choices=DEVICES
    )
    # "open" (the bundled open hand model) or the user's MANO: MANO_RIGHT.pkl with
    # MANO_LEFT.pkl beside it, or the folder holding both (handmodel/choice.py)
    hand_model: str = setting(
        "open", "'open' or a MANO_RIGHT.pkl (MANO_LEFT.pkl beside it) or a folder holding both"
    )
    max_hands: int = setting(
        2, "most hands estimated per image", low=1, high=MAX_HANDS, live=True
    )
    mirrored_input: bool = setting(
        False, "true for selfie (mirrored) cameras, mediapipe's convention: fixes left/right",
        live=True,
    )
    min_detection_confidence: float = setting(
        0.3, "mediapipe palm detection threshold", low=0.0, high=1.0, live=True
    )
    refine_iterations: int = setting(
        50, "test-time refinement iterations, new hand (the paper's count; early stop applies)",
        low=0, high=500, live=True,
    )
    warm_iterations: int = setting(
        10, "refinement iterations, tracked hand (warm-started from the previous frame)",
        low=0, high=500, live=True,
    )
    horizontal_fov_deg: float = setting(
        60.0, "field of view assumed when no intrinsics are given, degrees", low=10.0, high=170.0,
        live=True,
    )
    # trained weights of the paper's 2D evidence estimator (ResNet + CPM); when given, its
    # heatmap keypoints replace mediapipe's (mediapipe still finds the hands)
    evidence_weights: str = setting("", "DHPE ResNet+CPM weights file for 2D keypoints; '' = none")
    # mediapipe's "world" skeleton constrains finger articulation where 2D is ambiguous; on
    # the 194 real hands of shared/data/real3d (docs/evaluation.md) 0.001 / 0.002 / 0.0025 /
    # 0.003 / 0.005 / 0.01 gave 2D 6.92 / 6.95 / 6.98 / 7.00 / 7.07 / 7.25 px and PA-MPJPE
    # 10.42 / 9.54 / 9.38 / 9.33 / 9.23 / 9.33 mm (mediapipe's own: 7.02 px, 11.30 mm)
    skeleton_weight: float = setting(
        0.0025, "weight of the detector's 3D landmarks in refinement (0 = unused)",
        low=0.0, high=1e4, live=True,
    )
    # Eq. 13's silhouette self-rendered from a new hand's initial estimate (no mask is
    # observed live): measured without effect on the real hands (+-0.02 px, +-0.02 mm) and
    # on the rendered clip, at 3x a new hand's refinement cost; 1 = the paper's recipe
    self_silhouette_weight: float = setting(
        0.0, "new hands: weight of the silhouette self-rendered from the initial estimate",
        low=0.0, high=1e4, live=True,
    )
    # tracked hands: staying near the previous frame's fit damps detector jitter
    temporal_weight: float = setting(
        100.0, "tracked hands: weight of staying near the last fit", low=0.0, high=1e6, live=True
    )
    # aligned depth (estimate(..., depth=)): how strongly the fit follows the observed depth
    depth_weight: float = setting(
        10.0, "weight of the observed depth in refinement when a depth image is given "
        "(0 = depth ignored)", low=0.0, high=1e6, live=True,
    )

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True, kw_only=True)
class TrackerConfig:
    """When a hand's track (identity and warm start) continues and when it ends. Every rule of
    continuity lives in ``HandTracker`` and reads these."""

    max_missed_frames: int = setting(
        3, "frames a hand track survives undetected", low=0, high=1000, live=True
    )
    # a stamp gap longer than this, a stamp going backwards (a bag restarting) or a new image
    # size ends every track: the next frame starts cold
    track_timeout_s: float = setting(
        1.0, "reset hand tracks after a stamp gap this long (or a stamp going back), s",
        low=0.01, high=3600.0, live=True,
    )
    # > 1: between searches (palm detection, every hand), tracked hands' landmarks are
    # followed from the previous frame (``detect/mediapipe_stream.py``): ~11 ms less per
    # frame, but less accurate (docs/pipeline.md); 1 (default): palm detection every frame
    palm_search_frames: int = setting(
        1, "frames between palm detections while hands are tracked; in between, tracked hands "
        "are followed by their landmarks (faster, less accurate); 1 = palm detection every frame",
        low=1, high=10000, live=True,
    )

    def __post_init__(self) -> None:
        check_settings(self)
