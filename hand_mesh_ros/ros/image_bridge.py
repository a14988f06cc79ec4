"""sensor_msgs/Image and CompressedImage <-> numpy RGB for the node.

    image_msg_to_rgb8(msg, *, max_pixels=MAX_PIXELS, min_side=MIN_SIDE) -> (H, W, 3) uint8 RGB
    compressed_msg_to_rgb8(msg, *, max_pixels=..., min_side=...) -> (H, W, 3) uint8 RGB
    rgb8_to_image_msg(rgb, header) -> sensor_msgs/Image, encoding "rgb8"
    depth_msg_to_metres(msg, *, max_pixels=..., min_side=...) -> (H, W) float32 metres
    metres_to_depth_msg(depth, header, encoding="16UC1") -> sensor_msgs/Image (a camera's side)

Depth images (an RGB-D camera's depth aligned to the colour image): ``16UC1`` in millimetres
or ``32FC1`` in metres, read with the layout checks 1, 2, 5 and 6 below, then converted by
``depthio.depth_to_metres`` (its rules, as for depth files: float32 metres, 0 = no data --
0, NaN, inf; negative depths refused with ``depthio.DepthError``). Any other encoding raises
``DepthEncodingError`` (an ``ImageError``): a colour image, or a colourised depth, on the
depth topic is never read as depth.

Compressed images (image_transport's ``compressed`` plugin, topic ``<image>/compressed``):
``format`` is ``"jpeg"`` / ``"png"`` or image_transport's ``"<encoding>; jpeg compressed
<order>"``; JPEG and PNG are decoded by ``imageio.decode_image`` (size checked from the
header first). The encoded color order is bgr8 (image_transport's) unless the format names
rgb8; ``compressedDepth`` and other formats are refused with ``ImageError``.

An incoming message is checked before its pixel data is touched, in this order; each failure
raises ``ImageError`` with a one-line message naming the problem:

1. zero width or height ("zero-size image");
2. too many pixels or a side too small (``imageio.check_size``), so a huge width x height
   with no data behind it is refused at once;
3. an encoding this module cannot read (the message lists the supported ones);
4. packed YUV 4:2:2 with an odd width (two pixels share one U/V pair);
5. ``step`` < width x bytes per pixel;
6. ``data`` shorter than step x height ("truncated: N bytes, expected M").

Then the rows are read with numpy (the padding at the end of each row of ``step`` bytes is
skipped; ``is_bigendian`` is honoured for 16-, 32- and 64-bit encodings) and converted by
``imageio.to_rgb8`` (its rules: BGR reordered, alpha dropped, mono replicated, 16-bit color
``>> 8``, 16-bit mono stretched to its maximum, YUV 4:2:2 converted by OpenCV).

cv_bridge: when the ROS 2 cv_bridge is installed (registered in the ament index, and the module
that ``import cv_bridge`` finds lies in that install -- not the ROS 1 ``cv-bridge`` package from
PyPI), the checked message is decoded by ``CvBridge.imgmsg_to_cv2(msg, "passthrough")`` and the
same ``to_rgb8`` follows, so both paths give the same pixels. cv_bridge's own "rgb8" conversion
is not used: its rules for 16-bit and float images differ from ``imageio``'s. Should cv_bridge
refuse an encoding that this module reads (older releases lack "uyvy"/"yuyv"), this module's
reader is used instead.
"""

from __future__ import annotations

import array
import functools
import os

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from hand_mesh_ros.depthio import DEFAULT_DEPTH_SCALE, depth_to_metres
from hand_mesh_ros.imageio import (
    ENCODINGS,
    MAX_PIXELS,
    MIN_SIDE,
    ImageError,
    check_size,
    decode_image,
    to_rgb8,
)

_PACKED_YUV = ("uyvy", "yuyv")  # channel orders of imageio's packed 4:2:2 encodings
DEPTH_ENCODINGS = {"16UC1": DEFAULT_DEPTH_SCALE, "32FC1": 1.0}  # -> metres per unit (uint16)


class DepthEncodingError(ImageError):
    """A depth image in an encoding that is not a depth (not one of ``DEPTH_ENCODINGS``)."""


def image_msg_to_rgb8(
    msg: Image, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """A sensor_msgs/Image -> (H, W, 3) uint8 RGB, C-contiguous (checks: module docstring)."""
    pixels = _checked_layout(msg, max_pixels=max_pixels, min_side=min_side)
    bridge = _ros2_cv_bridge()
    if bridge is not None:
        try:
            decoded = bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
        except Exception:  # e.g. an encoding this cv_bridge lacks: this module's reader below
            decoded = None
        if decoded is not None:
            array_ = np.asarray(decoded)
            if array_.dtype.byteorder not in "=|":
                array_ = array_.astype(array_.dtype.newbyteorder("="))
            return to_rgb8(array_, msg.encoding, max_pixels=max_pixels, min_side=min_side)
    return to_rgb8(pixels(), msg.encoding, max_pixels=max_pixels, min_side=min_side)


def compressed_msg_to_rgb8(
    msg: CompressedImage, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """A sensor_msgs/CompressedImage (JPEG or PNG) -> (H, W, 3) uint8 RGB (module docstring)."""
    fmt = msg.format.strip().lower()
    if "compresseddepth" in fmt.replace(" ", ""):
        raise ImageError(f"compressed image format {msg.format!r}: depth images are not color")
    kind = fmt.split(";")[-1].split()[0] if fmt else ""
    if kind not in ("", "jpeg", "jpg", "png"):
        raise ImageError(f"compressed image format {msg.format!r}: only jpeg and png are read")
    order = "rgb" if fmt.endswith("compressed rgb8") else "bgr"
    return decode_image(
        bytes(msg.data),
        what=f"compressed image ({msg.format or 'no format'})",
        channel_order=order,
        max_pixels=max_pixels,
        min_side=min_side,
    )


def rgb8_to_image_msg(rgb: np.ndarray, header: Header) -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image (rgb8, no row padding) with a copy of
    ``header`` (stamp and frame_id)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(f"an rgb8 image must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    if height == 0 or width == 0:
        raise ImageError(f"zero-size image ({width}x{height} pixels)")
    msg = Image()
    msg.header.stamp.sec = header.stamp.sec
    msg.header.stamp.nanosec = header.stamp.nanosec
    msg.header.frame_id = header.frame_id
    msg.height, msg.width = int(height), int(width)
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(width) * 3
    msg.data = array.array("B", np.ascontiguousarray(rgb).tobytes())
    return msg


def depth_msg_to_metres(
    msg: Image, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """A 16UC1 (mm) or 32FC1 (m) sensor_msgs/Image -> (H, W) float32 metres, C-contiguous,
    0 where there is no data (module docstring). ``DepthEncodingError`` for another encoding,
    ``ImageError`` for a malformed message (zero size, too large, short step, truncated),
    ``DepthError`` for negative depths."""
    scale = DEPTH_ENCODINGS.get(msg.encoding)
    if scale is None:
        raise DepthEncodingError(
            f"depth image encoding {msg.encoding!r} is not a depth (expected 16UC1 in mm or "
            "32FC1 in m, aligned to the colour image)"
        )
    raw = _checked_layout(msg, max_pixels=max_pixels, min_side=min_side)()
    return depth_to_metres(raw, what=f"{msg.encoding} depth image", scale=scale)


def metres_to_depth_msg(depth: np.ndarray, header: Header, encoding: str = "16UC1") -> Image:
    """(H, W) metres (0, NaN or inf = no data) -> sensor_msgs/Image as an RGB-D camera
    publishes it, with a copy of ``header``: ``16UC1`` rounded to millimetres (0 = no data,
    clipped to 65.535 m) or ``32FC1`` metres (NaN = no data)."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2 or 0 in depth.shape:
        raise ImageError(f"a depth image must be (H, W), got {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    if encoding == "16UC1":
        units = np.where(valid, np.round(depth / DEFAULT_DEPTH_SCALE), 0.0)
        pixels = units.clip(0, np.iinfo(np.uint16).max).astype("<u2")
    elif encoding == "32FC1":
        pixels = np.where(valid, depth, np.nan).astype("<f4")
    else:
        raise ImageError(f"depth encoding must be 16UC1 or 32FC1, got {encoding!r}")
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = header.stamp.sec, header.stamp.nanosec
    msg.header.frame_id = header.frame_id
    msg.height, msg.width = (int(n) for n in depth.shape)
    msg.encoding, msg.is_bigendian = encoding, 0
    msg.step = msg.width * pixels.itemsize
    msg.data = array.array("B", pixels.tobytes())
    return msg


def supported_encodings() -> tuple[str, ...]:
    """The ROS encoding names this module reads, sorted."""
    return tuple(sorted(ENCODINGS))


def _checked_layout(msg: Image, *, max_pixels: int, min_side: int):
    """Run checks 1-6 of the module docstring; return a function that reads the pixels as
    (H, W) or (H, W, C) in the encoding's native-endian dtype (called only when needed)."""
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    if width == 0 or height == 0:
        raise ImageError(f"zero-size image ({width}x{height} pixels)")
    check_size(width, height, what="image message", max_pixels=max_pixels, min_side=min_side)
    encoding = msg.encoding
    if encoding not in ENCODINGS:
        known = ", ".join(supported_encodings())
        raise ImageError(f"unknown image encoding {encoding!r} (supported: {known})")
    order, channels, dtype = ENCODINGS[encoding]
    if order in _PACKED_YUV and width % 2:
        raise ImageError(f"{encoding} image: width {width} is odd (packed YUV 4:2:2 needs even)")
    item = np.dtype(dtype)
    row_bytes = width * channels * item.itemsize
    if step < row_bytes:
        raise ImageError(
            f"{encoding} image: step {step} < width x bytes per pixel = {width} x "
            f"{channels * item.itemsize} = {row_bytes}"
        )
    expected = step * height
    if len(msg.data) < expected:
        raise ImageError(
            f"{encoding} image truncated: {len(msg.data)} bytes, expected {expected} "
            f"(step {step} x height {height})"
        )
    wire = item.newbyteorder(">" if msg.is_bigendian else "<") if item.itemsize > 1 else item

    def pixels() -> np.ndarray:
        raw = np.frombuffer(msg.data, dtype=np.uint8, count=expected)
        rows = np.ascontiguousarray(raw.reshape(height, step)[:, :row_bytes])
        shape = (height, width, channels) if channels > 1 else (height, width)
        values = rows.view(wire).reshape(shape)
        return values.astype(item, copy=False)  # native byte order

    return pixels


@functools.cache
def _ros2_cv_bridge():
    """A ``CvBridge`` of the ROS 2 cv_bridge, or None when that is not installed (see the
    module docstring for how the ROS 1 PyPI package is told apart)."""
    try:
        import cv_bridge
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        return None
    try:
        prefix = get_package_prefix("cv_bridge")
    except PackageNotFoundError:
        return None  # importable but not a ROS 2 package: the ROS 1 cv-bridge from PyPI
    module_file = cv_bridge.__file__ or ""
    for resolve in (os.path.abspath, os.path.realpath):  # as installed, or through symlinks
        root, path = resolve(prefix), resolve(module_file)
        if os.path.commonpath([root, path]) == root:
            return cv_bridge.CvBridge()
    return None  # a cv_bridge module from elsewhere shadows the ROS 2 one
