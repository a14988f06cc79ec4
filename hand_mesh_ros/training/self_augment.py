"""Self-data augmentation (DHPE Sec. 3.5): new training instances from the model's own fits.

For each seed (a training crop and the network's predicted theta for it):

1. texture: the predicted mesh is placed in the crop camera and every vertex takes the seed
   image's color at its projection (bilinear); vertices hidden behind the mesh itself (depth
   more than ``visibility_tolerance`` behind the z-buffer) take the mean color of the visible
   ones (``vertex_texture``) -- our stand-in for the paper's neural texture renderer (Kato et
   al.);
2. ``copies`` new hands keep the seed's articulation (pose) and get a new shape, each
   coefficient uniform in +-``shape_sigma`` (the paper's "three times the standard
   deviation"), and a new global rotation R = Rz(c) Ry(b) Rx(a), each angle uniform in
   +-``max_angle_deg`` (the paper's per-axis rotations; its range was lost in the text);
3. each new hand is placed with its middle MCP on the optical axis of the crop camera at
   ``CROP_REF_DEPTH`` and framed like every training crop: the square box of side
   ``BOX_SCALE`` x max(width, height) of its projected keypoints, centred on that box, mapped
   to crop_size pixels (K = A @ K_crop);
4. it is rendered with the hard rasterizer and the texture, and composited on a random
   procedural background (smooth color field + pixel noise; the paper used NYU images).

Every new instance has exact labels: keypoints_3d (metres, camera frame of K), keypoints_2d
(= project(keypoints_3d, K), crop px), mask, and its hand-model parameters.

``AugmentPool`` keeps the newest instances (a ring buffer) and hands out random subsets for
the training batches; its contents are part of a checkpoint (exact resume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hand_mesh_ros.camera import (
    CROP_REF_DEPTH,
    apply_crop_camera,
    batched_intrinsics,
    crop_intrinsics,
    project,
)
from hand_mesh_ros.hand_params import split_theta
from hand_mesh_ros.render import rasterize
from hand_mesh_ros.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hand_mesh_ros.topology import MIDDLE_MCP_KEYPOINT, NUM_KEYPOINTS, NUM_SHAPE
from hand_mesh_ros.training.losses import BOX_SCALE

BACKGROUND_GRID = 4  # cells per side of the coarse random color field of a background
BACKGROUND_NOISE = 0.03  # std of the per-pixel noise added to a background, [0, 1] units
FALLBACK_COLOR = 0.5  # grey, for vertices of an invisible mesh projecting outside the image


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """copies: new instances per seed; shape_sigma: shape coefficients uniform in +-this;
    max_angle_deg: per-axis rotation angles uniform in +-this; crop_size: px of the crops;
    visibility_tolerance: metres behind the z-buffer a vertex may lie and still be visible."""

    copies: int = 3
    shape_sigma: float = 3.0
    max_angle_deg: float = 180.0
    crop_size: int = 224
    visibility_tolerance: float = 0.004

    def __post_init__(self) -> None:
        if self.copies < 1 or self.crop_size < 8:
            raise ValueError(f"need copies >= 1 and crop_size >= 8: {self}")
        if self.shape_sigma < 0 or not 0 <= self.max_angle_deg <= 180:
            raise ValueError(f"need shape_sigma >= 0 and max_angle_deg in [0, 180]: {self}")


@dataclass(frozen=True)
class AugmentedBatch:
    """N = seeds x copies new instances, all tensors on the seeds' device.

    image (N, 3, S, S) RGB in [0, 1]; mask (N, S, S) float {0, 1}; keypoints_2d (N, 21, 2)
    crop px; keypoints_3d (N, 21, 3) metres, camera frame of K; K (N, 3, 3) px; pose (N, 45),
    shape (N, 10), global_orient (N, 3) radians, transl (N, 3) metres (camera frame);
    seed_index (N,) long, the seed each instance came from.
    """

    image: torch.Tensor
    mask: torch.Tensor
    keypoints_2d: torch.Tensor
    keypoints_3d: torch.Tensor
    K: torch.Tensor
    pose: torch.Tensor
    shape: torch.Tensor
    global_orient: torch.Tensor
    transl: torch.Tensor
    seed_index: torch.Tensor

    def __len__(self) -> int:
        return int(self.image.shape[0])


def vertex_texture(
    image: torch.Tensor,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    *,
    visibility_tolerance: float = 0.004,
) -> torch.Tensor:
    """Per-vertex colors sampled from the image the mesh was fitted to.

    image (B, 3, H, W) in [0, 1]; vertices (B, V, 3) metres in the camera frame of K (3, 3)
    or (B, 3, 3). Returns (B, V, 3): bilinear samples at the vertices' projections for
    visible vertices, the mean visible color for hidden or out-of-image ones; for a mesh
    with no visible vertex (smaller than a pixel), the samples at every vertex inside the
    image and grey outside.
    """
    batch, _, height, width = image.shape
    uv = project(vertices, K)
    scale = torch.tensor([2.0 / width, 2.0 / height], dtype=uv.dtype, device=uv.device)
    grid = ((uv + 0.5) * scale - 1.0)[:, :, None, :]  # pixel centres -> align_corners=False
    colors = F.grid_sample(image, grid.to(image.dtype), align_corners=False)[..., 0].mT
    raster = rasterize(vertices, faces, K, (height, width))
    zbuffer = F.grid_sample(
        raster.depth[:, None].to(image.dtype),
        grid.to(image.dtype),
        mode="nearest",
        align_corners=False,
    )[:, 0, :, 0]
    inside = (grid[:, :, 0].abs() <= 1.0).all(dim=-1)
    visible = inside & (zbuffer > 0) & (vertices[..., 2] <= zbuffer + visibility_tolerance)
    weight = visible.to(image.dtype)[..., None]
    mean = (colors * weight).sum(1) / weight.sum(1).clamp_min(1.0)
    textured = torch.where(visible[..., None], colors, mean[:, None, :])
    # a mesh too small to cover any pixel centre has no visible vertex: raw samples then
    none_visible = (weight.sum(1) == 0)[:, None, :]
    raw = torch.where(inside[..., None], colors, FALLBACK_COLOR)
    return torch.where(none_visible, raw, textured)


def random_rotations_xyz(
    n: int, max_angle_deg: float, generator: torch.Generator, dtype=torch.float32
) -> torch.Tensor:
    """(n, 3, 3) rotations Rz(c) Ry(b) Rx(a), each angle uniform in +-max_angle_deg."""
    limit = math.radians(max_angle_deg)
    angles = (torch.rand(n, 3, generator=generator, dtype=dtype) * 2 - 1) * limit
    eye = torch.eye(3, dtype=dtype)
    axes = [axis_angle_to_matrix(eye[i] * angles[:, i : i + 1]) for i in range(3)]
    return axes[2] @ axes[1] @ axes[0]


def framing_intrinsics(keypoints_2d: torch.Tensor, K: torch.Tensor, crop_size: int):
    """K (B, 3, 3) of the square crop of side BOX_SCALE x the keypoint box, centred on it,
    resampled to crop_size px: pixel c covers image [left + c / s, left + (c + 1) / s].
    keypoints_2d (B, 21, 2) px in the camera of K (3, 3) or (B, 3, 3)."""
    low, high = keypoints_2d.amin(dim=1), keypoints_2d.amax(dim=1)
    side = BOX_SCALE * (high - low).amax(dim=-1)
    left_top = (low + high) / 2.0 - side[:, None] / 2.0
    s = crop_size / side
    affine = torch.zeros(keypoints_2d.shape[0], 3, 3, dtype=K.dtype, device=K.device)
    affine[:, 0, 0], affine[:, 1, 1], affine[:, 2, 2] = s, s, 1.0
    affine[:, :2, 2] = -left_top * s[:, None] - 0.5
    return affine @ batched_intrinsics(K, keypoints_2d.shape[0])


def random_backgrounds(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, size, size) smooth random color fields plus pixel noise, in [0, 1]."""
    coarse = torch.rand(n, 3, BACKGROUND_GRID, BACKGROUND_GRID, generator=generator)
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    noise = torch.randn(n, 3, size, size, generator=generator) * BACKGROUND_NOISE
    return (smooth + noise).clamp(0.0, 1.0)


def _seed_texture(model, theta: torch.Tensor, images: torch.Tensor, cfg: AugmentConfig):
    pose, shape, cam = split_theta(theta)
    hand = model(pose=pose, shape=shape)
    anchor = hand.keypoints[:, MIDDLE_MCP_KEYPOINT]
    vertices = apply_crop_camera(hand.vertices, anchor, cam, cfg.crop_size)
    k = crop_intrinsics(cfg.crop_size, dtype=theta.dtype, device=theta.device)
    return vertex_texture(
        images.to(theta.dtype),
        vertices,
        model.faces,
        k,
        visibility_tolerance=cfg.visibility_tolerance,
    )


def augment_from_predictions(
    model,
    theta: torch.Tensor,
    images: torch.Tensor,
    *,
    generator: torch.Generator,
    config: AugmentConfig,
) -> AugmentedBatch:
    """New instances from seed predictions (see the module docstring).

    model: the HandModel of the DHPE; theta: (B, 63) predicted parameters for the crops
    images: (B, 3, S, S) RGB in [0, 1] (S = config.crop_size). ``generator`` (CPU) drives
    every random choice, so equal generator states give equal instances.
    """
    size = config.crop_size
    if images.dim() != 4 or images.shape[1:] != (3, size, size) or theta.shape[0] != len(images):
        raise ValueError(f"need images (B, 3, {size}, {size}) and theta (B, 63) of equal B")
    dtype, device = theta.dtype, theta.device
    with torch.no_grad():
        texture = _seed_texture(model, theta.detach(), images, config)
        seed_index = torch.arange(len(theta), device=device).repeat_interleave(config.copies)
        n = len(seed_index)
        pose = split_theta(theta.detach())[0][seed_index]
        shape = torch.rand(n, NUM_SHAPE, generator=generator, dtype=dtype) * 2 - 1
        shape = (shape * config.shape_sigma).to(device)
        rotation = random_rotations_xyz(n, config.max_angle_deg, generator, dtype).to(device)
        orient = matrix_to_axis_angle(rotation)
        placed = model(pose=pose, shape=shape, global_orient=orient)
        target = torch.tensor([0.0, 0.0, CROP_REF_DEPTH], dtype=dtype, device=device)
        transl = target - placed.keypoints[:, MIDDLE_MCP_KEYPOINT]
        vertices = placed.vertices + transl[:, None]
        keypoints_3d = placed.keypoints + transl[:, None]
        k_base = crop_intrinsics(size, dtype=dtype, device=device)
        K = framing_intrinsics(project(keypoints_3d, k_base), k_base, size)
        raster = rasterize(
            vertices, model.faces, K, (size, size), vertex_colors=texture[seed_index]
        )
        mask = raster.mask.to(dtype)
        background = random_backgrounds(n, size, generator).to(device=device, dtype=dtype)
        color = raster.color.permute(0, 3, 1, 2).clamp(0.0, 1.0)
        image = mask[:, None] * color + (1.0 - mask[:, None]) * background
    return AugmentedBatch(
        image=image,
        mask=mask,
        keypoints_2d=project(keypoints_3d, K),
        keypoints_3d=keypoints_3d,
        K=K,
        pose=pose,
        shape=shape,
        global_orient=orient,
        transl=transl,
        seed_index=seed_index,
    )


POOL_FIELDS = ("image", "mask", "keypoints_2d", "keypoints_3d", "K")


class AugmentPool:
    """The newest ``capacity`` augmented instances, CPU; images stored as uint8.

    ``add`` appends (overwriting the oldest when full); ``sample`` draws distinct random
    entries; ``state_dict`` / ``load_state_dict`` round-trip it exactly.
    """

    def __init__(self, capacity: int, crop_size: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity, self.crop_size = capacity, crop_size
        self.count, self.cursor = 0, 0  # entries held, slot of the next write
        self.data = {
            "image": torch.zeros(capacity, 3, crop_size, crop_size, dtype=torch.uint8),
            "mask": torch.zeros(capacity, crop_size, crop_size, dtype=torch.bool),
            "keypoints_2d": torch.zeros(capacity, NUM_KEYPOINTS, 2),
            "keypoints_3d": torch.zeros(capacity, NUM_KEYPOINTS, 3),
            "K": torch.zeros(capacity, 3, 3),
        }

    def __len__(self) -> int:
        return self.count

    def add(self, batch: AugmentedBatch) -> None:
        if self.capacity == 0:
            return
        for i in range(len(batch)):
            slot = self.cursor
            self.data["image"][slot] = (batch.image[i] * 255.0).round().clamp(0, 255).byte().cpu()
            self.data["mask"][slot] = batch.mask[i].cpu() > 0.5
            for name in ("keypoints_2d", "keypoints_3d", "K"):
                self.data[name][slot] = getattr(batch, name)[i].detach().float().cpu()
            self.cursor = (slot + 1) % self.capacity
            self.count = min(self.count + 1, self.capacity)

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """min(n, len) distinct entries: image float (n, 3, S, S) in [0, 1], mask float, the
        rest float32 as stored."""
        n = min(n, self.count)
        index = torch.randperm(self.count, generator=generator)[:n]
        out = {name: self.data[name][index] for name in POOL_FIELDS}
        out["image"] = out["image"].float() / 255.0
        out["mask"] = out["mask"].float()
        return out

    def state_dict(self) -> dict:
        held = {name: value[: self.count].clone() for name, value in self.data.items()}
        return {"capacity": self.capacity, "count": self.count, "cursor": self.cursor, **held}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"pool capacity {state['capacity']} != {self.capacity}")
        self.count, self.cursor = int(state["count"]), int(state["cursor"])
        for name in self.data:
            self.data[name][: self.count] = state[name]


__all__ = [
    "AugmentConfig",
    "AugmentPool",
    "AugmentedBatch",
    "augment_from_predictions",
    "framing_intrinsics",
    "random_backgrounds",
    "random_rotations_xyz",
    "vertex_texture",
]
