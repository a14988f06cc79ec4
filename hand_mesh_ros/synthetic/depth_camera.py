"""A synthetic aligned depth camera: clean scene depth, stereo-camera noise, a held occluder.

Clean depth (``scene_depth``): the hands' z-buffer from the hard rasterizer
(``render.rasterize``) composited over a background plane (``Plane``: a wall, a table),
z-tested per pixel. ``apply_depth_noise`` turns it into what a RealSense D4xx-class active
stereo camera publishes aligned to colour (``DepthNoiseModel``). ``add_occluder`` holds a
plain box in front of part of a hand, in colour and depth (``OccluderConfig``).

Images: depth (H, W) float32 metres along the optical axis (camera-frame z), 0 = no data;
colour (H, W, 3) uint8 RGB; masks (H, W) bool. Camera frame: OpenCV (x right, y down,
z forward), metres; K (3, 3) pixels, pixel centres at integer coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from hand_mesh_ros.render import rasterize
from hand_mesh_ros.rotations import axis_angle_to_matrix
from hand_mesh_ros.visualize import LIGHT_DIRECTION

NEAREST_OCCLUDER_M = 0.1  # m, the occluder's front face stays beyond this (renderer near plane)
MAX_OCCLUDER_HALF_SIDE_M = 0.3  # m, upper end of the bisection on the box's half long side
AMBIENT = 0.25  # Lambert shading of the occluder: ambient + (1 - ambient) * |cos|, as the hand


@dataclass(frozen=True)
class Plane:
    """The plane {X : normal . X = offset} in the camera frame (normal a unit vector pointing
    away from the camera, offset > 0 metres: the plane's distance from the camera centre)."""

    normal: tuple[float, float, float]
    offset: float

    def depth(self, K: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """(H, W) float64 z of the plane seen through each pixel centre; 0 where the ray
        does not meet it in front of the camera."""
        h, w = image_size
        k = np.asarray(K, dtype=np.float64)
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        ray_x, ray_y = (u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1]  # ray = (x, y, 1)
        n = self.normal
        facing = n[0] * ray_x + n[1] * ray_y + n[2]
        with np.errstate(divide="ignore"):
            z = np.where(facing > 0, self.offset / np.where(facing > 0, facing, 1.0), 0.0)
        return z


def sample_wall(
    rng: np.random.Generator,
    *,
    distance_range: tuple[float, float] = (1.0, 2.0),
    max_tilt_deg: float = 30.0,
) -> Plane:
    """A wall behind the hands: distance uniform in ``distance_range`` (m) along the optical
    axis, its normal tilted from the axis by up to ``max_tilt_deg`` in a random direction."""
    distance = rng.uniform(*distance_range)
    tilt = math.radians(rng.uniform(0.0, max_tilt_deg))
    azimuth = rng.uniform(0.0, 2 * math.pi)
    normal = (
        math.sin(tilt) * math.cos(azimuth),
        math.sin(tilt) * math.sin(azimuth),
        math.cos(tilt),
    )
    return Plane(normal, distance * normal[2])  # passes through (0, 0, distance)


def mesh_depth(
    vertices: torch.Tensor, faces: torch.Tensor, K, image_size: tuple[int, int]
) -> np.ndarray:
    """(H, W) float64 z of the nearest surface of one or several meshes, 0 where none.

    vertices: (V, 3) or (B, V, 3) metres, camera frame (B meshes sharing ``faces`` (F, 3))."""
    v = vertices.detach().double()
    v = v[None] if v.dim() == 2 else v
    k = torch.as_tensor(np.asarray(K, dtype=np.float64))
    result = rasterize(v, faces, k, image_size)
    depth = torch.where(result.mask, result.depth, torch.full_like(result.depth, math.inf))
    nearest = depth.amin(dim=0).cpu().numpy()
    return np.where(np.isfinite(nearest), nearest, 0.0)


def composite_depth(front: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Z-test of two (H, W) depth images (0 = no surface): the nearer surface per pixel."""
    both = (front > 0) & (back > 0)
    return np.where(both, np.minimum(front, back), np.maximum(front, back))


def scene_depth(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K,
    image_size: tuple[int, int],
    background: Plane | None,
) -> np.ndarray:
    """Clean (H, W) float32 depth in metres of the hand mesh(es) over a background plane."""
    depth = mesh_depth(vertices, faces, K, image_size)
    if background is not None:
        depth = composite_depth(depth, background.depth(np.asarray(K), image_size))
    return depth.astype(np.float32)


@dataclass(frozen=True)
class DepthNoiseModel:
    """What a RealSense D4xx-class active stereo camera does to the true depth, aligned to
    its colour image (librealsense ``align``, published as 16UC1 millimetres).

    sigma_per_m (1/m): Gaussian noise with standard deviation sigma_per_m * z^2. Stereo depth
        is z = f b / d, so a disparity error of e px gives sigma_z = z^2 e / (f b) (Intel's
        "Tuning depth cameras for best performance" states this RMS-error formula). D435:
        baseline b = 50 mm, f ~ 430-450 px at 848x480, subpixel e ~ 0.08 px -> ~0.0036 /m;
        D415 (b = 55 mm, f ~ 600-650 px) -> ~0.0022 /m. 0.003 sits between them: 0.75 mm at
        0.5 m, 3 mm at 1 m, 12 mm at 2 m (Intel's looser spec, < 2 % at 2 m, is 0.01 /m).
    edge_jump_m (m), edge_band_px (px): where neighbouring true depths differ by more than
        edge_jump_m (a silhouette against the background, a finger over the palm), stereo
        matching fails; pixels within edge_band_px of such a step carry no data (0: off).
    dark_level, bright_level (fractions of full-scale luminance of the colour image): pixels
        darker (low texture and IR return) or brighter (specular, saturated) drop out with
        probability dropout_probability, in blobs of about hole_blob_px (px).
    hole_fraction: fraction of all pixels missing at random (blobs of hole_blob_px): the
        speckle of holes every stereo depth image has.
    quantum_m (m): depth resolution of the published image (16UC1: 1 mm).
    shift_px (dx, dy) px: constant misalignment between depth and colour (calibration error
        of the depth-to-colour registration); depth content moves right / down. (2, 1) is
        2.2 px: ~2 mm on the hand at 0.5 m, ~4 mm at 1 m with a 615 px colour focal length.
    min_range_m, max_range_m (m): outside this range of the (noisy) depth, no data (min-Z of
        a D435 at 848x480 is ~0.2 m; far away the noise makes the depth useless).
    Every effect is off at 0 (shift (0, 0), min_range_m 0, max_range_m inf).
    """

    sigma_per_m: float = 0.003
    edge_jump_m: float = 0.02
    edge_band_px: int = 2
    dark_level: float = 0.12
    bright_level: float = 0.97
    dropout_probability: float = 0.6
    hole_fraction: float = 0.01
    hole_blob_px: float = 1.5
    quantum_m: float = 0.001
    shift_px: tuple[int, int] = (2, 1)
    min_range_m: float = 0.2
    max_range_m: float = 4.0

    def __post_init__(self) -> None:
        nonnegative = ("sigma_per_m", "edge_jump_m", "edge_band_px", "hole_blob_px",
                       "quantum_m", "min_range_m")
        for name in nonnegative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"DepthNoiseModel.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("dark_level", "bright_level", "dropout_probability", "hole_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(
                    f"DepthNoiseModel.{name} must be in [0, 1], got {getattr(self, name)}"
                )
        if not self.max_range_m > self.min_range_m:
            raise ValueError(
                f"DepthNoiseModel.max_range_m ({self.max_range_m}) must exceed min_range_m "
                f"({self.min_range_m})"
            )
        if len(self.shift_px) != 2 or not all(isinstance(s, int) for s in self.shift_px):
            raise ValueError(f"DepthNoiseModel.shift_px must be two ints, got {self.shift_px}")


PERFECT_DEPTH = DepthNoiseModel(
    sigma_per_m=0.0,
    edge_band_px=0,
    dropout_probability=0.0,
    hole_fraction=0.0,
    quantum_m=0.0,
    shift_px=(0, 0),
    min_range_m=0.0,
    max_range_m=math.inf,
)  # every effect off: the clean depth as float32 (a reference, and a base for single effects)


def depth_edges(depth: np.ndarray, jump_m: float, band_px: int) -> np.ndarray:
    """(H, W) bool: pixels within ``band_px`` of a step > ``jump_m`` between 4-neighbours
    of ``depth`` (0 = no surface counts as infinitely far)."""
    z = np.where(depth > 0, depth, np.inf).astype(np.float64)
    step = np.zeros(depth.shape, dtype=bool)
    if band_px == 0:
        return step
    with np.errstate(invalid="ignore"):
        dx = np.abs(np.diff(z, axis=1)) > jump_m  # inf - inf = nan: no step
        dy = np.abs(np.diff(z, axis=0)) > jump_m
    step[:, :-1] |= dx
    step[:, 1:] |= dx
    step[:-1] |= dy
    step[1:] |= dy
    if band_px > 1 and step.any():
        kernel = np.ones((2 * band_px - 1, 2 * band_px - 1), np.uint8)
        step = cv2.dilate(step.astype(np.uint8), kernel) > 0
    return step


def blob_field(shape: tuple[int, int], blob_px: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float64 uniform in [0, 1) marginally, spatially correlated over ~blob_px: a
    threshold at p selects a fraction p of the pixels in blobs."""
    noise = rng.standard_normal(shape)
    if blob_px > 0:
        noise = cv2.GaussianBlur(noise, (0, 0), blob_px)
    ranks = np.empty(noise.size)
    ranks[np.argsort(noise, axis=None)] = np.arange(noise.size)
    return (ranks / noise.size).reshape(shape)


def shift_image(depth: np.ndarray, shift_px: tuple[int, int]) -> np.ndarray:
    """``depth`` moved by (dx, dy) px (right, down); uncovered pixels are 0."""
    dx, dy = shift_px
    h, w = depth.shape
    out = np.zeros_like(depth)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = depth[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def apply_depth_noise(
    depth: np.ndarray,
    image: np.ndarray | None,
    noise: DepthNoiseModel,
    rng: np.random.Generator,
) -> np.ndarray:
    """What the depth camera publishes for the clean ``depth`` (H, W) metres (0 = no surface).

    image: the aligned (H, W, 3) uint8 RGB colour image, for the dark / bright dropouts
    (None: none). Returns (H, W) float32 metres, multiples of ``noise.quantum_m``, 0 = no
    data. Order: edges from the clean depth, Gaussian noise, quantisation, dropouts, range,
    then the misalignment shift of the whole image.
    """
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    if image is not None and image.shape[:2] != depth.shape:
        raise ValueError(f"image {image.shape[:2]} and depth {depth.shape} differ in size")
    clean = np.nan_to_num(depth.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    surface = clean > 0
    z = clean + noise.sigma_per_m * clean**2 * rng.standard_normal(clean.shape)
    if noise.quantum_m > 0:
        z = np.round(z / noise.quantum_m) * noise.quantum_m
    missing = ~surface | depth_edges(clean, noise.edge_jump_m, noise.edge_band_px)
    if image is not None and noise.dropout_probability > 0:
        luminance = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
        extreme = (luminance < noise.dark_level) | (luminance > noise.bright_level)
        unlucky = blob_field(clean.shape, noise.hole_blob_px, rng) < noise.dropout_probability
        missing |= extreme & unlucky
    if noise.hole_fraction > 0:
        missing |= blob_field(clean.shape, noise.hole_blob_px, rng) < noise.hole_fraction
    missing |= (z < noise.min_range_m) | (z > noise.max_range_m)
    z = np.where(missing, 0.0, z)
    return shift_image(z.astype(np.float32), noise.shift_px)


@dataclass(frozen=True)
class OccluderConfig:
    """A plain box held between the camera and part of a hand.

    gap_range_m (m): the box's back face sits this far in front of the hand surface at the
        box's centre (uniform). coverage_range: fraction of the hand's pixels it hides
        (uniform target; the size is solved for it). thickness_m (m): along the optical
        axis. aspect_range: short / long side of its face. max_tilt_deg: random tilt of the
        face away from the camera. color: RGB, Lambert shaded like the hand.
    """

    gap_range_m: tuple[float, float] = (0.03, 0.08)
    coverage_range: tuple[float, float] = (0.2, 0.4)
    thickness_m: float = 0.03
    aspect_range: tuple[float, float] = (0.3, 1.0)
    max_tilt_deg: float = 20.0
    color: tuple[int, int, int] = (70, 110, 190)


@dataclass(frozen=True, eq=False)
class OccludedScene:
    """image (H, W, 3) uint8 and depth (H, W) float32 m with the occluder drawn in; mask
    (H, W) bool where it is visible; coverage: the fraction of the hand's pixels it hides."""

    image: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    coverage: float


_BOX_CORNERS = np.array(
    [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64
)
# the 6 faces of the box as corner quads (indices into _BOX_CORNERS), each split in 2 triangles
_BOX_QUADS = ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3))


def box_mesh(
    centre: np.ndarray, half_extents: np.ndarray, rotation: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A box as a flat-shaded triangle mesh: each face has its own 4 vertices.

    centre (3,) m; half_extents (3,) m along the box axes; rotation (3, 3) box axes -> camera.
    Returns (vertices (24, 3) float64 m, faces (12, 3) long, normals (24, 3) unit, outward).
    """
    corners = centre + (_BOX_CORNERS * half_extents) @ rotation.T
    vertices, faces, normals = [], [], []
    for q, quad in enumerate(_BOX_QUADS):
        quad_v = corners[list(quad)]
        normal = np.cross(quad_v[1] - quad_v[0], quad_v[2] - quad_v[0])
        normal = normal / np.linalg.norm(normal)
        if normal @ (quad_v.mean(0) - centre) < 0:
            normal = -normal
        vertices.append(quad_v)
        normals.append(np.repeat(normal[None], 4, 0))
        faces += [[4 * q, 4 * q + 1, 4 * q + 2], [4 * q, 4 * q + 2, 4 * q + 3]]
    return (
        torch.from_numpy(np.concatenate(vertices)),
        torch.tensor(faces, dtype=torch.long),
        torch.from_numpy(np.concatenate(normals)),
    )


def _rotation(roll: float, tilt: float, azimuth: float) -> np.ndarray:
    """(3, 3): roll about the optical axis, then tilt about an in-plane axis at ``azimuth``
    (radians)."""
    axes = torch.tensor([[0.0, 0.0, roll],
                         [tilt * math.cos(azimuth), tilt * math.sin(azimuth), 0.0]],
                        dtype=torch.float64)
    roll_r, tilt_r = axis_angle_to_matrix(axes)
    return (tilt_r @ roll_r).numpy()


def _hull_mask(points_3d: np.ndarray, K: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the convex hull of the projections of points (N, 3) in front of the
    camera (a box's silhouette)."""
    uv = points_3d[:, :2] / points_3d[:, 2:] * K[[0, 1], [0, 1]] + K[[0, 1], [2, 2]]
    mask = np.zeros(image_size, np.uint8)
    hull = cv2.convexHull(np.round(uv * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
    return mask > 0


def add_occluder(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K,
    image: np.ndarray,
    depth: np.ndarray,
    rng: np.random.Generator,
    config: OccluderConfig | None = None,
) -> OccludedScene:
    """Hold a box in front of part of the hand (vertices (V, 3) m, camera frame; faces (F, 3))
    in a scene seen as ``image`` (H, W, 3) uint8 and clean ``depth`` (H, W) m: drawn in colour
    and depth where it is nearer than the scene (z-test). The box is centred on the ray of a
    random hand pixel and sized (bisection on its face's size) to hide a random fraction of
    the hand in ``config.coverage_range``."""
    cfg = config or OccluderConfig()
    k = np.asarray(K, dtype=np.float64)
    size = image.shape[:2]
    if depth.shape != size:
        raise ValueError(f"image {size} and depth {depth.shape} differ in size")
    hand = mesh_depth(vertices, faces, k, size)
    hand_mask = hand > 0
    if not hand_mask.any():
        raise ValueError("the hand is not in the image: nothing to occlude")
    rows, cols = np.nonzero(hand_mask)
    pick = rng.integers(rows.size)
    anchor_z = hand[rows[pick], cols[pick]]
    ray = np.array([(cols[pick] - k[0, 2]) / k[0, 0], (rows[pick] - k[1, 2]) / k[1, 1], 1.0])
    half_thick = cfg.thickness_m / 2
    gap = rng.uniform(*cfg.gap_range_m)
    centre_z = max(anchor_z - gap - half_thick, NEAREST_OCCLUDER_M + half_thick)
    centre = ray * centre_z
    rotation = _rotation(rng.uniform(0, 2 * math.pi),
                         math.radians(rng.uniform(0, cfg.max_tilt_deg)),
                         rng.uniform(0, 2 * math.pi))
    aspect = rng.uniform(*cfg.aspect_range)
    target = rng.uniform(*cfg.coverage_range)

    def extents(side: float) -> np.ndarray:
        return np.array([side, side * aspect, half_thick])

    def coverage(side: float) -> float:
        corners = centre + (_BOX_CORNERS * extents(side)) @ rotation.T
        return (_hull_mask(corners, k, size) & hand_mask).sum() / hand_mask.sum()

    low, high = 0.0, MAX_OCCLUDER_HALF_SIDE_M
    for _ in range(20):
        mid = (low + high) / 2
        low, high = (mid, high) if coverage(mid) < target else (low, mid)
    box_v, box_f, normals = box_mesh(centre, extents(high), rotation)
    light = np.asarray(LIGHT_DIRECTION, dtype=np.float64)
    lambert = np.abs(normals.numpy() @ -(light / np.linalg.norm(light)))
    shade = (AMBIENT + (1 - AMBIENT) * lambert)[:, None] * np.asarray(cfg.color) / 255.0
    drawn = rasterize(box_v[None], box_f, torch.from_numpy(k), size,
                      vertex_colors=torch.from_numpy(shade))
    box_depth = drawn.depth[0].numpy()
    visible = drawn.mask[0].numpy() & ((depth <= 0) | (box_depth < depth))
    color = (drawn.color[0].clamp(0, 1) * 255).round().byte().numpy()
    out_image = image.copy()
    out_image[visible] = color[visible]
    out_depth = np.where(visible, box_depth, depth).astype(np.float32)
    hidden = (visible & hand_mask).sum() / hand_mask.sum()
    return OccludedScene(out_image, out_depth, visible, float(hidden))
