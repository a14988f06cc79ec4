"""Reading aligned depth images: files (``read_depth``) and raw arrays (``depth_to_metres``).

Every depth leaves this module as an (H, W) float32 array in metres, C-contiguous, aligned
pixel for pixel to its colour image, with 0 = no data (holes, and NaN or +-inf in the input,
become 0). The rules:

- 16-bit PNG, single channel (uint16, as RealSense, ZED, Orbbec and OAK-D drivers write
  it): metres = units x ``scale`` (metres per unit; ``DEFAULT_DEPTH_SCALE`` = 0.001, i.e.
  millimetres); 0 = no data.
- ``.npy`` (``numpy.save``): float32 or float64 in metres (``scale`` does not apply: a float
  depth is metric already); NaN, +-inf and 0 = no data. A uint16 ``.npy`` reads like the PNG.
- Refused, with ``DepthError`` naming the file and the problem: a missing, empty or
  undecodable file, another extension, an 8-bit or colour PNG, an array that is not
  (H, W), another dtype, negative depths, a non-finite or non-positive scale, a size other
  than the colour image's when ``shape`` is given (read from the header, before decoding),
  and the size limits of ``imageio.check_size``.

``depth_path_for`` holds the folder rule of the command line: a colour image's depth is
``<folder>/<stem>.png`` or ``<folder>/<stem>.npy``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from hand_mesh_ros.imageio import (
    HEADER_BYTES,
    PNG_MAGIC,
    ImageError,
    check_size,
    image_file_size,
)

DEFAULT_DEPTH_SCALE = 0.001  # metres per unit of integer (uint16) depth: millimetres
DEPTH_EXTENSIONS: tuple[str, ...] = (".png", ".npy")
_FLOAT_DTYPES = (np.float32, np.float64)


class DepthError(ValueError):
    """A depth image that cannot be used: ``what`` (the file or array) and ``reason``; the
    message is ``"<what>: <reason>"``."""

    def __init__(self, what: str | Path, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what, self.reason = str(what), reason


def check_depth_scale(scale: float) -> float:
    """``scale`` (metres per unit) as a float; DepthError unless finite and > 0."""
    value = float(scale)
    if not math.isfinite(value) or value <= 0.0:
        raise DepthError("depth scale", f"must be finite and > 0 metres per unit, got {scale}")
    return value


def depth_to_metres(
    array: np.ndarray, *, what: str, scale: float = DEFAULT_DEPTH_SCALE
) -> np.ndarray:
    """An (H, W) uint16 (units of ``scale`` metres) or float32/float64 (metres) depth array
    -> (H, W) float32 metres, 0 = no data. DepthError (naming ``what``) for any other
    shape or dtype, or negative depths."""
    scale = check_depth_scale(scale)
    array = np.asarray(array)
    if array.ndim != 2:
        raise DepthError(what, f"shape {array.shape}, a depth image must be (H, W)")
    if array.dtype == np.uint16:
        return np.ascontiguousarray(array.astype(np.float32) * np.float32(scale))
    if array.dtype not in _FLOAT_DTYPES:
        raise DepthError(
            what,
            f"dtype {array.dtype}, a depth image must be uint16 (units of {scale} m) or "
            "float32 (metres)",
        )
    finite = np.isfinite(array)
    negative = finite & (array < 0)
    if negative.any():
        raise DepthError(
            what,
            f"{int(negative.sum())} negative depth values (min {float(array[finite].min()):.4g}"
            " m); depth must be >= 0 metres (0, NaN or inf = no data)",
        )
    return np.ascontiguousarray(np.where(finite, array, 0.0).astype(np.float32))


def read_depth(
    path: str | Path,
    *,
    scale: float = DEFAULT_DEPTH_SCALE,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read a depth file (rules in the module docstring) as (H, W) float32 metres.

    scale: metres per unit of a uint16 depth; shape: the colour image's (H, W) -- a depth of
    another size is refused."""
    path = Path(path)
    scale = check_depth_scale(scale)
    if not path.exists():
        raise DepthError(path, "no such file")
    if not path.is_file():
        raise DepthError(path, "not a file")
    suffix = path.suffix.lower()
    if suffix not in DEPTH_EXTENSIONS:
        raise DepthError(
            path,
            f"unsupported depth file type {suffix or '(none)'!r} (use a 16-bit .png or a "
            "float32 .npy)",
        )
    if path.stat().st_size == 0:
        raise DepthError(path, "empty file (0 bytes)")
    array = _load_png(path, shape) if suffix == ".png" else _load_npy(path, shape)
    return depth_to_metres(array, what=str(path), scale=scale)


def depth_path_for(folder: str | Path, stem: str) -> Path:
    """The depth file of the colour image named ``stem`` in ``folder``: ``<stem>.png`` or
    ``<stem>.npy``; DepthError when neither or both exist."""
    folder = Path(folder)
    found = [p for p in (folder / f"{stem}{ext}" for ext in DEPTH_EXTENSIONS) if p.exists()]
    if not found:
        raise DepthError(f"{folder / stem}.png", f"no such file (nor {stem}.npy)")
    if len(found) > 1:
        raise DepthError(found[0], f"both {stem}.png and {stem}.npy exist (keep one)")
    return found[0]


def _check_shape(path: Path, height: int, width: int, shape: tuple[int, int] | None) -> None:
    """Size limits, and the colour image's size when ``shape`` (H, W) is given."""
    try:
        check_size(width, height, what=str(path))
    except ImageError as exc:
        raise DepthError(path, str(exc).removeprefix(f"{path}: ")) from exc
    if shape is not None and (height, width) != tuple(shape):
        raise DepthError(
            path,
            f"depth is {width}x{height} pixels but the image is {shape[1]}x{shape[0]} (depth "
            "must be aligned to the colour image, the same size)",
        )


def _load_png(path: Path, shape: tuple[int, int] | None) -> np.ndarray:
    """The PNG's pixels as stored (uint16 (H, W) expected), size checked from the header."""
    with path.open("rb") as f:
        head = f.read(HEADER_BYTES)
    size = image_file_size(head) if head.startswith(PNG_MAGIC) else None
    if size is None:
        raise DepthError(path, "not a PNG file (no PNG header)")
    _check_shape(path, size[1], size[0], shape)
    try:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise DepthError(path, f"OpenCV could not decode it ({exc})") from exc
    if image is None:
        raise DepthError(path, "not a readable PNG (OpenCV could not decode it)")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels != 1 or image.dtype != np.uint16:
        bits = 8 * image.dtype.itemsize
        kind = "single-channel" if channels == 1 else f"{channels}-channel (colour)"
        raise DepthError(path, f"{bits}-bit {kind} PNG; a depth PNG must be 16-bit single-channel")
    return image


def _load_npy(path: Path, shape: tuple[int, int] | None) -> np.ndarray:
    """The .npy array (memory-mapped: shape and dtype are checked before it is read)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DepthError(path, f"not a readable .npy array ({exc})") from exc
    if not isinstance(array, np.ndarray):
        if hasattr(array, "close"):
            array.close()  # an .npz archive
        raise DepthError(path, f"not a single .npy array ({type(array).__name__})")
    if array.ndim != 2:
        raise DepthError(path, f"shape {array.shape}, a depth image must be (H, W)")
    _check_shape(path, array.shape[0], array.shape[1], shape)
    return np.array(array)
