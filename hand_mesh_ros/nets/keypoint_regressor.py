"""Keypoint -> mesh regressor: DHPE's iterative mesh estimator fed by detector keypoints.

At inference the pipeline has 21 2D keypoints per hand (a detector such as mediapipe, in the
``topology.py`` order), crops the square region ``fitting.roi.hand_roi(keypoints, 224)``
(1.5 x the keypoint box, the paper's 224 px crop) and expresses the keypoints in crop pixels.
This module maps them to theta = [pose 45 | shape 10 | crop camera 8] (``hand_params.py``):

    e = E([n(j), c])                           keypoint embedding (our addition, see below)
    MeshEstimator(feature=e, keypoints_2d=j)   the paper's 3 iterations of one FC layer
                                               (Eq. 5) + the 2D pose refiner, unchanged

with n(j) the keypoints in [-1, 1] crop units (``mesh_estimator.normalise_keypoints_2d``) and
c the per-keypoint confidence (ones when the detector gives none). The paper's 2048-d image
feature does not exist here; a single linear layer per iteration on raw keypoints is too weak to
recover articulation, so E -- a small MLP -- plays the role of the feature f. The estimator
itself stays the paper's single FC per iteration on [f, keypoints_2d, theta].

The projection operator inside the iterations only needs the 21 keypoints, so it uses
``KeypointSkeleton``: the hand model's LBS evaluated at its 16 joints and 5 fingertip
vertices only (exactly the model's keypoints, ~40x cheaper than skinning every vertex).

Trained for the RIGHT hand of the bundled open hand model (``docs/regressor.md``): left
hands must be mirrored to the right before (keypoints u -> W - 1 - u) and the result mirrored
back. Weights file: a dict ``{"format", "config", "state_dict"}`` read with
``weights.load_weights_file`` (``torch.load(weights_only=True)``). The weights shipped in the
package (``assets/keypoint_regressor.pt``) are what the live pipeline uses; they are trained by
``hand-mesh train-regressor`` (``training/regressor_trainer.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from hand_mesh_ros.camera import (
    CROP_SIZE,
    apply_crop_camera,
    batched_intrinsics,
    crop_intrinsics,
    project,
)
from hand_mesh_ros.hand_params import split_theta
from hand_mesh_ros.handmodel.model import ASSET_DIR
from hand_mesh_ros.handmodel.skeleton import KeypointSkeleton
from hand_mesh_ros.nets.mesh_estimator import (
    EstimatorStep,
    MeshEstimator,
    MeshEstimatorConfig,
    normalise_keypoints_2d,
)
from hand_mesh_ros.rotations import axis_angle_to_matrix
from hand_mesh_ros.topology import MIDDLE_MCP_KEYPOINT, NUM_KEYPOINTS
from hand_mesh_ros.weights import load_weights_file

DEFAULT_WEIGHTS = ASSET_DIR / "keypoint_regressor.pt"
WEIGHTS_FORMAT = "hand_mesh_ros.keypoint_regressor/1"  # bump when the layout changes
DEFAULT_EMBED_DIM = 256  # feature_dim of the mesh estimator
DEFAULT_HIDDEN_DIM = 512  # width of the embedding MLP's hidden layers


@dataclass(frozen=True, kw_only=True)
class KeypointRegressorConfig:
    """Sizes of the regressor and the hand model it was trained for.

    embed_dim: size of the keypoint embedding (= the mesh estimator's feature_dim).
    hidden_dim: width of the two hidden layers of the embedding MLP.
    num_iterations: mesh-estimator iterations (the paper's 3).
    hand_model: ``HandModel.name`` of the model used in training (theta is model-specific).
    side: hand side the weights expect ("right"; left hands are mirrored by the caller).
    """

    embed_dim: int = DEFAULT_EMBED_DIM
    hidden_dim: int = DEFAULT_HIDDEN_DIM
    num_iterations: int = 3
    crop_size: int = CROP_SIZE
    hand_model: str = "open_hand"
    side: str = "right"

    def __post_init__(self) -> None:
        if min(self.embed_dim, self.hidden_dim, self.num_iterations, self.crop_size) < 1:
            raise ValueError(f"invalid KeypointRegressorConfig {self}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> KeypointRegressorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown KeypointRegressorConfig fields {sorted(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class KeypointProjection:
    """keypoints_3d (B, 21, 3) metres, crop camera frame; keypoints_2d (B, 21, 2) crop px."""

    keypoints_3d: torch.Tensor
    keypoints_2d: torch.Tensor


def crop_view_rotation(centre: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotation R_view turning the camera's optical axis onto the ray through the
    crop centre (the smallest such rotation).

    centre: (B, 2) image px (``HandRoi.centre``); K: (3, 3) or (B, 3, 3) real intrinsics.
    The regressor's crop camera looks along that ray, so a crop-camera rotation R_crop (and
    any crop-camera-frame point X) is R_view @ R_crop (R_view @ X) in the real camera frame.
    """
    k = batched_intrinsics(K.to(centre.dtype), centre.shape[0])
    ray = torch.linalg.solve(k, torch.cat((centre, centre.new_ones(centre.shape[0], 1)), 1))
    ray = ray / ray.norm(dim=-1, keepdim=True)
    axis = torch.stack((-ray[:, 1], ray[:, 0], torch.zeros_like(ray[:, 0])), dim=-1)
    sin = axis.norm(dim=-1, keepdim=True)
    angle = torch.atan2(sin, ray[:, 2:3])
    return axis_angle_to_matrix(axis / sin.clamp_min(1e-12) * angle)


class KeypointProjectionOperator(nn.Module):
    """theta (B, 63) -> ``KeypointProjection``: skeleton placed by the crop camera."""

    def __init__(self, skeleton: KeypointSkeleton, crop_size: int = CROP_SIZE) -> None:
        super().__init__()
        self.skeleton = skeleton
        self.crop_size = crop_size

    def forward(self, theta: torch.Tensor) -> KeypointProjection:
        pose, shape, cam = split_theta(theta)
        local = self.skeleton(pose, shape).to(theta.dtype)
        anchor = local[:, MIDDLE_MCP_KEYPOINT]
        keypoints_3d = apply_crop_camera(local, anchor, cam, self.crop_size)
        k = crop_intrinsics(self.crop_size, dtype=theta.dtype, device=theta.device)
        return KeypointProjection(keypoints_3d, project(keypoints_3d, k))


class KeypointEmbedding(nn.Module):
    """MLP: [n(j) (42), confidence (21)] -> (B, embed_dim) feature for the mesh estimator."""

    def __init__(self, config: KeypointRegressorConfig) -> None:
        super().__init__()
        width = config.hidden_dim
        self.layers = nn.Sequential(
            nn.Linear(NUM_KEYPOINTS * 3, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, config.embed_dim),
            nn.ReLU(),
        )
        self.crop_size = config.crop_size

    def forward(self, keypoints_2d: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        normalised = normalise_keypoints_2d(keypoints_2d, self.crop_size)
        return self.layers(torch.cat((normalised, confidence), 1))


class KeypointMeshRegressor(nn.Module):
    """Embedding + DHPE mesh estimator + keypoint projection operator.

    Args:
        config: sizes.
        hand_model: the ``HandModel`` theta refers to (its keypoints are copied; not stored in
            the state dict).
        mean_pose: (45,) radians, theta_0's pose (the pose prior's mean).
    """

    def __init__(
        self, config: KeypointRegressorConfig, hand_model: nn.Module, mean_pose: torch.Tensor
    ) -> None:
        super().__init__()
        if hand_model.name != config.hand_model or hand_model.side != config.side:
            raise ValueError(
                f"config is for the {config.side} {config.hand_model!r} model, got the "
                f"{hand_model.side} {hand_model.name!r} model"
            )
        self.config = config
        self.embedding = KeypointEmbedding(config)
        estimator_config = MeshEstimatorConfig(
            feature_dim=config.embed_dim,
            num_iterations=config.num_iterations,
            crop_size=config.crop_size,
        )
        self.mesh_estimator = MeshEstimator(estimator_config, mean_pose)
        self.projection = KeypointProjectionOperator(KeypointSkeleton(hand_model), config.crop_size)

    @property
    def device(self) -> torch.device:
        return self.mesh_estimator.theta0.device

    def iterate(
        self, keypoints_2d: torch.Tensor, confidence: torch.Tensor | None = None
    ) -> tuple[EstimatorStep, ...]:
        """All iterations. keypoints_2d (B, 21, 2) crop px; confidence (B, 21) in [0, 1] or
        None (= ones). Each step's ``projection`` is a ``KeypointProjection``."""
        if keypoints_2d.dim() != 3 or keypoints_2d.shape[1:] != (NUM_KEYPOINTS, 2):
            shape = tuple(keypoints_2d.shape)
            raise ValueError(f"keypoints_2d must be (B, 21, 2), got {shape}")
        keypoints_2d = keypoints_2d.to(self.mesh_estimator.theta0.dtype)
        if confidence is None:
            confidence = keypoints_2d.new_ones(keypoints_2d.shape[:2])
        if confidence.shape != keypoints_2d.shape[:2]:
            raise ValueError(f"confidence must be (B, 21), got {tuple(confidence.shape)}")
        feature = self.embedding(keypoints_2d, confidence.to(keypoints_2d.dtype))
        return self.mesh_estimator(feature, keypoints_2d, self.projection)

    def forward(
        self, keypoints_2d: torch.Tensor, confidence: torch.Tensor | None = None
    ) -> torch.Tensor:
        """keypoints_2d (B, 21, 2) crop px, confidence (B, 21) or None -> theta (B, 63) of the
        final iteration: pose (45, rad), shape (10), crop camera (8)."""
        return self.iterate(keypoints_2d, confidence)[-1].params


def _default_mean_pose(hand_model: nn.Module) -> torch.Tensor:
    from hand_mesh_ros.handmodel.prior import PosePrior

    return PosePrior.from_model(hand_model).mean_pose().float()


def build_keypoint_regressor(
    config: KeypointRegressorConfig, hand_model: nn.Module | None = None
) -> KeypointMeshRegressor:
    """A freshly initialised regressor for ``config`` (the bundled model when None)."""
    if hand_model is None:
        from hand_mesh_ros.handmodel.model import load_hand_model

        hand_model = load_hand_model(config.side)
    return KeypointMeshRegressor(config, hand_model, _default_mean_pose(hand_model))


def save_keypoint_regressor(
    regressor: KeypointMeshRegressor, path: str | Path, *, dtype=torch.float16
) -> None:
    """Write ``{"format", "config", "state_dict"}`` (floating tensors cast to ``dtype``)."""
    state = {
        name: (t.detach().to("cpu", dtype) if t.is_floating_point() else t.detach().cpu())
        for name, t in regressor.state_dict().items()
    }
    payload = {"format": WEIGHTS_FORMAT, "config": regressor.config.to_dict(), "state_dict": state}
    torch.save(payload, Path(path))


def load_keypoint_regressor(
    path: str | Path | None = None, *, device: torch.device | str | None = None
) -> KeypointMeshRegressor:
    """Load weights written by ``save_keypoint_regressor`` (None = the shipped
    ``assets/keypoint_regressor.pt``); float32, eval mode, on ``device``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a keypoint-regressor weights file or does not match
            this code (format, config fields, tensor names or shapes).
    """
    path = DEFAULT_WEIGHTS if path is None else Path(path)
    payload = load_weights_file(
        path, what="keypoint regressor weights", expected_format=WEIGHTS_FORMAT
    )
    config = KeypointRegressorConfig.from_dict(payload["config"])
    regressor = build_keypoint_regressor(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    try:
        regressor.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not match KeypointMeshRegressor: {error}") from error
    return regressor.to(device).eval()


__all__ = [
    "DEFAULT_WEIGHTS",
    "KeypointEmbedding",
    "KeypointMeshRegressor",
    "KeypointProjection",
    "KeypointProjectionOperator",
    "KeypointRegressorConfig",
    "KeypointSkeleton",
    "build_keypoint_regressor",
    "crop_view_rotation",
    "load_keypoint_regressor",
    "save_keypoint_regressor",
]
