"""Reading and validating images: files (``read_image``) and raw ROS-style arrays (``to_rgb8``).

Every image leaves this module as an (H, W, 3) uint8 RGB array, C-contiguous. The rules,
shared by files and raw arrays:

- Channels: grey (H, W) or (H, W, 1) is replicated to three channels; a fourth (alpha)
  channel is dropped, not composited (the colors under transparent pixels are kept as they
  are); files decoded by OpenCV come in BGR(A) order and are reordered to RGB.
- 8-bit: unchanged. 16-bit with 3 or 4 channels (a photo): full scale 65535 -> 255 by
  ``>> 8``, so exposure is kept. 16-bit single channel (mono16 / 16UC1, usually depth or IR
  that uses a small part of the range): stretched so the image's maximum becomes 255
  (0 stays 0), so a depth image is still viewable.
- Float: NaN and +-inf become 0, negatives 0; an image whose maximum is <= 1 is taken as
  [0, 1] and multiplied by 255; any other (e.g. 32FC1 depth in metres) is stretched by its
  maximum like mono16. Other integer types (signed, 32-bit) are stretched like mono16.
- Size: 0 pixels -> "empty"; a side < ``MIN_SIDE`` -> "too small"; more than
  ``MAX_PIXELS`` -> "too large". For PNG and JPEG files the size is read from the header
  before decoding, so a huge file is refused without decoding it.
- JPEG files are decoded with their EXIF orientation applied (as a viewer shows them);
  other formats are decoded unchanged (``cv2.IMREAD_UNCHANGED``: alpha and 16 bits kept).

All failures raise ``ImageError`` (a ``ValueError``) with a message naming the file or
encoding and the reason. Depth images (metres, not colour) are read by ``depthio.py``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

MIN_SIDE = 32  # pixels; smaller images cannot hold a detectable hand
MAX_PIXELS = 50_000_000  # 50 MP; larger inputs are refused (memory, seconds per frame)
HEADER_BYTES = 256 * 1024  # bytes read to find a PNG/JPEG size (JPEG EXIF can be ~64 KB)

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pnm",
)
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...) carry the image size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

# ROS sensor_msgs/image_encodings name -> (channel order, channels, dtype).
# Order "bgr" for the generic nUCc encodings follows OpenCV's convention (cv_bridge does
# not define one); "uyvy" / "yuyv" are packed YUV 4:2:2 stored as (H, W, 2) uint8.
ENCODINGS: dict[str, tuple[str, int, type]] = {
    "rgb8": ("rgb", 3, np.uint8),
    "bgr8": ("bgr", 3, np.uint8),
    "rgba8": ("rgb", 4, np.uint8),
    "bgra8": ("bgr", 4, np.uint8),
    "rgb16": ("rgb", 3, np.uint16),
    "bgr16": ("bgr", 3, np.uint16),
    "rgba16": ("rgb", 4, np.uint16),
    "bgra16": ("bgr", 4, np.uint16),
    "mono8": ("mono", 1, np.uint8),
    "mono16": ("mono", 1, np.uint16),
    "8UC1": ("mono", 1, np.uint8),
    "8UC3": ("bgr", 3, np.uint8),
    "8UC4": ("bgr", 4, np.uint8),
    "16UC1": ("mono", 1, np.uint16),
    "16UC3": ("bgr", 3, np.uint16),
    "16UC4": ("bgr", 4, np.uint16),
    "16SC1": ("mono", 1, np.int16),
    "32SC1": ("mono", 1, np.int32),
    "32FC1": ("mono", 1, np.float32),
    "64FC1": ("mono", 1, np.float64),
    "yuv422": ("uyvy", 2, np.uint8),
    "uyvy": ("uyvy", 2, np.uint8),
    "yuv422_yuy2": ("yuyv", 2, np.uint8),
    "yuyv": ("yuyv", 2, np.uint8),
}
_YUV_TO_RGB = {"uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuyv": cv2.COLOR_YUV2RGB_YUY2}


class ImageError(ValueError):
    """An image that cannot be read or used; the message names the input and the reason."""


def read_image(
    path: str | Path, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (conversion rules in the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if not path.is_file():
        raise ImageError(f"{path}: not a file")
    with path.open("rb") as f:
        head = f.read(HEADER_BYTES)
    if not head:
        raise ImageError(f"{path}: empty file (0 bytes)")
    size = image_file_size(head)
    if size is not None:
        check_size(size[0], size[1], what=str(path), max_pixels=max_pixels, min_side=min_side)
    is_jpeg = head.startswith(_JPEG_MAGIC)
    flags = cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED  # COLOR applies EXIF
    try:
        image = cv2.imread(str(path), flags)
    except cv2.error as exc:
        raise ImageError(f"{path}: OpenCV could not decode it ({exc})") from exc
    if image is None:
        raise ImageError(f"{path}: not a readable image (OpenCV could not decode it)")
    order = "bgr" if image.ndim == 3 and image.shape[2] in (3, 4) else "mono"
    return _convert(image, order, what=str(path), max_pixels=max_pixels, min_side=min_side)


def decode_image(
    data: bytes,
    *,
    what: str,
    channel_order: str = "bgr",
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> np.ndarray:
    """PNG or JPEG bytes (e.g. a sensor_msgs/CompressedImage) -> (H, W, 3) uint8 RGB.

    channel_order: the order of the color image that was encoded, "bgr" (OpenCV's and
    image_transport's) or "rgb". The size is checked from the header before decoding; other
    formats, empty or corrupt data raise ``ImageError`` naming ``what``."""
    if channel_order not in ("bgr", "rgb"):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    head = bytes(data[:HEADER_BYTES])
    if not head:
        raise ImageError(f"{what}: empty compressed image (0 bytes)")
    if not head.startswith((PNG_MAGIC, _JPEG_MAGIC)):
        raise ImageError(f"{what}: not PNG or JPEG data (starts with {head[:4]!r})")
    size = image_file_size(head)
    if size is not None:
        check_size(size[0], size[1], what=what, max_pixels=max_pixels, min_side=min_side)
    flags = cv2.IMREAD_COLOR if head.startswith(_JPEG_MAGIC) else cv2.IMREAD_UNCHANGED
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as exc:
        raise ImageError(f"{what}: OpenCV could not decode it ({exc})") from exc
    if image is None:
        raise ImageError(f"{what}: corrupt image data (OpenCV could not decode it)")
    order = channel_order if image.ndim == 3 and image.shape[2] in (3, 4) else "mono"
    return _convert(image, order, what=what, max_pixels=max_pixels, min_side=min_side)


def to_rgb8(
    array: np.ndarray, encoding: str, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """Convert a raw image array with a ROS encoding name (e.g. "bgr8", "mono16", "16UC1",
    "yuv422") to (H, W, 3) uint8 RGB. The array must be (H, W) or (H, W, C) with the
    encoding's channel count and dtype; anything else raises ``ImageError``."""
    if encoding not in ENCODINGS:
        known = ", ".join(sorted(ENCODINGS))
        raise ImageError(f"unknown image encoding {encoding!r} (supported: {known})")
    order, channels, dtype = ENCODINGS[encoding]
    array = np.asarray(array)
    what = f"{encoding} image"
    if array.dtype != dtype:
        raise ImageError(f"{what}: dtype {array.dtype}, expected {np.dtype(dtype)}")
    shape_ok = (array.ndim == 2 and channels == 1) or (
        array.ndim == 3 and array.shape[2] == channels
    )
    if not shape_ok:
        raise ImageError(f"{what}: shape {array.shape}, expected (H, W, {channels})")
    if order in _YUV_TO_RGB:
        if array.shape[1] % 2:
            raise ImageError(f"{what}: width {array.shape[1]} is odd (4:2:2 pairs pixels)")
        check_size(
            array.shape[1], array.shape[0], what=what, max_pixels=max_pixels, min_side=min_side
        )
        return np.ascontiguousarray(cv2.cvtColor(array, _YUV_TO_RGB[order]))
    return _convert(array, order, what=what, max_pixels=max_pixels, min_side=min_side)


def check_size(
    width: int, height: int, *, what: str, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE
) -> None:
    """Raise ``ImageError`` for an empty, too small or too large image of width x height."""
    if width <= 0 or height <= 0:
        raise ImageError(f"{what}: empty image ({width}x{height} pixels)")
    if min(width, height) < min_side:
        raise ImageError(
            f"{what}: too small ({width}x{height} pixels; each side must be >= {min_side})"
        )
    if width * height > max_pixels:
        raise ImageError(
            f"{what}: too large ({width}x{height} = {width * height} pixels > {max_pixels})"
        )


def list_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand the given files and folders into a list of input files.

    A folder contributes its own image and video files (by extension, case-insensitive,
    sorted by name, not recursive); a file is kept as given whatever its extension, so that
    reading it reports the real problem. A path that does not exist raises ``ImageError``.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in known]
            out.extend(sorted(found))
        elif path.exists():
            out.append(path)
        else:
            raise ImageError(f"{path}: no such file or folder")
    return out


def is_video(path: str | Path) -> bool:
    """True when the file name has a video extension (``VIDEO_EXTENSIONS``)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _convert(
    image: np.ndarray, order: str, *, what: str, max_pixels: int, min_side: int
) -> np.ndarray:
    """(H, W[, C]) any supported dtype, order "rgb" | "bgr" | "mono" -> (H, W, 3) uint8 RGB."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(f"{what}: unsupported shape {image.shape} (need H x W x 1, 3 or 4)")
    check_size(image.shape[1], image.shape[0], what=what, max_pixels=max_pixels, min_side=min_side)
    image = _to_uint8(image, what=what)
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    rgb = image[:, :, 2::-1] if order == "bgr" else image[:, :, :3]
    return np.ascontiguousarray(rgb)


def _to_uint8(image: np.ndarray, *, what: str) -> np.ndarray:
    """Any supported dtype -> uint8 by the module's rules (channels unchanged)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16 and image.ndim == 3:
        return (image >> 8).astype(np.uint8)
    if image.dtype.kind == "f":
        values = np.nan_to_num(image.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        values = np.clip(values, 0.0, None)
        peak = float(values.max()) if values.size else 0.0
        scale = 255.0 if peak <= 1.0 else 255.0 / peak
        return np.round(values * scale).astype(np.uint8)
    if image.dtype.kind in "iu":
        values = np.clip(image.astype(np.float64), 0.0, None)
        peak = float(values.max()) if values.size else 0.0
        return np.round(values * (255.0 / max(peak, 1.0))).astype(np.uint8)
    raise ImageError(f"{what}: unsupported pixel type {image.dtype}")


def image_file_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes (``HEADER_BYTES``) of a PNG or JPEG file, read
    without decoding it; None for other formats or an unusual header."""
    if head.startswith(PNG_MAGIC) and len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    if not head.startswith(_JPEG_MAGIC):
        return None
    pos = 2
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            return None  # not at a marker: corrupt or unusual; let the decoder decide
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
        if marker in _JPEG_SOF and pos + 9 <= len(head):
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None
