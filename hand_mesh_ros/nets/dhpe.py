"""The dense hand pose estimator (DHPE, Baek et al. CVPR 2019, Eq. 1 and Fig. 2).

    image (B, 3, 224, 224)
      -> 2D evidence estimator: ResNet backbone F (pooled feature f) + CPM head H on the
         backbone's stride-8 map (21 heat maps, 32 x 32), 2D joints j_0 = argmax of the final
         heat maps (Sec. 3.1; the argmax is not differentiable, as in the paper)
      -> mesh estimator (regressor + 2D pose refiner, 3 iterations; ``mesh_estimator.py``)
      -> projection operator (fixed): hand model -> crop camera -> 3D skeleton, its
         projection, and a soft silhouette.

Frames and units: vertices and keypoints_3d are metres in the crop camera frame (OpenCV axes,
``camera.py``); keypoints_2d are crop pixels (pixel centres at integers). The input image is
RGB in [0, 1]; the network normalises it with ImageNet statistics itself
(``resnet.normalize_image``), so ``DHPE.forward`` is the one forward pass of training,
evaluation and inference alike.
The hand model is injected (``hand_mesh_ros.load_hand_model(...)``) and not trained.

Mixed precision: ``forward(..., autocast=True)`` (CUDA) runs only the image networks (backbone,
CPM) in float16; the mesh estimator, hand model and renderer stay in float32 (linear blend
skinning and the soft rasterizer lose too much in half precision).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from hand_mesh_ros.camera import CROP_SIZE, apply_crop_camera, crop_intrinsics, project
from hand_mesh_ros.hand_params import split_theta
from hand_mesh_ros.nets.cpm import CPM, CPMConfig
from hand_mesh_ros.nets.heatmaps import DEFAULT_SOFT_POWER, heatmap_argmax, soft_argmax
from hand_mesh_ros.nets.mesh_estimator import MeshEstimator, MeshEstimatorConfig
from hand_mesh_ros.nets.resnet import ResNet, normalize_image
from hand_mesh_ros.render import render_silhouette
from hand_mesh_ros.topology import MIDDLE_MCP_KEYPOINT

BACKBONE_FEATURE_DIM = {"resnet50": 2048, "resnet18": 512}
KEYPOINT_EXTRACTIONS = ("argmax", "soft_argmax")
DEFAULT_SILHOUETTE_SIZE = 64  # pixels; the silhouette is rendered for a crop resized to this


@dataclass(frozen=True, kw_only=True)
class DHPEConfig:
    """DHPE options.

    backbone: "resnet50" (paper, 2048-d feature) or "resnet18" (light CPU option, 512-d).
    use_feature: False regresses from 2D joints only (mesh estimator feature_dim = 0).
    silhouette_size: side of the rendered silhouette in pixels, None to skip rendering.
    silhouette_sigma: renderer soft-edge parameter (``render_silhouette``); None = its default.
    keypoint_extraction: "argmax" (paper; sub-cell refined, not differentiable) or
        "soft_argmax" (differentiable local expectation, ``heatmaps.soft_argmax``).
    """

    backbone: str = "resnet50"
    use_feature: bool = True
    cpm: CPMConfig = field(default_factory=CPMConfig)
    num_iterations: int = 3
    crop_size: int = CROP_SIZE
    silhouette_size: int | None = DEFAULT_SILHOUETTE_SIZE
    silhouette_sigma: float | None = None
    keypoint_extraction: str = "argmax"
    soft_argmax_power: float = DEFAULT_SOFT_POWER

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONE_FEATURE_DIM:
            raise ValueError(f"backbone must be one of {sorted(BACKBONE_FEATURE_DIM)}")
        if self.keypoint_extraction not in KEYPOINT_EXTRACTIONS:
            raise ValueError(f"keypoint_extraction must be one of {KEYPOINT_EXTRACTIONS}")
        if self.silhouette_size is not None and self.silhouette_size < 1:
            raise ValueError("silhouette_size must be positive or None")

    @property
    def feature_dim(self) -> int:
        return BACKBONE_FEATURE_DIM[self.backbone] if self.use_feature else 0

    def mesh_estimator_config(self) -> MeshEstimatorConfig:
        return MeshEstimatorConfig(
            feature_dim=self.feature_dim,
            num_iterations=self.num_iterations,
            crop_size=self.crop_size,
        )


@dataclass(frozen=True)
class Projection:
    """The projection operator's output for parameters theta (B, 63).

    vertices (B, V, 3) and keypoints_3d (B, 21, 3): metres, crop camera frame;
    keypoints_2d (B, 21, 2): crop pixels; silhouette (B, S, S) in [0, 1] or None.
    """

    vertices: torch.Tensor
    keypoints_3d: torch.Tensor
    keypoints_2d: torch.Tensor
    silhouette: torch.Tensor | None


@dataclass(frozen=True)
class DHPEIteration:
    """One mesh-estimator iteration: params (B, 63), the projection of the mesh, and the
    refiner's 2D keypoints refined_keypoints_2d (B, 21, 2) crop pixels."""

    params: torch.Tensor
    vertices: torch.Tensor
    keypoints_3d: torch.Tensor
    keypoints_2d: torch.Tensor
    refined_keypoints_2d: torch.Tensor
    silhouette: torch.Tensor | None


@dataclass(frozen=True)
class DHPEOutput:
    """heatmaps: every CPM stage's (B, 21, 32, 32) maps (last = final); keypoints_2d
    (B, 21, 2) crop px extracted from the final maps; feature (B, 2048 | 512) the backbone's
    pooled F(x) (computed even when ``use_feature`` is False, for the feature loss Eq. 2);
    iterations: one ``DHPEIteration`` per mesh-estimator iteration."""

    heatmaps: tuple[torch.Tensor, ...]
    keypoints_2d: torch.Tensor
    feature: torch.Tensor
    iterations: tuple[DHPEIteration, ...]

    @property
    def final(self) -> DHPEIteration:
        return self.iterations[-1]


class ProjectionOperator(nn.Module):
    """Hand model + crop camera + renderer (fixed, no trainable weights of its own)."""

    def __init__(self, hand_model: nn.Module, config: DHPEConfig) -> None:
        super().__init__()
        self.hand_model = hand_model
        self.crop_size = config.crop_size
        self.silhouette_size = config.silhouette_size
        self.silhouette_sigma = config.silhouette_sigma

    def forward(self, params: torch.Tensor, *, silhouette: bool = True) -> Projection:
        """params (B, 63) -> Projection (see its docstring); ``silhouette`` False skips the
        rendering (the projection's silhouette is then None)."""
        pose, shape, cam = split_theta(params)
        hand = self.hand_model(pose=pose, shape=shape)
        anchor = hand.keypoints[:, MIDDLE_MCP_KEYPOINT]
        vertices = apply_crop_camera(hand.vertices, anchor, cam, self.crop_size)
        keypoints_3d = apply_crop_camera(hand.keypoints, anchor, cam, self.crop_size)
        k = crop_intrinsics(self.crop_size, dtype=params.dtype, device=params.device)
        keypoints_2d = project(keypoints_3d, k)
        rendered = self.silhouette(vertices) if silhouette else None
        return Projection(vertices, keypoints_3d, keypoints_2d, rendered)

    def silhouette(self, vertices: torch.Tensor) -> torch.Tensor | None:
        """(B, S, S) soft silhouette of crop-camera vertices (B, V, 3); None when disabled."""
        if self.silhouette_size is None:
            return None
        size = self.silhouette_size
        k = crop_intrinsics(size, dtype=vertices.dtype, device=vertices.device)
        extra = {} if self.silhouette_sigma is None else {"sigma": self.silhouette_sigma}
        faces = self.hand_model.faces
        return render_silhouette(vertices, faces, k, image_size=(size, size), **extra)


def _autocast(enabled: bool, device: torch.device):
    """float16 autocast on ``device`` when enabled, else nothing."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


class DHPE(nn.Module):
    """The full DHPE network.

    Args:
        config: options.
        hand_model: a ``HandModel`` (e.g. ``load_hand_model("right")``); frozen here.
        mean_pose: (45,) radians, the pose of theta_0 (e.g. the pose prior's mean).
    """

    def __init__(self, config: DHPEConfig, hand_model: nn.Module, mean_pose: torch.Tensor):
        super().__init__()
        self.config = config
        self.backbone = ResNet(config.backbone, with_fc=False)
        self.cpm = CPM(self.backbone.stage_channels[1], config.cpm)
        self.mesh_estimator = MeshEstimator(config.mesh_estimator_config(), mean_pose)
        self.projection = ProjectionOperator(hand_model, config)
        for p in hand_model.parameters():
            p.requires_grad_(False)

    @property
    def hand_model(self) -> nn.Module:
        return self.projection.hand_model

    def _check_image(self, image: torch.Tensor) -> None:
        crop = self.config.crop_size
        if image.dim() != 4 or image.shape[1:] != (3, crop, crop):
            raise ValueError(f"image must be (B, 3, {crop}, {crop}), got {tuple(image.shape)}")

    def extract_feature(self, image: torch.Tensor, *, autocast: bool = False) -> torch.Tensor:
        """F(x): image (B, 3, H, W) RGB in [0, 1] -> pooled feature (B, 2048 | 512) float32
        (e.g. of the masked image for Eq. 2)."""
        with _autocast(autocast, image.device):
            return self.backbone(normalize_image(image)).float()

    def image_evidence(
        self, image: torch.Tensor, *, autocast: bool = False
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The 2D evidence estimator: image (B, 3, crop_size, crop_size) RGB in [0, 1] ->
        (pooled feature F(x) (B, 2048 | 512), heat maps of every CPM stage (B, 21, M, M)),
        both float32 (stage 1 of training uses this alone)."""
        self._check_image(image)
        with _autocast(autocast, image.device):
            features = self.backbone.forward_features(normalize_image(image))
            stages = self.cpm(features.c3).stages
        return features.pooled.float(), tuple(h.float() for h in stages)

    def keypoints_from_heatmaps(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """(B, 21, M, M) -> (B, 21, 2) crop pixels by the configured extraction."""
        crop = self.config.crop_size
        if self.config.keypoint_extraction == "soft_argmax":
            return soft_argmax(heatmaps, power=self.config.soft_argmax_power, crop_size=crop)
        return heatmap_argmax(heatmaps, crop_size=crop)[0]

    def estimate_mesh(
        self,
        feature: torch.Tensor | None,
        keypoints_2d: torch.Tensor,
        *,
        silhouettes: bool = True,
    ) -> tuple[DHPEIteration, ...]:
        """Mesh estimator + projection from given evidence, without the image networks.

        feature: (B, feature_dim) or None when ``use_feature`` is False; keypoints_2d:
        (B, 21, 2) crop pixels; silhouettes: False renders none (every iteration's silhouette
        is then None).
        """

        def project_fn(params: torch.Tensor) -> Projection:
            return self.projection(params, silhouette=silhouettes)

        steps = self.mesh_estimator(feature, keypoints_2d, project_fn)
        return tuple(
            DHPEIteration(
                params=s.params,
                vertices=s.projection.vertices,
                keypoints_3d=s.projection.keypoints_3d,
                keypoints_2d=s.projection.keypoints_2d,
                refined_keypoints_2d=s.refined_keypoints_2d,
                silhouette=s.projection.silhouette,
            )
            for s in steps
        )

    def forward(
        self, image: torch.Tensor, *, silhouette: bool = True, autocast: bool = False
    ) -> DHPEOutput:
        """image (B, 3, crop_size, crop_size) RGB in [0, 1] -> DHPEOutput.

        Only the final iteration's silhouette is rendered (the only one a loss uses; the soft
        rasterizer is the most expensive part of the mesh estimator), none with
        ``silhouette`` False. ``autocast``: the image networks in float16 (see the module
        docstring).
        """
        feature, stages = self.image_evidence(image, autocast=autocast)
        keypoints_2d = self.keypoints_from_heatmaps(stages[-1])
        mesh_feature = feature if self.config.use_feature else None
        iterations = list(self.estimate_mesh(mesh_feature, keypoints_2d, silhouettes=False))
        if silhouette and self.config.silhouette_size is not None:
            final = iterations[-1]
            iterations[-1] = replace(final, silhouette=self.projection.silhouette(final.vertices))
        return DHPEOutput(stages, keypoints_2d, feature, tuple(iterations))
