"""config/estimator.yaml is the one home of the defaults: the library agrees with it."""

import dataclasses

import pytest
from helpers import REPO_ROOT

from hand_mesh_ros.pipeline.config import EstimatorConfig, TrackerConfig
from hand_mesh_ros.ros.config import NodeConfig
from hand_mesh_ros.ros.params_file import load_params_file
from hand_mesh_ros.settings import Setting, settings_of

PARAMS = REPO_ROOT / "config" / "estimator.yaml"
CONFIGS = (EstimatorConfig, TrackerConfig, NodeConfig)


def test_yaml_defaults_equal_the_library_defaults():
    assert load_params_file(PARAMS, *CONFIGS) == tuple(cls() for cls in CONFIGS)
    import yaml

    listed = yaml.safe_load(PARAMS.read_text())["/**"]["ros__parameters"]
    names = [{f.name for f in dataclasses.fields(cls)} for cls in CONFIGS]
    assert set(listed) == set().union(*names)  # every parameter in the file, none extra
    assert sum(len(n) for n in names) == len(set().union(*names))  # no name in two configs


def test_every_field_has_one_setting_with_a_description_and_a_valid_default():
    for cls in CONFIGS:
        table = settings_of(cls)
        assert set(table) == {f.name for f in dataclasses.fields(cls)}
        for name, (default, spec) in table.items():
            assert isinstance(spec, Setting) and spec.description, name
            spec.check(name, default)


def test_node_options_are_unknown_to_the_estimator_alone():
    with pytest.raises(ValueError, match="auto_start"):
        load_params_file(PARAMS, EstimatorConfig)


def test_ranges_choices_and_types_come_from_the_table():
    with pytest.raises(ValueError, match=r"max_hands must be in \[1, 8\]"):
        EstimatorConfig(max_hands=9)
    with pytest.raises(ValueError, match="image_qos must be one of"):
        NodeConfig(image_qos="fast")
    with pytest.raises(ValueError, match="track_timeout_s"):
        TrackerConfig(track_timeout_s=0.0)
    with pytest.raises(ValueError, match="refine_iterations must be a int"):
        EstimatorConfig(refine_iterations=2.5)
    with pytest.raises(ValueError, match="mirrored_input must be a bool"):
        EstimatorConfig(mirrored_input=1)
    assert EstimatorConfig(temporal_weight=3).temporal_weight == 3  # an int for a float is fine


def test_bad_values_and_unknown_keys_are_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    max_hands: 0\n")
    with pytest.raises(ValueError, match="max_hands"):
        load_params_file(bad, *CONFIGS)
    typo = tmp_path / "typo.yaml"
    typo.write_text("node:\n  ros__parameters:\n    max_hand: 2\n")
    with pytest.raises(ValueError, match="unknown parameters"):
        load_params_file(typo, *CONFIGS)
    device = tmp_path / "device.yaml"
    device.write_text("/**:\n  ros__parameters:\n    device: gpu\n")
    with pytest.raises(ValueError, match="device"):
        load_params_file(device, *CONFIGS)
