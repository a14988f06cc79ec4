"""DHPE training losses (Baek et al. CVPR 2019, Sec. 3.1-3.3, Eqs. 2, 3, 6-9, 12).

Every term is a function returning one value per sample (B,), so that per-sample weights
(Eq. 12) can be applied; ``DHPELoss`` combines them (Eq. 7). The paper's equations were lost
in the text extraction; the prose they are rebuilt from is quoted in each docstring.

Units: 2D joints in crop pixels (pixel centres at integers); 3D keypoints in metres in the
camera frame of K (OpenCV axes); masks and silhouettes in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from hand_mesh_ros.camera import (
    CROP_CAMERA_DIM,
    CROP_SIZE,
    backproject,
    batched_intrinsics,
    crop_camera_parts,
    crop_intrinsics,
    project,
)
from hand_mesh_ros.nets.heatmaps import DEFAULT_SIGMA_CELLS, gaussian_heatmaps
from hand_mesh_ros.topology import MIDDLE_MCP_KEYPOINT

BOX_SCALE = 1.5  # g = 1.5 x max(height, width) of the tight 2D keypoint box (Sec. 3.3)


def _vis(visibility: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """(B, K) weights, ones when None."""
    if visibility is None:
        return like.new_ones(like.shape[:2])
    return visibility.to(like.dtype)


def feature_loss(feature: torch.Tensor, masked_feature: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ||F(x) - F(x * m)||^2, the full image's feature against that of the image
    multiplied by its ground-truth hand mask. Both (B, D) -> (B,). Gradients flow into both
    passes (the paper trains F with this loss; it names no stop-gradient)."""
    return ((feature - masked_feature) ** 2).sum(dim=1)


def heatmap_loss(
    stages: Sequence[torch.Tensor], target: torch.Tensor, visibility: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 3 with intermediate supervision: sum over stages of ||H_s - H_gt||^2.

    stages: each (B, K, M, M); target: (B, K, M, M) (e.g. ``nets.heatmaps.gaussian_heatmaps``);
    visibility: (B, K) weights (0 drops a keypoint's map), None = all. Returns (B,).
    """
    weight = _vis(visibility, target)[..., None, None]
    return sum(((h - target) ** 2 * weight).sum(dim=(1, 2, 3)) for h in stages)


def refiner_loss(
    refined: Sequence[torch.Tensor],
    target: torch.Tensor,
    visibility: torch.Tensor | None = None,
    *,
    scale: float = 1.0,
) -> torch.Tensor:
    """Eq. 6: sum over iterations t of ||j_t - j_gt||^2 (2D pose refiner supervision).

    refined: each (B, 21, 2); target (B, 21, 2), same units; errors are divided by ``scale``
    first (e.g. crop_size / 2 to measure in [-1, 1] crop units). Returns (B,).
    """
    weight = _vis(visibility, target)
    return sum((((j - target) / scale) ** 2).sum(dim=-1).mul(weight).sum(dim=1) for j in refined)


@dataclass(frozen=True)
class SkeletonFrame:
    """The quantities of the Eq. 8 normalisation, each (B,): the middle MCP's pixel
    (u_mcp, v_mcp) and depth z_mcp (metres), the focal length f (pixels) and the box
    size g (pixels)."""

    u_mcp: torch.Tensor
    v_mcp: torch.Tensor
    z_mcp: torch.Tensor
    focal: torch.Tensor
    g: torch.Tensor


def skeleton_frame(keypoints_3d: torch.Tensor, K: torch.Tensor) -> SkeletonFrame:
    """The Eq. 8 normalisation frame of a skeleton: keypoints_3d (B, 21, 3) metres, camera frame;
    K (3, 3) or (B, 3, 3). f = (fx + fy) / 2 (the paper has a single f)."""
    uv = project(keypoints_3d, K)
    box = (uv.amax(dim=1) - uv.amin(dim=1)).amax(dim=-1)  # (B,) max(width, height)
    k = batched_intrinsics(K.to(keypoints_3d.dtype), keypoints_3d.shape[0])
    focal = 0.5 * (k[:, 0, 0] + k[:, 1, 1])
    mcp = MIDDLE_MCP_KEYPOINT
    return SkeletonFrame(
        uv[:, mcp, 0], uv[:, mcp, 1], keypoints_3d[:, mcp, 2], focal, BOX_SCALE * box
    )


def normalise_skeleton(
    keypoints_3d: torch.Tensor, K: torch.Tensor, frame: SkeletonFrame | None = None
) -> torch.Tensor:
    """Eq. 8's N(.): centre at the middle MCP, x/y from the 2D projection, z from the depth.

    "the center of each skeleton is moved to the corresponding middle finger's MCP position.
    ... The x and y coordinate values are divided by g (= 1.5 times the maximum of height and
    width of the tight 2D hand bounding box). The z axis value is divided by z_mcp / f."
    Our reading, with (u, v) = project(X, K):

        x' = (u - u_mcp) / g,   y' = (v - v_mcp) / g,   z' = (z - z_mcp) * f / (z_mcp * g)

    i.e. z is converted to pixels at the MCP's depth (divided by z_mcp / f) and then divided by
    g like x and y, so all three axes share one unit. keypoints_3d (B, 21, 3) metres, camera
    frame; frame: None = this skeleton's own ``skeleton_frame``. Returns (B, 21, 3).
    """
    if frame is None:
        frame = skeleton_frame(keypoints_3d, K)
    uv = project(keypoints_3d, K)
    g = frame.g[:, None]
    x = (uv[..., 0] - frame.u_mcp[:, None]) / g
    y = (uv[..., 1] - frame.v_mcp[:, None]) / g
    z_mcp = frame.z_mcp[:, None]
    z = (keypoints_3d[..., 2] - z_mcp) * frame.focal[:, None] / (z_mcp * g)
    return torch.stack((x, y, z), dim=-1)


def denormalise_skeleton(
    normalised: torch.Tensor, frame: SkeletonFrame, K: torch.Tensor
) -> torch.Tensor:
    """Inverse of ``normalise_skeleton``: (B, 21, 3) normalised -> (B, 21, 3) metres in the
    camera frame of K, given the frame's u_mcp, v_mcp, z_mcp, f and g (at test time these
    come from the 2D keypoints and a depth estimate of the middle MCP)."""
    g = frame.g[:, None]
    u = normalised[..., 0] * g + frame.u_mcp[:, None]
    v = normalised[..., 1] * g + frame.v_mcp[:, None]
    z_mcp = frame.z_mcp[:, None]
    depth = z_mcp + normalised[..., 2] * z_mcp * g / frame.focal[:, None]
    return backproject(torch.stack((u, v), dim=-1), depth, K)


def articulation_loss(
    keypoints_3d: torch.Tensor,
    target_3d: torch.Tensor,
    K: torch.Tensor,
    *,
    target_K: torch.Tensor | None = None,
    frame_from: str = "target",
    visibility: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 8: ||N(J(theta)) - N(J_gt)||^2 summed over keypoints and axes -> (B,).

    keypoints_3d: (B, 21, 3) metres in the camera frame of K; target_3d: (B, 21, 3) metres in
    the frame of ``target_K`` (default K). Both must project to the same pixel grid (crop
    pixels); they may differ in metric depth, e.g. prediction in the virtual crop camera and
    ground truth in the real camera cropped: z enters only relative to each skeleton's own
    z_mcp and f.
    frame_from: "target" (default) takes u_mcp, v_mcp and g of both skeletons from the ground
    truth, so the loss also penalises a misplaced or mis-scaled hand in 2D (the paper notes
    that this loss "helps globally align the estimated meshes with 2D ground-truth
    evidence"); "each" uses each skeleton's own frame (invariant to 2D translation and scale).
    """
    target_K = K if target_K is None else target_K
    target_frame = skeleton_frame(target_3d, target_K)
    pred_frame = skeleton_frame(keypoints_3d, K)
    if frame_from == "target":
        pred_frame = replace(
            pred_frame, u_mcp=target_frame.u_mcp, v_mcp=target_frame.v_mcp, g=target_frame.g
        )
    elif frame_from != "each":
        raise ValueError(f"frame_from must be 'target' or 'each', got {frame_from!r}")
    diff = normalise_skeleton(keypoints_3d, K, pred_frame) - normalise_skeleton(
        target_3d, target_K, target_frame
    )
    return ((diff**2).sum(dim=-1) * _vis(visibility, keypoints_3d)).sum(dim=1)


def silhouette_loss(silhouette: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 9: ||R(mesh) - m_gt||^2 as a mean over pixels. Both (B, H, W) -> (B,)."""
    if silhouette.shape != mask.shape:
        raise ValueError(f"silhouette {tuple(silhouette.shape)} != mask {tuple(mask.shape)}")
    return ((silhouette - mask.to(silhouette.dtype)) ** 2).mean(dim=(1, 2))


def mesh_edges(faces: torch.Tensor) -> torch.Tensor:
    """(F, 3) triangles -> (E, 2) unique undirected edges (i < j), long."""
    pairs = torch.cat((faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]), dim=0)
    return torch.unique(torch.sort(pairs, dim=1).values, dim=0)


def uniform_laplacian(vertices: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Uniform (umbrella) Laplacian L(v)_i = v_i - mean of v_i's neighbours.

    vertices (B, V, 3); edges (E, 2). Isolated vertices get 0. Returns (B, V, 3).
    """
    num = vertices.shape[1]
    i, j = edges[:, 0], edges[:, 1]
    degree = torch.zeros(num, dtype=vertices.dtype, device=vertices.device)
    degree.index_add_(0, i, torch.ones_like(i, dtype=vertices.dtype))
    degree.index_add_(0, j, torch.ones_like(j, dtype=vertices.dtype))
    total = torch.zeros_like(vertices)
    total.index_add_(1, i, vertices[:, j])
    total.index_add_(1, j, vertices[:, i])
    mean = total / degree.clamp_min(1.0)[None, :, None]
    return torch.where(degree[None, :, None] > 0, vertices - mean, torch.zeros_like(vertices))


def laplacian_loss(
    vertices: torch.Tensor, reference: torch.Tensor, edges: torch.Tensor
) -> torch.Tensor:
    """Laplacian regulariser (Sec. 3.3, after Kanazawa et al. 2018): mean over vertices of
    ||L(v)_i - L(ref)_i||^2 -> (B,).

    Our choice: the deviation from the reference (template) mesh's Laplacian rather than
    ||L(v)||^2, so that the template itself costs nothing (a hand is not flat; penalising its
    rest curvature would pull it towards a smoothed blob). The Laplacian is linear and
    translation-invariant, L(s R x + t) = s R L(x), so pass the template placed with the same
    rotation and scale as ``vertices`` (``DHPELoss`` does). vertices (B, V, 3);
    reference (V, 3) or (B, V, 3); edges (E, 2).
    """
    ref = reference.expand_as(vertices)
    diff = uniform_laplacian(vertices, edges) - uniform_laplacian(ref, edges)
    return (diff**2).sum(dim=-1).mean(dim=1)


def silhouette_weights(
    keypoints_2d: torch.Tensor,
    target_2d: torch.Tensor,
    *,
    weight: float,
    threshold_px: float,
    visibility: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 12: per-sample shape-loss weight, ``weight`` where the mean 2D distance between the
    projected 3D skeleton and the ground-truth 2D joints is below ``threshold_px``, else 0.

    keypoints_2d, target_2d: (B, 21, 2) pixels; visibility (B, 21) or None. Returns (B,).
    Not differentiable (a switch).
    """
    vis = _vis(visibility, target_2d)
    dist = (keypoints_2d.detach() - target_2d).norm(dim=-1)
    mean = (dist * vis).sum(dim=1) / vis.sum(dim=1).clamp_min(1.0)
    return torch.where(mean < threshold_px, weight, 0.0).to(keypoints_2d.dtype)


# ---- Eq. 7: the overall loss -------------------------------------------------------------

DEFAULT_SIL_THRESHOLD_PX = 5.0  # tau of Eq. 12 at a 224 px crop (the paper's value was lost)
DEFAULT_LAPLACIAN_WEIGHT = 0.1  # the paper's weights were lost; the regulariser stays small


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    """Weights of Eq. 7 and the Eq. 12 switch.

    silhouette: lambda of Eq. 12, applied per sample only where the mean 2D error of the
    projected skeleton is below ``silhouette_threshold_px``; ``constant_silhouette_weight``
    applies it to every sample (the paper's "constant weight" ablation, Fig. 5(f)).
    heatmap_sigma: Gaussian target width in heat-map cells. articulation_frame: see
    ``articulation_loss``.
    """

    feature: float = 1.0
    heatmap: float = 1.0
    refiner: float = 1.0
    articulation: float = 1.0
    silhouette: float = 1.0
    laplacian: float = DEFAULT_LAPLACIAN_WEIGHT
    silhouette_threshold_px: float = DEFAULT_SIL_THRESHOLD_PX
    constant_silhouette_weight: bool = False
    heatmap_sigma: float = DEFAULT_SIGMA_CELLS
    articulation_frame: str = "target"


@dataclass(frozen=True)
class DHPETargets:
    """Ground truth for one batch. A ``training.batches.TrainBatch`` has the same fields
    (and is passed to ``DHPELoss`` as is).

    keypoints_2d: (B, 21, 2) crop pixels. keypoints_3d: (B, 21, 3) metres in the camera frame
    of ``K`` (B, 3, 3) or (3, 3) (which must map them to crop pixels; None = the virtual crop
    camera).
    mask: (B, H, W) hand mask in [0, 1] over the crop (area-resized to the silhouette size)
    or None. visibility: (B, 21) weights or None.
    has_3d, has_mask: (B,) bool, which samples have a 3D skeleton / a mask (None = all); the
    articulation term, and the shape and feature terms, are zero for the others (their
    placeholder values are never used, so zeros or NaNs there are harmless).
    """

    keypoints_2d: torch.Tensor
    keypoints_3d: torch.Tensor
    mask: torch.Tensor | None = None
    visibility: torch.Tensor | None = None
    K: torch.Tensor | None = None
    has_3d: torch.Tensor | None = None
    has_mask: torch.Tensor | None = None


@dataclass(frozen=True)
class LossTerms:
    """Batch means of the unweighted terms (scalars, for logging), the per-sample shape-loss
    weights of Eq. 12 (B,), and the weighted total (scalar) to minimise."""

    feature: torch.Tensor
    heatmap: torch.Tensor
    refiner: torch.Tensor
    articulation: torch.Tensor
    silhouette: torch.Tensor
    laplacian: torch.Tensor
    silhouette_weights: torch.Tensor
    total: torch.Tensor


class DHPELoss(torch.nn.Module):
    """Eq. 7 for a ``DHPEOutput``: feature (Eq. 2) + heat maps (Eq. 3) + refiner (Eq. 6) +
    articulation (Eq. 8) + per-sample-weighted shape (Eqs. 9, 12) + Laplacian terms.

    The refiner term is measured in [-1, 1] crop units (errors / (crop_size / 2)); the
    articulation, shape and Laplacian terms use the final iteration's mesh.
    Args: faces (F, 3) and template_vertices (V, 3) (model frame, e.g. the model at zero
    pose and shape) of the hand model; crop_size of the DHPE input.
    """

    def __init__(
        self,
        config: LossConfig,
        *,
        faces: torch.Tensor,
        template_vertices: torch.Tensor,
        crop_size: int = CROP_SIZE,
    ) -> None:
        super().__init__()
        self.config = config
        self.crop_size = crop_size
        self.register_buffer("edges", mesh_edges(faces.long()))
        self.register_buffer("template", template_vertices.detach().clone())

    @classmethod
    def from_hand_model(
        cls, config: LossConfig, hand_model: torch.nn.Module, crop_size: int = CROP_SIZE
    ) -> DHPELoss:
        """Use ``hand_model``'s faces and its mesh at zero pose and shape as the template."""
        with torch.no_grad():
            template = hand_model(pose=None, shape=None).vertices[0]
        return cls(config, faces=hand_model.faces, template_vertices=template, crop_size=crop_size)

    def _laplacian(self, vertices: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        rotation, scale, _ = crop_camera_parts(params[:, -CROP_CAMERA_DIM:], self.crop_size)
        reference = self.template.to(vertices.dtype) @ rotation.mT
        # measured at the model's own scale: the crop camera's scale s only trades off with
        # its depth in every other term, and a term growing with s^2 would shrink the hand
        # (with s and depth drifting to 0 together; seen in training)
        return laplacian_loss(vertices / scale[:, None, None], reference, self.edges)

    def _silhouette(self, silhouette: torch.Tensor | None, mask: torch.Tensor | None):
        if silhouette is None or mask is None:
            return None
        mask = F.interpolate(
            mask[:, None].to(silhouette.dtype), size=silhouette.shape[-2:], mode="area"
        )[:, 0]
        return silhouette_loss(silhouette, mask)

    def forward(
        self, output, targets: DHPETargets, masked_feature: torch.Tensor | None = None
    ) -> LossTerms:
        """output: a ``nets.dhpe.DHPEOutput``; targets: a ``DHPETargets`` or anything with its
        fields (a ``TrainBatch``); masked_feature: (B, D) F(image * mask) or None (no feature
        term)."""
        cfg, final, vis = self.config, output.iterations[-1], targets.visibility
        zero = final.params.new_zeros(final.params.shape[0])
        k = crop_intrinsics(self.crop_size, dtype=final.params.dtype, device=final.params.device)
        target_3d, target_k = _fill_missing_3d(final.keypoints_3d, targets, k)
        heat_target = gaussian_heatmaps(
            targets.keypoints_2d,
            heatmap_size=output.heatmaps[-1].shape[-1],
            crop_size=self.crop_size,
            sigma=cfg.heatmap_sigma,
        )
        sil = self._silhouette(final.silhouette, targets.mask)
        terms = {
            "feature": zero
            if masked_feature is None
            else feature_loss(output.feature, masked_feature),
            "heatmap": heatmap_loss(output.heatmaps, heat_target, vis),
            "refiner": refiner_loss(
                [it.refined_keypoints_2d for it in output.iterations],
                targets.keypoints_2d,
                vis,
                scale=self.crop_size / 2.0,
            ),
            "articulation": articulation_loss(
                final.keypoints_3d,
                target_3d,
                k,
                target_K=target_k,
                frame_from=cfg.articulation_frame,
                visibility=vis,
            ),
            "silhouette": zero if sil is None else sil,
            "laplacian": self._laplacian(final.vertices, final.params),
        }
        if cfg.constant_silhouette_weight:
            sil_w = torch.full_like(zero, cfg.silhouette)
        else:
            sil_w = silhouette_weights(
                final.keypoints_2d,
                targets.keypoints_2d,
                weight=cfg.silhouette,
                threshold_px=cfg.silhouette_threshold_px,
                visibility=vis,
            )
        terms = _drop_missing(terms, targets)
        per_sample = sil_w * terms["silhouette"]
        for name in ("feature", "heatmap", "refiner", "articulation", "laplacian"):
            per_sample = per_sample + getattr(cfg, name) * terms[name]
        means = {name: value.mean() for name, value in terms.items()}
        return LossTerms(**means, silhouette_weights=sil_w, total=per_sample.mean())


def _fill_missing_3d(predicted_3d: torch.Tensor, targets: DHPETargets, k_crop: torch.Tensor):
    """(target_3d, target_K) with samples lacking 3D replaced by the detached prediction in
    the crop camera k_crop (3, 3): finite values whose term ``_drop_missing`` then zeroes."""
    if targets.has_3d is None:
        return targets.keypoints_3d, targets.K
    batch, crop = predicted_3d.shape[0], predicted_3d.detach()
    k_crop = batched_intrinsics(k_crop, batch)
    k_target = k_crop if targets.K is None else batched_intrinsics(targets.K, batch)
    keep = targets.has_3d.to(torch.bool)[:, None, None]
    target_3d = torch.where(keep, targets.keypoints_3d.to(crop.dtype), crop)
    target_k = torch.where(keep, k_target.to(crop.dtype), k_crop)
    return target_3d, target_k


def _drop_missing(terms: dict, targets: DHPETargets) -> dict:
    """Zero the articulation term where ``has_3d`` is False and the shape and feature terms
    where ``has_mask`` is False (``torch.where``, so nothing of theirs reaches the total)."""
    out = dict(terms)
    if targets.has_3d is not None:
        keep = targets.has_3d.to(torch.bool)
        out["articulation"] = torch.where(keep, terms["articulation"], 0.0)
    if targets.has_mask is not None:
        keep = targets.has_mask.to(torch.bool)
        for name in ("silhouette", "feature"):
            out[name] = torch.where(keep, terms[name], 0.0)
    return out
