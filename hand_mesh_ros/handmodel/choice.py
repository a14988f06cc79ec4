"""Which hand model the pipeline runs: the ``hand_model`` setting turned into side models.

``hand_model`` is ``"open"`` (the bundled open hand model; its left hand is the exact mirror
image of the right, so left hands are fitted as mirrored right hands) or the user's MANO:

- a ``MANO_RIGHT.pkl`` (any case, any folder) with ``MANO_LEFT.pkl`` beside it (the file
  name with RIGHT -> LEFT, same case), or the left file with the right one beside it;
- a folder holding both (file names matched case-insensitively).

MANO's left model is its own file, not a mirror of the right (the release's left shape
directions differ from the mirrored right ones), so with MANO each side is fitted with its own
model (``HandModels.mirrored_left`` is False). MANO models are loaded with
``flat_hand_mean=True``: a ``HandEstimate``'s pose is the full axis-angle applied by skinning
(what the pose prior constrains), i.e. smplx's ``MANO(use_pca=False, flat_hand_mean=True)``;
subtract the file's ``hands_mean`` for MANO's default convention.

Every failure is a ``HandModelError`` (a ValueError) whose message names the file and what is
wrong: missing file or folder, missing left (or right) file, not a MANO pickle, wrong side.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hand_mesh_ros.topology import SIDES

LOG = logging.getLogger(__name__)
OPEN = "open"
MANO_FILES = {"right": "mano_right.pkl", "left": "mano_left.pkl"}  # lower-case names in a folder


class HandModelError(ValueError):
    """The ``hand_model`` setting names something that is not a usable MANO pair."""


@dataclass(frozen=True)
class HandModelChoice:
    """The resolved setting: ``files`` is {} for the open model, else {side: Path}."""

    setting: str
    files: dict

    @property
    def is_open(self) -> bool:
        return not self.files

    @property
    def label(self) -> str:
        """Short name for messages: "open" or the right file's name."""
        return OPEN if self.is_open else self.files["right"].name


def _swap_side(name: str, side: str) -> str:
    """``name`` with its side word replaced by the other side's, case kept (RIGHT -> LEFT)."""
    other = "left" if side == "right" else "right"
    lower = name.lower()
    start = lower.index(side)
    word = name[start : start + len(side)]
    if word.isupper():
        swapped = other.upper()
    else:
        swapped = other.capitalize() if word[0].isupper() else other
    return name[:start] + swapped + name[start + len(side) :]


def _pair_beside(path: Path) -> dict:
    from hand_mesh_ros.handmodel.mano_loader import side_from_file_name

    side = side_from_file_name(path)
    if side is None:
        raise HandModelError(
            f"hand_model {path}: the file name says neither RIGHT nor LEFT; name it "
            "MANO_RIGHT.pkl with MANO_LEFT.pkl beside it, or give the folder holding both"
        )
    other_side = "left" if side == "right" else "right"
    other = path.with_name(_swap_side(path.name, side))
    if not other.is_file():
        raise HandModelError(
            f"hand_model {path}: MANO's {other_side} hand file {other} is missing (both sides "
            f"are needed: the {other_side} model is its own file, not a mirror)"
        )
    return {side: path, other_side: other}


def _pair_in_folder(folder: Path) -> dict:
    by_name = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    files, missing = {}, []
    for side, name in MANO_FILES.items():
        if name in by_name:
            files[side] = by_name[name]
        else:
            missing.append(name.upper().replace(".PKL", ".pkl"))
    if missing:
        raise HandModelError(f"hand_model {folder}: folder lacks {' and '.join(missing)}")
    return files


def resolve_hand_model(setting: str) -> HandModelChoice:
    """The ``hand_model`` setting -> the right and left MANO files (checked to exist), or the
    open model. HandModelError names the path and what is missing."""
    if setting == OPEN:
        return HandModelChoice(setting, {})
    if not setting:
        raise HandModelError("hand_model is empty: use 'open' or the path of MANO_RIGHT.pkl")
    path = Path(setting).expanduser()
    if path.is_dir():
        files = _pair_in_folder(path)
    elif path.is_file():
        files = _pair_beside(path)
    else:
        raise HandModelError(f"hand_model {path}: no such file or folder")
    return HandModelChoice(setting, {side: files[side] for side in SIDES})


def _load_mano_side(path: Path, side: str, device):
    """One MANO file as the pipeline's ``HandModel`` of ``side``; HandModelError otherwise."""
    import pickle

    from hand_mesh_ros.handmodel.mano_loader import (
        infer_side_from_geometry,
        load_mano_pickle,
        rest_keypoints_from_arrays,
    )
    from hand_mesh_ros.handmodel.model import HandModel

    try:
        data = load_mano_pickle(path, side=side)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as error:
        reason = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        raise HandModelError(f"hand_model {path}: not a MANO pickle: {reason}") from error
    except OSError as error:
        raise HandModelError(f"hand_model {path}: cannot read: {error}") from error
    if data.num_vertices != 778:
        raise HandModelError(f"hand_model {path}: {data.num_vertices} vertices, MANO has 778")
    rest = rest_keypoints_from_arrays(data.v_template, data.j_regressor, data.fingertip_vertex_ids)
    try:
        geometric = infer_side_from_geometry(rest)
    except ValueError as error:
        raise HandModelError(f"hand_model {path}: {error}") from error
    if geometric != side:
        raise HandModelError(
            f"hand_model {path}: wrong side: the file is used as the {side} hand but its "
            f"geometry is a {geometric} hand"
        )
    if not np.isfinite(data.v_template).all():
        raise HandModelError(f"hand_model {path}: non-finite vertices")
    return HandModel(data, flat_hand_mean=True).to(device)


@dataclass(frozen=True, eq=False)
class HandModels:
    """The side models the pipeline fits with.

    models: {"right": HandModel} for the open model (``mirrored_left``: left hands are fitted
        as mirrored right hands, exact for a mirrored model), or {"right", "left"} for MANO.
    name: ``HandModel.name`` of the models ("open_hand", "mano"); label: for messages.
    """

    models: dict
    choice: HandModelChoice

    @property
    def mirrored_left(self) -> bool:
        return "left" not in self.models

    @property
    def right(self):
        return self.models["right"]

    @property
    def name(self) -> str:
        return self.right.name

    def fitting_model(self, side: str):
        """The model a hand of ``side`` is fitted with (the right one when mirrored)."""
        return self.right if self.mirrored_left else self.models[side]


def load_hand_models(setting: str, *, device=None) -> HandModels:
    """The resolved and loaded side models for a ``hand_model`` setting (HandModelError for a
    bad MANO path or file)."""
    from hand_mesh_ros.handmodel.model import load_hand_model

    choice = resolve_hand_model(setting)
    if choice.is_open:
        return HandModels({"right": load_hand_model("right", device=device)}, choice)
    start = time.perf_counter()
    models = {side: _load_mano_side(choice.files[side], side, device) for side in SIDES}
    LOG.info(
        "hand_model %s: loaded MANO right %s and left %s in %.2f s", choice.label,
        choice.files["right"], choice.files["left"], time.perf_counter() - start,
    )
    return HandModels(models, choice)


__all__ = [
    "HandModelChoice",
    "HandModelError",
    "HandModels",
    "load_hand_models",
    "resolve_hand_model",
]
