"""config/estimator.yaml is the one home of the defaults: the library agrees with it."""

import dataclasses

import pytest
from helpers import REPO_ROOT

from hand_mesh_ros.pipeline.estimator import EstimatorConfig, load_params_file
from hand_mesh_ros.ros.config import NodeConfig

PARAMS = REPO_ROOT / "config" / "estimator.yaml"


NODE_NAMES = {f.name for f in dataclasses.fields(NodeConfig)}


def test_yaml_defaults_equal_the_library_defaults():
    from_file = load_params_file(PARAMS, ignore=NODE_NAMES)
    assert from_file == EstimatorConfig()
    names = {f.name for f in dataclasses.fields(EstimatorConfig)}
    import yaml

    listed = yaml.safe_load(PARAMS.read_text())["/**"]["ros__parameters"]
    assert set(listed) == names | NODE_NAMES  # every parameter documented in the file, none extra
    assert not names & NODE_NAMES
    node_values = {k: v for k, v in listed.items() if k in NODE_NAMES}
    assert NodeConfig(**node_values) == NodeConfig()  # the node's own defaults agree too


def test_node_options_are_unknown_to_the_estimator_unless_ignored():
    with pytest.raises(ValueError, match="auto_start"):
        load_params_file(PARAMS)


def test_bad_values_and_unknown_keys_are_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    max_hands: 0\n")
    with pytest.raises(ValueError, match="max_hands"):
        load_params_file(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("node:\n  ros__parameters:\n    max_hand: 2\n")
    with pytest.raises(ValueError, match="unknown estimator parameters"):
        load_params_file(typo)
    device = tmp_path / "device.yaml"
    device.write_text("/**:\n  ros__parameters:\n    device: gpu\n")
    with pytest.raises(ValueError, match="device"):
        load_params_file(device)
