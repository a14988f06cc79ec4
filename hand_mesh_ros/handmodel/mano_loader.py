"""Load the official MANO v1.2 pickles (``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``) without chumpy.

The release files are Python-2 pickles that hold numpy arrays, one ``scipy.sparse.csc_matrix``
(the joint regressor) and chumpy objects (``shapedirs`` among others). chumpy is not installed
here, and a pickle can run arbitrary code, so the file is read with a restricted unpickler:

- numpy arrays/dtypes/scalars, scipy's csc/csr/coo matrices, ``set``/``frozenset``,
  ``copy_reg._reconstructor`` (protocol-0/1 pickles of new-style objects) and
  ``_codecs.encode`` (bytes in a pickle re-saved by Python 3) are allowed;
- any ``chumpy.*`` class is replaced by an inert stand-in that only stores the state dict it is
  given. chumpy pickles ``Ch.__dict__`` minus its caches; a plain ``Ch`` keeps its value under
  the key ``'x'``; derived nodes keep their operands (``'a'``, ``'b'``, ``'x1'`` ...) and are
  evaluated here for the few operations listed in ``_CHUMPY_OPS``;
- every other global (e.g. ``os.system``) raises ``pickle.UnpicklingError``.

MANO keys used (official release): 'v_template' (778, 3), 'f' (1538, 3) uint32, 'weights'
(778, 16), 'J_regressor' sparse (16, 778), 'shapedirs' (778, 3, 10), 'posedirs' (778, 3, 135),
'kintree_table' (2, 16) (row 0 = parent ids, the root's parent is 2**32 - 1), 'hands_components'
(45, 45), 'hands_mean' (45,). 'bs_type' must be 'lrotmin' and 'bs_style' 'lbs' when present.

Side: from the file name ("left"/"right", case-insensitive), else from the geometry
(``infer_side_from_geometry``), unless given explicitly.
"""

from __future__ import annotations

import codecs
import copyreg
import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from hand_mesh_ros.handmodel.data import HandModelData
from hand_mesh_ros.topology import (
    JOINT_PARENTS,
    KEYPOINT_FROM_JOINT,
    NUM_JOINTS,
    NUM_KEYPOINTS,
    SIDES,
    TIP_KEYPOINTS,
)

# Fingertip vertex ids of MANO's 778-vertex mesh, in order thumb, index, middle, ring, little
# (the ids used by the FreiHAND / MANO tooling).
MANO_FINGERTIP_VERTEX_IDS: tuple[int, ...] = (744, 320, 443, 554, 671)
MANO_NAME = "mano"
# kintree_table marks the root's parent with the largest uint32.
KINTREE_NO_PARENT = 2**32 - 1
REQUIRED_KEYS: tuple[str, ...] = (
    "v_template",
    "f",
    "weights",
    "J_regressor",
    "shapedirs",
    "posedirs",
    "kintree_table",
    "hands_components",
    "hands_mean",
)
EXPECTED_BS_TYPE = "lrotmin"
EXPECTED_BS_STYLE = "lbs"
# Geometric side inference gives up below this |thumb offset| / palm size ratio.
MIN_SIDE_CONFIDENCE = 0.02


class ChumpyStandIn:
    """Inert replacement for a pickled chumpy node; ``state`` is chumpy's ``__dict__``."""

    chumpy_module = "chumpy"
    chumpy_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> ChumpyStandIn:
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"chumpy.{self.chumpy_name}: expected a state dict, got {type(state).__name__}"
            )
        self.state = state

    @property
    def qualified_name(self) -> str:
        return f"{self.chumpy_module}.{self.chumpy_name}"


_STAND_INS: dict[tuple[str, str], type[ChumpyStandIn]] = {}


def _stand_in_class(module: str, name: str) -> type[ChumpyStandIn]:
    key = (module, name)
    if key not in _STAND_INS:
        attrs = {"chumpy_module": module, "chumpy_name": name}
        _STAND_INS[key] = type(f"ChumpyStandIn_{name}", (ChumpyStandIn,), attrs)
    return _STAND_INS[key]


def _numpy_global(name: str) -> Any:
    """numpy's pickle helpers live in numpy._core (numpy >= 2) or numpy.core (numpy 1.x)."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no pickle helper {name!r}")


_SPARSE_CLASSES = ("csc_matrix", "csr_matrix", "coo_matrix")
_NUMPY_HELPER_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_HELPERS = ("_reconstruct", "scalar")
_PLAIN_GLOBALS: dict[tuple[str, str], Any] = {
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    # Python 3 writes bytes into protocol-0..2 pickles as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): codecs.encode,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "frozenset"): frozenset,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a MANO pickle needs (see module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN_GLOBALS:
            return _PLAIN_GLOBALS[(module, name)]
        if module in _NUMPY_HELPER_MODULES and name in _NUMPY_HELPERS:
            return _numpy_global(name)
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and (
            name in _SPARSE_CLASSES
        ):
            return getattr(scipy.sparse, name)
        if module == "chumpy" or module.startswith("chumpy."):
            return _stand_in_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name} from a MANO pickle: only numpy, "
            "scipy.sparse and chumpy data classes are allowed"
        )


def _operand(state: dict, key: str, owner: ChumpyStandIn) -> np.ndarray:
    if key not in state:
        raise ValueError(f"{owner.qualified_name} node has no operand {key!r}")
    return to_array(state[key])


def _select(node: ChumpyStandIn) -> np.ndarray:
    s = node.state
    result = _operand(s, "a", node).ravel()[np.asarray(s["idxs"])].copy()
    return result.reshape(s["preferred_shape"]) if "preferred_shape" in s else result


# chumpy node class name -> its value from the node (chumpy's compute_r for these classes).
_CHUMPY_OPS = {
    "Ch": lambda n: _operand(n.state, "x", n),
    "Select": _select,
    "Reshape": lambda n: _operand(n.state, "a", n).reshape(n.state["newshape"]),
    "transpose": lambda n: np.transpose(_operand(n.state, "a", n), n.state.get("axes")),
    "add": lambda n: _operand(n.state, "a", n) + _operand(n.state, "b", n),
    "subtract": lambda n: _operand(n.state, "a", n) - _operand(n.state, "b", n),
    "multiply": lambda n: _operand(n.state, "a", n) * _operand(n.state, "b", n),
    "divide": lambda n: _operand(n.state, "x1", n) / _operand(n.state, "x2", n),
    "negative": lambda n: -_operand(n.state, "x", n),
    "dot": lambda n: _operand(n.state, "a", n).dot(_operand(n.state, "b", n)),
}


def _sparse_to_dense(matrix: Any) -> np.ndarray:
    """Dense copy of an unpickled scipy sparse matrix, also for old scipy's attribute layout."""
    try:
        return np.asarray(matrix.toarray())
    except (AttributeError, KeyError, TypeError, ValueError):  # old scipy attribute layout
        fields = vars(matrix)
        shape = tuple(fields.get("_shape", fields.get("shape")))
        if "indptr" in fields:
            parts = (fields["data"], fields["indices"], fields["indptr"])
            rebuilt = type(matrix)(parts, shape=shape)
        else:
            rebuilt = scipy.sparse.coo_matrix(
                (fields["data"], (fields["row"], fields["col"])), shape=shape
            )
        return np.asarray(rebuilt.toarray())


def to_array(value: Any) -> np.ndarray:
    """numpy array, sparse matrix or chumpy stand-in -> dense numpy array (evaluates chumpy)."""
    if isinstance(value, ChumpyStandIn):
        op = _CHUMPY_OPS.get(value.chumpy_name)
        if op is None:
            raise ValueError(
                f"cannot evaluate chumpy node {value.qualified_name} without chumpy; supported: "
                f"{', '.join(sorted(_CHUMPY_OPS))}"
            )
        return np.asarray(op(value))
    if scipy.sparse.issparse(value):
        return _sparse_to_dense(value)
    return np.asarray(value)


def read_mano_pickle(path: str | Path) -> dict[str, Any]:
    """The raw dict of a MANO pickle, read safely; chumpy nodes stay ``ChumpyStandIn``s."""
    with open(path, "rb") as handle:
        content = RestrictedUnpickler(handle, encoding="latin1").load()
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a dict of model arrays, got {type(content).__name__}")
    return content


def _parents_from_kintree(kintree: np.ndarray, path: str | Path) -> np.ndarray:
    """(2, J) kintree_table (parent ids, joint ids) -> (J,) int64 parent index, -1 for root."""
    if kintree.shape != (2, NUM_JOINTS):
        raise ValueError(f"{path}: kintree_table has shape {kintree.shape}, expected (2, 16)")
    table = kintree.astype(np.int64)
    column_of_id = {int(joint_id): col for col, joint_id in enumerate(table[1])}
    parents = np.array(
        [-1 if p in (KINTREE_NO_PARENT, -1) else column_of_id.get(int(p), -2) for p in table[0]],
        dtype=np.int64,
    )
    if tuple(int(p) for p in parents) != JOINT_PARENTS:
        raise ValueError(
            f"{path}: kinematic tree {parents.tolist()} differs from MANO's {list(JOINT_PARENTS)}"
        )
    return parents


def rest_keypoints_from_arrays(
    v_template: np.ndarray, j_regressor: np.ndarray, fingertip_vertex_ids: np.ndarray
) -> np.ndarray:
    """(21, 3) rest keypoints: regressed joints plus fingertip vertices, topology order."""
    joints = j_regressor @ v_template
    keypoints = np.zeros((NUM_KEYPOINTS, 3))
    for k, joint in enumerate(KEYPOINT_FROM_JOINT):
        if joint >= 0:
            keypoints[k] = joints[joint]
    keypoints[list(TIP_KEYPOINTS)] = v_template[np.asarray(fingertip_vertex_ids)]
    return keypoints


def infer_side_from_geometry(rest_keypoints: np.ndarray) -> str:
    """Guess "right"/"left" from a flat rest skeleton (21, 3), in any rotated frame.

    n = (index MCP - wrist) x (little MCP - wrist) points out of the palm (volar) for a right
    hand and out of the back for a left hand (a mirror flips the cross product). The thumb's
    MCP, IP and tip lie on the palm side of that plane (the thumb metacarpal sits in front of
    the others), so their mean offset along n is positive for a right hand.
    Raises ValueError when the offset is too small to tell.
    """
    kp = np.asarray(rest_keypoints, dtype=np.float64)
    wrist, index_mcp, little_mcp = kp[0], kp[5], kp[17]
    normal = np.cross(index_mcp - wrist, little_mcp - wrist)
    normal /= np.linalg.norm(normal)
    thumb = kp[[2, 3, 4]].mean(axis=0)
    palm_size = np.linalg.norm(kp[9] - wrist)
    score = float(np.dot(thumb - wrist, normal)) / palm_size
    if abs(score) < MIN_SIDE_CONFIDENCE:
        raise ValueError(f"cannot tell the hand's side from its geometry (score {score:.3g})")
    return "right" if score > 0 else "left"


def side_from_file_name(path: str | Path) -> str | None:
    """ "right"/"left" if exactly one of them occurs in the file name (any case), else None."""
    name = Path(path).name.lower()
    found = [side for side in SIDES if side in name]
    return found[0] if len(found) == 1 else None


def _check_blend_types(content: dict, path: str | Path) -> None:
    for key, expected in (("bs_type", EXPECTED_BS_TYPE), ("bs_style", EXPECTED_BS_STYLE)):
        if key in content and str(content[key]) != expected:
            raise ValueError(f"{path}: {key} is {content[key]!r}, only {expected!r} is supported")


def load_mano_pickle(path: str | Path, *, side: str | None = None) -> HandModelData:
    """Read an official MANO v1.2 pickle into ``HandModelData`` (name "mano"), no chumpy needed.

    Args:
        path: ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (or a renamed copy).
        side: "right"/"left" to override; None -> from the file name, else from the geometry.
    Returns:
        HandModelData in MANO's canonical frame, metres, float64 arrays; faces int64.
    Raises:
        pickle.UnpicklingError: the pickle references a class outside the allow-list.
        KeyError: a required key is missing (the message names it).
        ValueError: bad shapes, unsupported blend type, undecidable side.
    """
    content = read_mano_pickle(path)
    missing = [key for key in REQUIRED_KEYS if key not in content]
    if missing:
        raise KeyError(f"{path}: MANO pickle lacks required key(s) {', '.join(missing)}")
    _check_blend_types(content, path)
    arrays = {key: to_array(content[key]) for key in REQUIRED_KEYS}
    v_template = arrays["v_template"].astype(np.float64)
    tips = np.asarray(MANO_FINGERTIP_VERTEX_IDS, dtype=np.int64)
    if v_template.shape[0] <= tips.max():
        raise ValueError(f"{path}: {v_template.shape[0]} vertices, too few for MANO fingertip ids")
    j_regressor = arrays["J_regressor"].astype(np.float64)
    if side is None:
        side = side_from_file_name(path)
    if side is None:
        side = infer_side_from_geometry(rest_keypoints_from_arrays(v_template, j_regressor, tips))
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    return HandModelData(
        v_template=v_template,
        faces=arrays["f"].astype(np.int64),
        shapedirs=arrays["shapedirs"].astype(np.float64),
        posedirs=arrays["posedirs"].astype(np.float64),
        j_regressor=j_regressor,
        skinning_weights=arrays["weights"].astype(np.float64),
        parents=_parents_from_kintree(arrays["kintree_table"], path),
        fingertip_vertex_ids=tips,
        hands_mean=arrays["hands_mean"].astype(np.float64).reshape(-1),
        hands_components=arrays["hands_components"].astype(np.float64),
        side=side,
        name=MANO_NAME,
    )
