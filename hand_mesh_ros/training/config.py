"""``TrainConfig``: every option of ``hand-mesh train`` in one frozen dataclass, read from YAML.

The YAML file is a flat mapping of field names to values (``config/train_*.yaml``); unknown
keys and wrong types are rejected with a message naming them, and ``--set key=value``
overrides (values parsed as YAML scalars) go through the same checks.

Units: pixels are pixels of the network input crop (``crop_size``); steps count optimiser
updates (one mini-batch each).
"""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from hand_mesh_ros.devices import DEVICES
from hand_mesh_ros.nets.cpm import CPMConfig
from hand_mesh_ros.nets.dhpe import BACKBONE_FEATURE_DIM, DHPEConfig
from hand_mesh_ros.training.losses import LossConfig

DATA_KINDS = ("synthetic", "synthetic-dir", "rhd", "stb", "freihand")
SHAPE_SCHEDULES = ("scheduled", "constant")  # Eq. 12 switch vs the constant-weight ablation
HEATMAP_STRIDE = 7  # crop pixels per heat-map cell at the paper's 224 px / 32 cells


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Options of a training run (see ``config/train_synthetic.yaml`` for a commented set).

    Data: ``data_kind`` "synthetic" renders ``train_samples`` hands once (seed
    ``data_seed``; 0 = a fresh batch rendered every step, endless) with
    ``datasets.synthetic``; the others read ``data_root`` / ``data_split`` with
    ``datasets.open_dataset``. Crops are the paper's 1.5 x keypoint-box square, resized to
    ``crop_size``.
    Schedule: ``stage1_steps`` of the 2D evidence estimator alone (Eqs. 2-3), then
    ``stage2_steps`` of joint training with the full loss (Eq. 7).
    Ablations: ``use_2d_losses`` False drops Eqs. 2-3 (and stage 1), ``self_augment`` False
    drops Sec. 3.5, ``shape_schedule`` "constant" applies the shape loss to every sample.
    """

    seed: int = 0
    device: str = "auto"
    # data
    data_kind: str = "synthetic"
    data_root: str | None = None
    data_split: str | None = None  # None: the reader's default ("training")
    data_seed: int = 1000
    train_samples: int = 4000
    synthetic_image_size: int = 256  # px, side of the rendered synthetic image before cropping
    crop_jitter: float = 0.0  # fraction of the box side: random shift/scale of training crops
    # model
    backbone: str = "resnet18"
    crop_size: int = 128
    heatmap_size: int | None = None  # None: crop_size / 7 (the paper's 224 / 32)
    cpm_channels: int = 64
    cpm_stages: int = 3
    cpm_convs_per_stage: int = 3
    cpm_kernel_size: int = 7
    silhouette_size: int = 32
    # optimisation
    batch_size: int = 16
    learning_rate: float = 1e-3
    # the mesh estimator's FC layers see 500+ unnormalised inputs: an Adam step of size lr on
    # every weight moves theta by ~lr x (sum of |inputs|), so they get a smaller rate
    mesh_lr_factor: float = 0.1
    weight_decay: float = 0.0
    stage1_steps: int = 300
    stage2_steps: int = 700
    final_lr_fraction: float = 0.1  # cosine decay of the learning rate to this fraction
    grad_clip: float = 10.0  # max global gradient norm, 0 = off
    mixed_precision: bool = True  # CUDA only (autocast + GradScaler); the CPU runs fp32
    # losses (Eq. 7); the silhouette threshold tau of Eq. 12 is in crop pixels
    feature_weight: float = 1.0
    heatmap_weight: float = 1.0
    refiner_weight: float = 1.0
    articulation_weight: float = 1.0
    silhouette_weight: float = 1.0
    laplacian_weight: float = 0.1
    silhouette_threshold_px: float = 3.0
    shape_schedule: str = "scheduled"
    use_2d_losses: bool = True
    # self-data augmentation (Sec. 3.5)
    self_augment: bool = True
    augment_after_steps: int = 500  # start (the paper's "after the first N epochs")
    augment_every_steps: int = 1  # seed it from every k-th batch after the start
    augment_seeds_per_batch: int = 2  # seed predictions per batch used for new instances
    augment_copies: int = 3  # new instances per seed (the paper's three)
    augment_pool_size: int = 2000  # the pool keeps the newest instances
    augment_batch_fraction: float = 0.25  # share of each batch drawn from the pool
    augment_max_angle_deg: float = 180.0  # new rotations: each axis angle uniform in +-this
    augment_shape_sigma: float = 3.0  # new shapes: uniform in +-this per coefficient
    # logging and checkpoints
    log_every: int = 10
    overlay_every: int = 200
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        _check_types(self)
        _check_choices(self)
        _check_ranges(self)

    @property
    def total_steps(self) -> int:
        return self.effective_stage1_steps + self.stage2_steps

    @property
    def effective_stage1_steps(self) -> int:
        """Stage 1 trains only the 2D losses, so it is skipped when they are off."""
        return self.stage1_steps if self.use_2d_losses else 0

    @property
    def effective_heatmap_size(self) -> int:
        return self.heatmap_size or max(1, round(self.crop_size / HEATMAP_STRIDE))

    def dhpe_config(self) -> DHPEConfig:
        cpm = CPMConfig(
            num_stages=self.cpm_stages,
            channels=self.cpm_channels,
            kernel_size=self.cpm_kernel_size,
            convs_per_stage=self.cpm_convs_per_stage,
            heatmap_size=self.effective_heatmap_size,
        )
        return DHPEConfig(
            backbone=self.backbone,
            cpm=cpm,
            crop_size=self.crop_size,
            silhouette_size=self.silhouette_size,
        )

    def loss_config(self) -> LossConfig:
        two_d = 1.0 if self.use_2d_losses else 0.0
        return LossConfig(
            feature=self.feature_weight * two_d,
            heatmap=self.heatmap_weight * two_d,
            refiner=self.refiner_weight,
            articulation=self.articulation_weight,
            silhouette=self.silhouette_weight,
            laplacian=self.laplacian_weight,
            silhouette_threshold_px=self.silhouette_threshold_px,
            constant_silhouette_weight=self.shape_schedule == "constant",
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _allowed_types(annotation) -> tuple[type, ...]:
    hint = typing.get_type_hints(TrainConfig)[annotation]
    if isinstance(hint, types.UnionType):
        return tuple(typing.get_args(hint))
    return (hint,)


def _check_types(cfg: TrainConfig) -> None:
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        allowed = _allowed_types(f.name)
        if isinstance(value, bool) and bool not in allowed:
            raise ValueError(f"{f.name} must be {_names(allowed)}, got {value!r}")
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(cfg, f.name, float(value))
            continue
        if not isinstance(value, allowed):
            raise ValueError(f"{f.name} must be {_names(allowed)}, got {value!r}")


def _names(allowed: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in allowed)


def _check_choices(cfg: TrainConfig) -> None:
    choices = {
        "data_kind": DATA_KINDS,
        "shape_schedule": SHAPE_SCHEDULES,
        "device": DEVICES,
        "backbone": tuple(BACKBONE_FEATURE_DIM),
    }
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(cfg, name)!r}")
    if cfg.data_kind != "synthetic" and cfg.data_root is None:
        raise ValueError(f"data_kind {cfg.data_kind!r} needs data_root")


def _check_ranges(cfg: TrainConfig) -> None:
    positive = ("crop_size", "batch_size", "silhouette_size", "log_every", "checkpoint_every")
    positive += ("augment_every_steps", "augment_copies", "overlay_every", "synthetic_image_size")
    for name in positive:
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    non_negative = ("train_samples", "stage1_steps", "stage2_steps", "augment_after_steps")
    non_negative += ("augment_seeds_per_batch", "augment_pool_size", "grad_clip", "crop_jitter")
    for name in non_negative:
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.crop_size % 8:
        raise ValueError(f"crop_size must be a multiple of 8 (stride), got {cfg.crop_size}")
    if not 0.0 <= cfg.augment_batch_fraction < 1.0:
        raise ValueError("augment_batch_fraction must be in [0, 1)")
    if cfg.learning_rate <= 0 or cfg.mesh_lr_factor <= 0 or not 0 <= cfg.final_lr_fraction <= 1:
        raise ValueError("need learning_rate, mesh_lr_factor > 0, final_lr_fraction in [0, 1]")
    if cfg.total_steps < 1:
        raise ValueError("stage1_steps + stage2_steps must be >= 1")


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` -> (key, value parsed as a YAML scalar); ValueError when malformed."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set expects key=value, got {text!r}")
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def config_from_mapping(data: object, *, source: str = "config") -> TrainConfig:
    """TrainConfig from a mapping; ValueError naming unknown keys or invalid values."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of option names to values")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{source}: unknown option(s) {unknown}; known: {sorted(known)}")
    try:
        return TrainConfig(**data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from exc


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config (None = defaults) and apply ``key=value`` overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of option names to values")
    data = dict(data)
    for text in overrides:
        key, value = parse_override(text)
        data[key] = value
    return config_from_mapping(data, source=str(path or "defaults"))
