"""Synthetic training hands: posed model, random camera, skin shading, varied backgrounds.

Per sample (all randomness from ``numpy.random.default_rng([seed, index])`` and a torch
generator seeded from it, so the same seed and index give identical pixels):

1. a pinhole camera with focal length ``focal_range`` x image width and the principal point
   at the image centre;
2. a right hand from ``synthetic.scenes.sample_scene_params``: pose from ``PosePrior.sample``,
   shape ~ N(0, 1) clipped, a random viewpoint (roll, tilt, palm or back), depth in
   ``depth_range``, centre inside the image;
3. skin albedo and Lambert lighting per vertex (``shading.py``), rendered with the hard
   rasterizer (``render.rasterize``, vertex colors interpolated);
4. composited over a procedural background or a random crop of an image from
   ``background_dir`` (``backgrounds.py``), plus Gaussian sensor noise;
5. optionally mirrored into a left hand (``mirror.mirror_sample``, probability
   ``left_probability``): its params then belong to the mirrored (left) model.

Annotations (``HandSample``): keypoints_3d from the model (metres, camera frame),
keypoints_2d their exact projections with K, visibility 1 for keypoints inside the image
and 0 outside (occlusion is not judged), mask = rendered silhouette, params in the camera
frame for the model that rendered the hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from hand_mesh_ros.camera import intrinsics_matrix
from hand_mesh_ros.datasets.backgrounds import BackgroundFolder, procedural_background
from hand_mesh_ros.datasets.files import project_points
from hand_mesh_ros.datasets.mirror import mirror_sample
from hand_mesh_ros.datasets.sample import HandSample
from hand_mesh_ros.datasets.shading import shade, skin_albedo
from hand_mesh_ros.render import rasterize
from hand_mesh_ros.render.geometry import vertex_normals
from hand_mesh_ros.synthetic.scenes import SceneConfig, sample_scene_params

_SEED_BITS = 63


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    image_size: tuple[int, int] = (224, 224)  # (H, W) pixels
    focal_range: tuple[float, float] = (1.1, 1.8)  # focal length / image width
    depth_range: tuple[float, float] = (0.45, 0.9)  # metres, of the hand's centre (middle MCP)
    max_tilt_deg: float = 70.0  # viewpoint tilt away from facing the camera
    back_view_probability: float = 0.5  # show the back of the hand instead of the palm
    centre_margin: float = 0.3  # fraction of the image kept free of the hand centre per side
    background_dir: str | None = None  # folder of background images (None: procedural only)
    background_image_probability: float = 0.7  # share of folder backgrounds when a folder is set
    left_probability: float = 0.0  # share of samples mirrored into left hands
    noise_std: float = 2.0  # grey levels, Gaussian sensor noise on the whole image

    def __post_init__(self) -> None:
        h, w = self.image_size
        if h < 16 or w < 16:
            raise ValueError(f"image_size must be at least 16 x 16, got {self.image_size}")
        for name in ("focal_range", "depth_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must satisfy 0 < min <= max, got {(low, high)}")
        if not 0.0 <= self.centre_margin < 0.5:
            raise ValueError("centre_margin must be in [0, 0.5)")
        for name in ("back_view_probability", "background_image_probability", "left_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.noise_std < 0:
            raise ValueError("noise_std must be >= 0")

    def scene(self) -> SceneConfig:
        return SceneConfig(
            depth_range=self.depth_range,
            max_tilt_deg=self.max_tilt_deg,
            back_view_probability=self.back_view_probability,
            centre_margin=self.centre_margin,
        )


class SyntheticGenerator:
    """Renders ``HandSample``s of a right-hand model (default: the bundled open hand).

    model: a right ``HandModel`` on the CPU (e.g. MANO); prior: its ``PosePrior`` (default from the
    model); base_orient: (1, 3) axis-angle showing the model upright to the camera (needed
    for models whose canonical frame differs from the open model's; see ``scenes.py``).
    """

    def __init__(self, config: SyntheticConfig, *, model=None, prior=None, base_orient=None):
        from hand_mesh_ros.handmodel.model import load_hand_model
        from hand_mesh_ros.handmodel.prior import PosePrior

        self.config = config
        self.model = model if model is not None else load_hand_model("right")
        if self.model.side != "right":
            raise ValueError("the synthetic generator renders a right-hand model (left = mirror)")
        self.prior = prior if prior is not None else PosePrior.from_model(self.model)
        self.base_orient = base_orient
        self._rest = self.model.v_template.detach().double().cpu().numpy()
        folder = config.background_dir
        self._backgrounds = BackgroundFolder(folder) if folder is not None else None

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        h, w = self.config.image_size
        use_folder = rng.random() < self.config.background_image_probability
        if self._backgrounds is not None and use_folder:
            return self._backgrounds.crop(rng, h, w)
        return procedural_background(rng, h, w)

    def sample(self, seed: int, index: int) -> HandSample:
        """Sample ``index`` of the stream ``seed`` (deterministic)."""
        cfg = self.config
        h, w = cfg.image_size
        rng = np.random.default_rng([seed, index])
        generator = torch.Generator().manual_seed(int(rng.integers(2**_SEED_BITS)))
        dtype = self.model.v_template.dtype
        focal = rng.uniform(*cfg.focal_range) * w
        K = intrinsics_matrix(focal, focal, (w - 1) / 2.0, (h - 1) / 2.0, dtype=dtype)
        params = sample_scene_params(
            self.model,
            self.prior,
            1,
            K,
            (h, w),
            generator=generator,
            config=cfg.scene(),
            base_orient=self.base_orient,
        )
        with torch.no_grad():
            out = self.model(**params.as_kwargs())
            vertices = out.vertices[0]
            normals = vertex_normals(out.vertices, self.model.faces)[0]
            colors = shade(vertices, normals, skin_albedo(rng, self._rest), rng)
            raster = rasterize(out.vertices, self.model.faces, K, (h, w), vertex_colors=colors)
        mask = raster.mask[0].numpy()
        image = self._background(rng).astype(np.float32)
        image[mask] = raster.color[0].numpy()[mask] * 255.0
        if cfg.noise_std > 0:
            image += rng.normal(0.0, cfg.noise_std, size=image.shape).astype(np.float32)
        K64 = K.double().numpy()
        keypoints_3d = out.keypoints[0].double().numpy()
        keypoints_2d = project_points(keypoints_3d, K64)
        inside = (keypoints_2d >= -0.5).all(axis=1) & (keypoints_2d <= [w - 0.5, h - 0.5]).all(1)
        sample = HandSample(
            image=image.clip(0, 255).round().astype(np.uint8),
            K=K64,
            keypoints_2d=keypoints_2d,
            visibility=inside.astype(np.float64),
            keypoints_3d=keypoints_3d,
            mask=mask,
            side="right",
            source=f"synthetic/{seed}/{index:08d}",
            **{k: v[0].detach().double().numpy() for k, v in params.as_kwargs().items()},
        )
        if rng.random() < cfg.left_probability:
            sample = mirror_sample(sample)
        return sample


def iter_synthetic(
    config: SyntheticConfig, seed: int, count: int, *, generator: SyntheticGenerator | None = None
) -> Iterator[HandSample]:
    """Stream ``count`` samples of stream ``seed`` (indices 0..count-1)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    generator = generator or SyntheticGenerator(config)
    for index in range(count):
        yield generator.sample(seed, index)


class SyntheticDataset:
    """Map-style view of a synthetic stream: ``[i]`` = ``generator.sample(seed, i)``.

    Works with a torch DataLoader (each worker renders its own items; same pixels as the
    stream whatever the worker count).
    """

    def __init__(self, config: SyntheticConfig, seed: int, length: int, *, generator=None) -> None:
        if length < 0:
            raise ValueError("length must be >= 0")
        self.seed, self.length = seed, length
        self.generator = generator or SyntheticGenerator(config)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> HandSample:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        return self.generator.sample(self.seed, index)
