"""Reader for FreiHAND (Zimmermann et al. 2019), the original release.

Layout (``shared/DATASET_FORMATS.md`` section 3): ``<root>/<split>_xyz.json`` (per sample a
21 x 3 list, metres, camera frame, core keypoint order), ``<split>_K.json`` (per sample 3 x 3),
optional ``<split>_mano.json`` (per sample 1 x 61: pose 48 = global 3 + fingers 45 relative to
MANO's mean pose, shape 10, uv_root 2, scale 1), images ``<split>/rgb/%08d.jpg`` (224 x 224)
and, for training, masks ``training/mask/%08d.jpg`` (one per base index, shared by all
versions; JPEG, thresholded). Training images come in 4 versions: file index = base index +
NUM_TRAINING_BASE * version (0 "gs" green screen, 1 "hom", 2 "sample", 3 "auto"); the
evaluation split has only "gs" and no masks. Right hands only; 2D = projection of 3D with K
(all visible). Source: ``"freihand/<split>/<file index %08d>"``.

MANO parameters become ``HandSample`` params only when a MANO ``HandModel`` (778 vertices,
right, no PCA) is given: the finger pose is moved to the model's convention (MANO's mean
pose added when the model uses ``flat_hand_mean=True``) and the translation is solved so
that the model's middle MCP keypoint lands on the annotated one (FreiHAND places the hand by
keypoint 9). Without a model the params stay None: they are meaningless for other models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hand_mesh_ros.datasets.files import project_points, read_binary_mask, read_json, read_rgb
from hand_mesh_ros.datasets.keypoint_orders import FREIHAND_TO_CORE, to_core_order
from hand_mesh_ros.datasets.sample import HandSample
from hand_mesh_ros.topology import MIDDLE_MCP_KEYPOINT, NUM_KEYPOINTS, NUM_POSE, NUM_SHAPE

NUM_TRAINING_BASE = 32560  # unique training samples; each has 4 image versions
VERSIONS = ("gs", "hom", "sample", "auto")
SPLITS = ("training", "evaluation")
MANO_PARAM_DIM = 61  # pose 48 | shape 10 | uv_root 2 | scale 1
MANO_VERTICES = 778


@dataclass(frozen=True, kw_only=True)
class FreiHANDConfig:
    versions: tuple[str, ...] = ("gs",)  # training image versions to yield (VERSIONS)
    read_masks: bool = True  # training split only

    def __post_init__(self) -> None:
        if not self.versions or any(v not in VERSIONS for v in self.versions):
            raise ValueError(f"versions must be a non-empty subset of {VERSIONS}")


def image_index(base_index: int, version: str) -> int:
    """File index of a training image: base index + NUM_TRAINING_BASE * version number."""
    if not 0 <= base_index < NUM_TRAINING_BASE:
        raise ValueError(f"base index {base_index} outside [0, {NUM_TRAINING_BASE})")
    return base_index + NUM_TRAINING_BASE * VERSIONS.index(version)


def split_mano(theta: np.ndarray) -> dict[str, np.ndarray]:
    """61 FreiHAND MANO numbers -> global_orient (3,), pose (45,) relative to MANO's mean pose,
    shape (10,), uv_root (2,) pixels, scale (1,)."""
    theta = np.asarray(theta, dtype=np.float64).reshape(-1)
    if theta.shape != (MANO_PARAM_DIM,):
        raise ValueError(f"FreiHAND MANO parameters must have {MANO_PARAM_DIM} numbers")
    return {
        "global_orient": theta[:3],
        "pose": theta[3 : 3 + NUM_POSE],
        "shape": theta[48 : 48 + NUM_SHAPE],
        "uv_root": theta[58:60],
        "scale": theta[60:61],
    }


def mano_to_params(theta: np.ndarray, keypoints_3d: np.ndarray, model) -> dict[str, np.ndarray]:
    """FreiHAND MANO numbers + (21, 3) annotated keypoints (metres) -> pose, shape,
    global_orient, transl (float64, camera frame) for ``model`` (a MANO ``HandModel``)."""
    if model.num_vertices != MANO_VERTICES or model.side != "right" or model.use_pca:
        raise ValueError("FreiHAND MANO parameters need a right MANO model without PCA")
    parts = split_mano(theta)
    pose = parts["pose"]
    if model.flat_hand_mean:
        pose = pose + model.hands_mean.detach().cpu().double().numpy()
    dtype, device = model.v_template.dtype, model.device

    def tensor(a: np.ndarray):
        return torch.as_tensor(a[None], dtype=dtype, device=device)

    with torch.no_grad():
        out = model(
            pose=tensor(pose),
            shape=tensor(parts["shape"]),
            global_orient=tensor(parts["global_orient"]),
        )
    anchor = out.keypoints[0, MIDDLE_MCP_KEYPOINT].double().cpu().numpy()
    transl = keypoints_3d[MIDDLE_MCP_KEYPOINT] - anchor
    return {
        "pose": pose,
        "shape": parts["shape"],
        "global_orient": parts["global_orient"],
        "transl": transl,
    }


class FreiHANDDataset:
    """Map-style dataset: ``len()``, ``[i] -> HandSample`` (side "right").

    Items run over versions, then base indices. JSON annotations are read at construction,
    images and masks on access. ``mano_model``: see the module docstring.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "training",
        *,
        config: FreiHANDConfig | None = None,
        mano_model=None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"FreiHAND split must be one of {SPLITS}, got {split!r}")
        self.root, self.split = Path(root), split
        self.config = config or FreiHANDConfig()
        if split == "evaluation" and self.config.versions != ("gs",):
            raise ValueError("the FreiHAND evaluation split has only the 'gs' version")
        self._xyz = np.asarray(read_json(self.root / f"{split}_xyz.json"), dtype=np.float64)
        self._K = np.asarray(read_json(self.root / f"{split}_K.json"), dtype=np.float64)
        n = self._xyz.shape[0]
        if self._xyz.shape != (n, NUM_KEYPOINTS, 3) or self._K.shape != (n, 3, 3):
            raise ValueError(
                f"{self.root}: {split}_xyz.json must be (N, 21, 3) and {split}_K.json (N, 3, 3), "
                f"got {self._xyz.shape} and {self._K.shape}"
            )
        self._mano = None
        if mano_model is not None:
            mano = np.asarray(read_json(self.root / f"{split}_mano.json"), dtype=np.float64)
            if mano.size != n * MANO_PARAM_DIM:
                raise ValueError(f"{split}_mano.json must hold N x {MANO_PARAM_DIM} numbers")
            self._mano = mano.reshape(n, MANO_PARAM_DIM)
        self._model = mano_model

    def __len__(self) -> int:
        return self._xyz.shape[0] * len(self.config.versions)

    def __getitem__(self, index: int) -> HandSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        n = self._xyz.shape[0]
        version, base = self.config.versions[index // n], index % n
        file_index = image_index(base, version) if self.split == "training" else base
        keypoints_3d = to_core_order(self._xyz[base], FREIHAND_TO_CORE)
        K = self._K[base]
        mask = None
        if self.split == "training" and self.config.read_masks:
            mask = read_binary_mask(self.root / "training" / "mask" / f"{base:08d}.jpg")
        params = {}
        if self._model is not None:
            params = mano_to_params(self._mano[base], keypoints_3d, self._model)
        return HandSample(
            image=read_rgb(self.root / self.split / "rgb" / f"{file_index:08d}.jpg"),
            K=K,
            keypoints_2d=project_points(keypoints_3d, K),
            visibility=np.ones(NUM_KEYPOINTS),
            keypoints_3d=keypoints_3d,
            mask=mask,
            side="right",
            source=f"freihand/{self.split}/{file_index:08d}",
            **params,
        )

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]
