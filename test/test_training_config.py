"""TrainConfig: YAML loading, loud rejection of unknown or invalid options, overrides, and the
ablation switches' mapping onto the model and loss configs."""

from __future__ import annotations

import pytest
import yaml
from helpers import REPO_ROOT

from hand_mesh_ros.training.config import TrainConfig, load_config, parse_override

CONFIGS = sorted((REPO_ROOT / "config").glob("train_*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.total_steps >= 1
    assert cfg.dhpe_config().crop_size == cfg.crop_size


def test_yaml_values_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"crop_size": 96, "stage1_steps": 5, "learning_rate": 1}))
    cfg = load_config(path, ["stage2_steps=7", "use_2d_losses=false", "data_root=null"])
    assert (cfg.crop_size, cfg.stage1_steps, cfg.stage2_steps) == (96, 5, 7)
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    assert cfg.use_2d_losses is False and cfg.data_root is None
    # stage 1 trains only the 2D losses: dropped with them
    assert cfg.effective_stage1_steps == 0 and cfg.total_steps == 7
    assert cfg.effective_heatmap_size == round(96 / 7)


def test_unknown_and_invalid_options_are_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("crop_sise: 128\n")
    with pytest.raises(ValueError, match="unknown option.*crop_sise"):
        load_config(path)
    with pytest.raises(ValueError, match="crop_size must be int"):
        load_config(None, ["crop_size=1.5"])
    with pytest.raises(ValueError, match="multiple of 8"):
        load_config(None, ["crop_size=100"])
    with pytest.raises(ValueError, match="shape_schedule must be one of"):
        load_config(None, ["shape_schedule=sometimes"])
    with pytest.raises(ValueError, match="needs data_root"):
        load_config(None, ["data_kind=rhd"])
    with pytest.raises(ValueError, match="self_augment must be bool"):
        load_config(None, ["self_augment=3"])
    with pytest.raises(ValueError, match="key=value"):
        parse_override("stage1_steps")
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_ablation_switches_map_to_the_loss():
    full = TrainConfig().loss_config()
    assert full.feature > 0 and full.heatmap > 0 and not full.constant_silhouette_weight
    no_2d = TrainConfig(use_2d_losses=False).loss_config()
    assert (no_2d.feature, no_2d.heatmap) == (0.0, 0.0)
    assert no_2d.articulation == full.articulation and no_2d.silhouette == full.silhouette
    constant = TrainConfig(shape_schedule="constant").loss_config()
    assert constant.constant_silhouette_weight
    assert TrainConfig(silhouette_threshold_px=2.5).loss_config().silhouette_threshold_px == 2.5


def test_dhpe_config_follows_the_options():
    cfg = TrainConfig(backbone="resnet18", crop_size=64, cpm_channels=32, silhouette_size=16)
    dhpe = cfg.dhpe_config()
    assert dhpe.backbone == "resnet18" and dhpe.feature_dim == 512
    assert dhpe.cpm.channels == 32 and dhpe.cpm.heatmap_size == 9
    assert dhpe.silhouette_size == 16
