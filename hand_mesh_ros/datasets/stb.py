"""Reader for the Stereo Hand Pose Tracking Benchmark (STB, Zhang et al. 2017).

Layout (``shared/DATASET_FORMATS.md`` section 2): ``<root>/labels/<seq>_BB.mat`` and
``<seq>_SK.mat``, each with ``handPara`` (3, 21, 1500) = (xyz, joint, frame) in millimetres;
images ``<root>/images/<seq>/<prefix><frame>.png`` (or ``<root>/<seq>/...``) with prefix
``BB_left_``, ``BB_right_`` (Bumblebee2 stereo) or ``SK_color_`` (RealSense color), frame
0..1499 unpadded. Sequences B1..B6 x {Counting, Random}; "evaluation" = B1 (as in
Zimmermann & Brox), "training" = B2-B6. Left hands only. No 2D labels, no masks.

What is converted:
- units: millimetres -> metres;
- order: STB (palm, little..thumb, each MCP..tip) -> core order (``STB_TO_CORE``);
- frame: ``_BB`` labels are in the left Bumblebee camera: used as they are for ``bb_left``,
  shifted by the baseline for ``bb_right`` (x_right = x_left - BB_BASELINE_MM); ``_SK``
  labels are in the RealSense depth camera and go to the color camera with the published
  extrinsics: x_color = R^T (x_depth - t), R = Rodrigues(SK_ROTATION_VECTOR);
- wrist: STB's point 0 is the palm centre, not the wrist. The wrist is extrapolated in 3D as
  middle MCP + PALM_TO_WRIST * (palm - middle MCP), with PALM_TO_WRIST = 2: the inverse of
  the palm centre = midpoint(wrist, middle MCP) definition hand3d uses for RHD. It is an
  approximation (bihand uses 2.2); its visibility is set to ``STBConfig.wrist_visibility``;
- 2D keypoints are the projections of the 3D keypoints with the camera's K (all visible).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from hand_mesh_ros.datasets.files import project_points, read_rgb, require_file
from hand_mesh_ros.datasets.keypoint_orders import STB_TO_CORE
from hand_mesh_ros.datasets.sample import HandSample
from hand_mesh_ros.topology import MIDDLE_MCP_KEYPOINT, NUM_KEYPOINTS, WRIST_KEYPOINT

MM_PER_M = 1000.0
FRAMES_PER_SEQUENCE = 1500
EVALUATION_SEQUENCES = ("B1Counting", "B1Random")
TRAINING_SEQUENCES = tuple(f"B{b}{kind}" for b in range(2, 7) for kind in ("Counting", "Random"))
SPLITS = ("training", "evaluation", "all")

# Published intrinsics (fx, fy, cx, cy), pixels; images are 640 x 480.
BB_INTRINSICS = (822.79041, 822.79041, 318.47345, 250.31296)
SK_COLOR_INTRINSICS = (607.92271, 607.88192, 314.78337, 236.42484)
BB_BASELINE_MM = 120.054  # right Bumblebee camera sits +x of the left one
SK_ROTATION_VECTOR = (0.00531, -0.01196, 0.00301)  # color -> depth camera, Rodrigues
SK_TRANSLATION_MM = (-24.0381, -0.4563, -1.2326)
PALM_TO_WRIST = 2.0  # wrist = middle MCP + PALM_TO_WRIST * (palm - middle MCP)

# camera name -> (label file suffix, image prefix)
CAMERAS = {
    "bb_left": ("BB", "BB_left_"),
    "bb_right": ("BB", "BB_right_"),
    "sk": ("SK", "SK_color_"),
}


@dataclass(frozen=True, kw_only=True)
class STBConfig:
    cameras: tuple[str, ...] = ("sk",)  # any of "sk", "bb_left", "bb_right"
    sequences: tuple[str, ...] | None = None  # None: the split's sequences
    wrist_visibility: float = 1.0  # weight of the extrapolated wrist keypoint, in [0, 1]

    def __post_init__(self) -> None:
        if not self.cameras or any(c not in CAMERAS for c in self.cameras):
            raise ValueError(f"cameras must be a non-empty subset of {tuple(CAMERAS)}")
        if not 0.0 <= self.wrist_visibility <= 1.0:
            raise ValueError("wrist_visibility must be in [0, 1]")


def intrinsics(camera: str) -> np.ndarray:
    """(3, 3) K of an STB camera ("sk", "bb_left", "bb_right"), pixels."""
    fx, fy, cx, cy = SK_COLOR_INTRINSICS if camera == "sk" else BB_INTRINSICS
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def load_hand_para(path: str | Path) -> np.ndarray:
    """``handPara`` of a label file -> (frames, 21, 3) float64 millimetres, STB order."""
    path = require_file(Path(path))
    content = scipy.io.loadmat(str(path))
    if "handPara" not in content:
        raise ValueError(f"{path}: no variable 'handPara'")
    para = np.asarray(content["handPara"], dtype=np.float64)
    if para.ndim != 3 or para.shape[:2] != (3, NUM_KEYPOINTS):
        raise ValueError(f"{path}: handPara must be (3, 21, frames), got {para.shape}")
    return para.transpose(2, 1, 0)


def to_camera_frame(points_mm: np.ndarray, camera: str) -> np.ndarray:
    """(N, 3) label points (mm, the label file's frame) -> (N, 3) metres in ``camera``'s frame."""
    points = np.asarray(points_mm, dtype=np.float64)
    if camera == "bb_right":
        points = points - np.array([BB_BASELINE_MM, 0.0, 0.0])
    elif camera == "sk":
        rotation, _ = cv2.Rodrigues(np.array(SK_ROTATION_VECTOR, dtype=np.float64))
        points = (points - np.array(SK_TRANSLATION_MM)) @ rotation  # rows: R^T (x - t)
    return points / MM_PER_M


def stb_to_core(points: np.ndarray) -> np.ndarray:
    """(21, 3) STB-order points -> (21, 3) core order with the wrist extrapolated from the
    palm centre (module docstring)."""
    core = np.asarray(points, dtype=np.float64)[list(STB_TO_CORE)]
    palm, middle_mcp = core[WRIST_KEYPOINT], core[MIDDLE_MCP_KEYPOINT]
    core[WRIST_KEYPOINT] = middle_mcp + PALM_TO_WRIST * (palm - middle_mcp)
    return core


def _sequences(split: str, config: STBConfig) -> tuple[str, ...]:
    if config.sequences is not None:
        return config.sequences
    if split not in SPLITS:
        raise ValueError(f"STB split must be one of {SPLITS}, got {split!r}")
    if split == "evaluation":
        return EVALUATION_SEQUENCES
    if split == "training":
        return TRAINING_SEQUENCES
    return EVALUATION_SEQUENCES + TRAINING_SEQUENCES


class STBDataset:
    """Map-style dataset of STB frames: ``len()``, ``[i] -> HandSample`` (side "left").

    Labels are read once at construction; images on access. Items run over sequences, then
    frames, then cameras. Source: ``"stb/<seq>/<prefix><frame>"``.
    """

    def __init__(
        self, root: str | Path, split: str = "training", *, config: STBConfig | None = None
    ) -> None:
        self.root = Path(root)
        self.config = config or STBConfig()
        self._sequences = _sequences(split, self.config)
        suffixes = sorted({CAMERAS[c][0] for c in self.config.cameras})
        self._labels = {
            (seq, suffix): load_hand_para(self.root / "labels" / f"{seq}_{suffix}.mat")
            for seq in self._sequences
            for suffix in suffixes
        }
        self._items = [
            (seq, frame, camera)
            for seq in self._sequences
            for frame in range(self._labels[(seq, CAMERAS[self.config.cameras[0]][0])].shape[0])
            for camera in self.config.cameras
        ]

    def _image_path(self, seq: str, name: str) -> Path:
        nested = self.root / "images" / seq / name
        return nested if nested.exists() else self.root / seq / name

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> HandSample:
        seq, frame, camera = self._items[index]
        suffix, prefix = CAMERAS[camera]
        labels = self._labels[(seq, suffix)]
        if frame >= labels.shape[0]:
            raise ValueError(f"stb/{seq}: {suffix} labels have only {labels.shape[0]} frames")
        keypoints_3d = stb_to_core(to_camera_frame(labels[frame], camera))
        K = intrinsics(camera)
        visibility = np.ones(NUM_KEYPOINTS)
        visibility[WRIST_KEYPOINT] = self.config.wrist_visibility
        name = f"{prefix}{frame}"
        return HandSample(
            image=read_rgb(self._image_path(seq, f"{name}.png")),
            K=K,
            keypoints_2d=project_points(keypoints_3d, K),
            visibility=visibility,
            keypoints_3d=keypoints_3d,
            mask=None,
            side="left",
            source=f"stb/{seq}/{name}",
        )

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]
