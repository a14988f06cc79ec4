"""Reading the package's weights and checkpoint files: one loader, one set of errors.

Every file this package writes with ``torch.save`` (keypoint-regressor weights, DHPE evidence
weights, training checkpoints) is a dict with a ``"format"`` entry naming its layout and
version, holding only tensors, numbers, strings, lists and dicts, so it is read with
``torch.load(weights_only=True)`` (no arbitrary unpickling) onto the CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch


def load_weights_file(path: str | Path, *, what: str, expected_format: str) -> dict:
    """The dict stored in ``path``, which is meant to be ``what`` (e.g. "keypoint regressor
    weights") in the layout ``expected_format`` (its ``"format"`` entry). Tensors on the CPU.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: it is not a readable torch file, or not a dict whose ``"format"`` is
            ``expected_format``. Each message names the file and what it was meant to be.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types (pickle, zip, EOF) for bad files
        raise ValueError(f"{path} is not a readable torch file ({what}): {error}") from error
    found = data.get("format") if isinstance(data, dict) else type(data).__name__
    if not isinstance(data, dict) or found != expected_format:
        raise ValueError(
            f"{path} is not a {what} file: expected format {expected_format!r}, found {found!r}"
        )
    return data
