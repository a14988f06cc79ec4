"""MANO pickle loading without chumpy, on synthetic pickles with MANO's exact structure.

The pickles are written here with a stand-in class that pickles as ``chumpy.ch.Ch`` (a fake
``chumpy.ch`` module exists only while writing), old scipy's module path for the regressor,
uint32 faces, float64 arrays and an int64 kintree_table whose root parent is 2**32 - 1.
The geometry is a small synthetic right hand with MANO's 778 vertices / 1538 faces, so the
MANO fingertip vertex ids are valid.
"""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch
from helpers import assert_close
from synthetic_mano import NUM_VERTS, synthetic_keypoints, synthetic_mano_arrays

from hand_mesh_ros.handmodel.mano_loader import (
    ChumpyStandIn,
    infer_side_from_geometry,
    load_mano_pickle,
    read_mano_pickle,
    rest_keypoints_from_arrays,
    side_from_file_name,
    to_array,
)
from hand_mesh_ros.topology import JOINT_PARENTS


class FakeCh:
    """Pickles like a plain chumpy ``Ch``: its __dict__ minus caches, value under 'x'."""

    def __init__(self, **state):
        self.__dict__.update(state)

    def __getstate__(self):
        return dict(self.__dict__)


_FAKE_CLASSES: dict[tuple[str, str], type] = {}


def fake_chumpy_node(name: str, module: str = "chumpy.ch", **terms) -> FakeCh:
    """A node pickling as ``module.name`` with chumpy's bookkeeping entries in its state."""
    key = (module, name)
    if key not in _FAKE_CLASSES:
        _FAKE_CLASSES[key] = type(name, (FakeCh,), {"__module__": module, "__qualname__": name})
    return _FAKE_CLASSES[key](
        _dirty_vars=set(), _itr=None, _depends_on_deps={}, _make_dense=False,
        _make_sparse=False, **terms,
    )


def write_pickle(path: Path, content: dict, monkeypatch, protocol: int = 2) -> Path:
    """Pickle with fake chumpy modules present only during writing."""
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
        for obj in _all_nodes([v for v in content.values() if isinstance(v, FakeCh)]):
            module_name = type(obj).__module__
            module = sys.modules.get(module_name) or types.ModuleType(module_name)
            setattr(module, type(obj).__name__, type(obj))
            patch.setitem(sys.modules, module_name, module)
        data = pickle.dumps(content, protocol=protocol)
    assert "chumpy.ch" not in sys.modules and "chumpy" not in sys.modules
    # Old scipy (as used to write the MANO release) kept csc_matrix in scipy.sparse.csc.
    data = data.replace(b"scipy.sparse._csc\ncsc_matrix", b"scipy.sparse.csc\ncsc_matrix")
    path.write_bytes(data)
    return path


def _all_nodes(nodes):
    todo, seen = list(nodes), []
    while todo:
        node = todo.pop()
        seen.append(node)
        todo += [v for v in vars(node).values() if isinstance(v, FakeCh)]
    return seen


def write_mano(path: Path, arrays: dict, monkeypatch, protocol: int = 2) -> Path:
    content = dict(arrays)
    content["shapedirs"] = fake_chumpy_node("Ch", x=arrays["shapedirs"])
    return write_pickle(path, content, monkeypatch, protocol)


@pytest.fixture(scope="module")
def arrays():
    return synthetic_mano_arrays()


@pytest.mark.parametrize("protocol", [0, 2])
def test_arrays_round_trip_exactly(tmp_path, arrays, monkeypatch, protocol):
    path = write_mano(tmp_path / "MANO_RIGHT.pkl", arrays, monkeypatch, protocol)
    assert b"chumpy.ch" in path.read_bytes() and b"scipy.sparse.csc\n" in path.read_bytes()
    data = load_mano_pickle(path)
    assert data.name == "mano" and data.side == "right"
    np.testing.assert_array_equal(data.v_template, arrays["v_template"])
    np.testing.assert_array_equal(data.faces, arrays["f"].astype(np.int64))
    assert data.faces.dtype == np.int64 and data.v_template.dtype == np.float64
    np.testing.assert_array_equal(data.shapedirs, arrays["shapedirs"])
    np.testing.assert_array_equal(data.posedirs, arrays["posedirs"])
    np.testing.assert_array_equal(data.j_regressor, arrays["J_regressor"].toarray())
    np.testing.assert_array_equal(data.skinning_weights, arrays["weights"])
    np.testing.assert_array_equal(data.hands_components, arrays["hands_components"])
    np.testing.assert_array_equal(data.hands_mean, arrays["hands_mean"])
    assert tuple(data.parents.tolist()) == JOINT_PARENTS
    assert tuple(data.fingertip_vertex_ids.tolist()) == (744, 320, 443, 554, 671)


def test_raw_dict_keeps_chumpy_stand_in(tmp_path, arrays, monkeypatch):
    content = read_mano_pickle(write_mano(tmp_path / "m.pkl", arrays, monkeypatch))
    node = content["shapedirs"]
    assert isinstance(node, ChumpyStandIn) and node.qualified_name == "chumpy.ch.Ch"
    assert node.state["_make_dense"] is False and node.state["_dirty_vars"] == set()
    assert content["bs_type"] == "lrotmin" and content["f"].dtype == np.uint32


def test_derived_chumpy_nodes_are_evaluated(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    ch_a, ch_b = fake_chumpy_node("Ch", x=a), fake_chumpy_node("Ch", x=b)
    idxs = np.array([3, 0, 7, 11, 2, 5])
    content = {
        "sum": fake_chumpy_node("add", "chumpy.ch_ops", a=ch_a, b=ch_b),
        "diff": fake_chumpy_node("subtract", "chumpy.ch_ops", a=ch_a, b=ch_b),
        "sel": fake_chumpy_node("Select", "chumpy.reordering", a=ch_a, idxs=idxs,
                                preferred_shape=(2, 3)),
        "resh": fake_chumpy_node("Reshape", "chumpy.reordering", a=ch_b, newshape=(6, 4)),
        "tr": fake_chumpy_node("transpose", "chumpy.reordering", a=ch_a, axes=None),
        "odd": fake_chumpy_node("SvdD", "chumpy.linalg", x=ch_a),
    }
    loaded = read_mano_pickle(write_pickle(tmp_path / "ops.pkl", content, monkeypatch))
    np.testing.assert_array_equal(to_array(loaded["sum"]), a + b)
    np.testing.assert_array_equal(to_array(loaded["diff"]), a - b)
    np.testing.assert_array_equal(to_array(loaded["sel"]), a.ravel()[idxs].reshape(2, 3))
    np.testing.assert_array_equal(to_array(loaded["resh"]), b.reshape(6, 4))
    np.testing.assert_array_equal(to_array(loaded["tr"]), a.T)
    with pytest.raises(ValueError, match="chumpy.linalg.SvdD"):
        to_array(loaded["odd"])


class _Exploit:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_forbidden_global_is_rejected_without_running(tmp_path, arrays, monkeypatch):
    flag = tmp_path / "pwned"
    content = dict(arrays, hands_coeffs=_Exploit(f"touch {flag}"))
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_mano_pickle(path)
    assert not flag.exists()


def test_missing_key_is_named(tmp_path, arrays, monkeypatch):
    content = {k: v for k, v in arrays.items() if k != "posedirs"}
    path = write_mano(tmp_path / "MANO_RIGHT.pkl", content, monkeypatch)
    with pytest.raises(KeyError, match="posedirs"):
        load_mano_pickle(path)


def test_unsupported_blend_style_rejected(tmp_path, arrays, monkeypatch):
    path = write_mano(tmp_path / "MANO_RIGHT.pkl", dict(arrays, bs_style="dqs"), monkeypatch)
    with pytest.raises(ValueError, match="bs_style"):
        load_mano_pickle(path)


def _mirrored(arrays: dict) -> dict:
    reflect = np.array([-1.0, 1.0, 1.0])
    return dict(arrays, v_template=arrays["v_template"] * reflect,
                hands_mean=(arrays["hands_mean"].reshape(15, 3) * [1, -1, -1]).reshape(45))


def _rotated(arrays: dict, seed: int) -> dict:
    q = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))[0]
    rot = q * np.sign(np.linalg.det(q))  # proper rotation
    return dict(arrays, v_template=arrays["v_template"] @ rot.T)


def test_side_from_file_name():
    assert side_from_file_name("/x/MANO_RIGHT.pkl") == "right"
    assert side_from_file_name("mano_Left.pkl") == "left"
    assert side_from_file_name("hand.pkl") is None
    assert side_from_file_name("left_or_right.pkl") is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_side_from_geometry_when_name_is_silent(tmp_path, arrays, monkeypatch, seed):
    right = _rotated(arrays, seed)
    left = _rotated(_mirrored(arrays), seed)
    assert load_mano_pickle(write_mano(tmp_path / "r.pkl", right, monkeypatch)).side == "right"
    assert load_mano_pickle(write_mano(tmp_path / "l.pkl", left, monkeypatch)).side == "left"
    # The file name wins over the geometry, and an explicit side over both.
    named = write_mano(tmp_path / "MANO_LEFT.pkl", right, monkeypatch)
    assert load_mano_pickle(named).side == "left"
    assert load_mano_pickle(named, side="right").side == "right"


def test_geometry_side_on_the_open_model():
    from hand_mesh_ros.handmodel.data import HandModelData
    from hand_mesh_ros.handmodel.mirror import mirror_to_left
    from hand_mesh_ros.handmodel.model import OPEN_HAND_ASSET

    if not OPEN_HAND_ASSET.is_file():
        pytest.skip("bundled open hand asset not generated yet")
    data = HandModelData.load_npz(OPEN_HAND_ASSET)
    for model, side in ((data, "right"), (mirror_to_left(data), "left")):
        kp = rest_keypoints_from_arrays(model.v_template, model.j_regressor,
                                        model.fingertip_vertex_ids)
        assert infer_side_from_geometry(kp) == side


def _double_model(path: Path, **kwargs):
    from hand_mesh_ros.handmodel.model import load_hand_model

    return load_hand_model("right", path=path, dtype=torch.float64, **kwargs)


def test_load_hand_model_forward_and_pca(tmp_path, arrays, monkeypatch):
    path = write_mano(tmp_path / "MANO_RIGHT.pkl", arrays, monkeypatch)
    model = _double_model(path)
    assert model.flat_hand_mean is False  # MANO defaults to adding hands_mean
    rest = model.rest_keypoints()[0]
    kp = synthetic_keypoints()
    # HandModel stores float32 buffers before casting to float64: ~1e-8 m rounding.
    assert_close(rest, kp, atol=1e-7, what="rest keypoints = regressor @ template + tips")
    out = model(torch.zeros(2, 45, dtype=torch.float64))
    assert out.vertices.shape == (2, NUM_VERTS, 3) and torch.isfinite(out.vertices).all()
    # The model's own (float32-rounded) copies of the loaded arrays, for an exact comparison.
    comps, mean = model.hands_components, model.hands_mean
    assert_close(comps, arrays["hands_components"], atol=1e-7, what="components")
    coeffs = torch.randn(3, 6, dtype=torch.float64)
    flat_full = _double_model(path, flat_hand_mean=True)
    for flat in (True, False):
        pca = _double_model(path, use_pca=True, num_pca_comps=6, flat_hand_mean=flat)
        full_pose = coeffs @ comps[:6] + (0.0 if flat else mean)
        expected = flat_full(full_pose)
        got = pca(coeffs)
        assert_close(got.vertices, expected.vertices, atol=1e-12, what=f"PCA flat={flat}")
        assert_close(got.keypoints, expected.keypoints, atol=1e-12, what=f"PCA kp flat={flat}")
    # hands_mean really moves the fingers of the non-flat model.
    assert (model(None).keypoints - flat_full(None).keypoints).abs().max() > 1e-3


def test_sparse_regressor_with_old_attribute_layout():
    """A csc_matrix whose pickled state names its shape 'shape' (old scipy) still densifies."""
    dense = np.arange(12.0).reshape(3, 4) * (np.arange(12).reshape(3, 4) % 3 == 0)
    fresh = scipy.sparse.csc_matrix(dense)
    old = object.__new__(scipy.sparse.csc_matrix)
    old.__dict__.update(data=fresh.data, indices=fresh.indices, indptr=fresh.indptr,
                        shape=(3, 4), maxprint=50)
    np.testing.assert_array_equal(to_array(old), dense)
    np.testing.assert_array_equal(to_array(fresh), dense)
