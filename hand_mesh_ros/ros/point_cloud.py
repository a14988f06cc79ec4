"""The hands of a frame as one ``sensor_msgs/PointCloud2`` (``hand/points``), and back to numpy.

    HandPoints(track_id, side, points)                 one hand's points, validated
    points_cloud(hands, header, *, backend="auto")  -> PointCloud2 (all hands of one frame)
    read_cloud(msg, *, backend="auto")              -> (width * height,) structured array

For collision-aware planners (MoveIt's ``PointCloudOctomapUpdater``), PCL-based grasp planners
and RViz's PointCloud2 display. Which points a hand contributes (mesh vertices or points
sampled on the surface, inflated or not) is decided by ``hand_mesh_ros.surface_points``; this
module only lays them out.

One point, ``POINT_STEP`` = 20 bytes (``is_bigendian`` tells the byte order: the host's, little
on every platform ROS 2 supports):

    offset  0  x     FLOAT32  metres, in ``header.frame_id`` (the camera's optical frame:
    offset  4  y     FLOAT32      x right, y down, z forward) at ``header.stamp``
    offset  8  z     FLOAT32
    offset 12  hand  INT32    the hand's track id: the same number and type as ``track_id`` in
                              HandJoints / HandMesh (int32 there), so a consumer can join them
    offset 16  side  UINT8    0 right, 1 left (the person's hand; index into topology.SIDES)
    offset 17        3 bytes of zero padding: 17 bytes of fields rounded up to a multiple of 4
                     keep every point's float32 fields 4-byte aligned for C++ readers

The cloud is unorganised (``height`` 1, ``width`` = all points of all hands, hands in the given
order) and dense (``is_dense``: no NaN; ``HandPoints`` rejects non-finite points). A frame
without hands gives a valid empty cloud (``width`` 0, the same five fields) rather than silence.

Two builders produce the same message, byte for byte (tested): ``sensor_msgs_py.point_cloud2.
create_cloud`` when it is importable (``backend="auto"`` or ``"sensor_msgs_py"``), else numpy
(``"numpy"``) with the dtype ``sensor_msgs_py.point_cloud2.dtype_from_fields`` derives from
these fields (names, host-order formats such as ``'<f4'``, field offsets, ``itemsize`` =
point_step). Both fill a zero-initialised structured array and serialise it without a copy
in between: create_cloud's list-of-tuples input and numpy's ``ndarray.copy()`` of a padded
structured array leave the padding bytes uninitialised, which would make the bytes differ from
run to run (and put stray process memory on the wire).
"""

from __future__ import annotations

import array
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

from hand_mesh_ros.topology import SIDES

try:  # a ROS install ships it; with pip, the wheel in ../shared/wheels
    from sensor_msgs_py import point_cloud2 as _pc2
except ImportError:  # pragma: no cover - exercised where the wheel is absent
    _pc2 = None

HAVE_SENSOR_MSGS_PY = _pc2 is not None
BACKENDS = ("auto", "sensor_msgs_py", "numpy")

# (name, byte offset, PointField datatype); the layout documented above
CLOUD_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("x", 0, PointField.FLOAT32),
    ("y", 4, PointField.FLOAT32),
    ("z", 8, PointField.FLOAT32),
    ("hand", 12, PointField.INT32),
    ("side", 16, PointField.UINT8),
)
POINT_STEP = 20  # bytes per point: 17 of fields + 3 of zero padding (4-byte alignment)

# PointField datatype -> numpy type in the host's byte order (sensor_msgs_py's table)
_NUMPY_TYPES = {
    PointField.INT8: np.dtype(np.int8),
    PointField.UINT8: np.dtype(np.uint8),
    PointField.INT16: np.dtype(np.int16),
    PointField.UINT16: np.dtype(np.uint16),
    PointField.INT32: np.dtype(np.int32),
    PointField.UINT32: np.dtype(np.uint32),
    PointField.FLOAT32: np.dtype(np.float32),
    PointField.FLOAT64: np.dtype(np.float64),
}
_UNNAMED_FIELD = "unnamed_field"  # sensor_msgs_py's name for a field with an empty name
_INT32_RANGE = (-(2**31), 2**31 - 1)


def _dtype(fields: Iterable[tuple[str, int, int, int]], point_step: int | None) -> np.dtype:
    """numpy twin of ``sensor_msgs_py.point_cloud2.dtype_from_fields``.

    fields: (name, offset, datatype, count) per field; a field with count > 1 becomes
    subfields ``name_0 .. name_{count-1}``; an empty name becomes ``unnamed_field_<index>``.
    """
    names, formats, offsets = [], [], []
    for index, (name, offset, datatype, count) in enumerate(fields):
        if datatype not in _NUMPY_TYPES:
            raise ValueError(f"PointField {name!r}: unknown datatype {datatype}")
        if count < 1:
            raise ValueError(f"PointField {name!r}: count must be >= 1, got {count}")
        name = name or f"{_UNNAMED_FIELD}_{index}"
        fmt = _NUMPY_TYPES[datatype]
        for k in range(count):
            sub = f"{name}_{k}" if count > 1 else name
            if sub in names:
                raise ValueError(f"duplicate PointField name {sub!r}")
            names.append(sub)
            formats.append(fmt.str)
            offsets.append(offset + k * fmt.itemsize)
    spec = {"names": names, "formats": formats, "offsets": offsets}
    if point_step is not None:
        spec["itemsize"] = point_step
    return np.dtype(spec)


CLOUD_DTYPE = _dtype(((n, o, t, 1) for n, o, t in CLOUD_FIELDS), POINT_STEP)


@dataclass(frozen=True, eq=False)
class HandPoints:
    """One hand's points for the cloud.

    track_id: the hand's track id (int32 range).
    side: "right" or "left".
    points: (N,3) metres, camera optical frame; stored as a read-only float32 copy.
    """

    track_id: int
    side: str
    points: np.ndarray

    def __post_init__(self):
        if isinstance(self.track_id, bool) or not isinstance(self.track_id, int | np.integer):
            raise ValueError(f"track_id must be an integer, got {self.track_id!r}")
        if not _INT32_RANGE[0] <= int(self.track_id) <= _INT32_RANGE[1]:
            raise ValueError(f"track_id {self.track_id} does not fit in int32")
        if self.side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {self.side!r}")
        points = np.array(self.points, dtype=np.float32)  # a copy: the caller keeps its array
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"hand {self.track_id}: points must be (N, 3), got {points.shape}")
        if not np.isfinite(points).all():
            raise ValueError(f"hand {self.track_id}: points contain NaN or infinity")
        points.flags.writeable = False
        object.__setattr__(self, "track_id", int(self.track_id))
        object.__setattr__(self, "points", points)


def cloud_fields() -> list[PointField]:
    """A fresh list of the cloud's five PointFields (x, y, z, hand, side), offsets as above."""
    return [PointField(name=n, offset=o, datatype=t, count=1) for n, o, t in CLOUD_FIELDS]


def _check_backend(backend: str) -> bool:
    """True to use sensor_msgs_py. Raises for an unknown name or a missing sensor_msgs_py."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "sensor_msgs_py" and not HAVE_SENSOR_MSGS_PY:
        raise ImportError("backend='sensor_msgs_py' but sensor_msgs_py is not importable")
    return backend != "numpy" and HAVE_SENSOR_MSGS_PY


def _fill(hands: Sequence[HandPoints], dtype: np.dtype) -> np.ndarray:
    """(N,) structured array of all hands' points; zero-initialised, so padding bytes are 0."""
    counts = [len(hand.points) for hand in hands]
    cloud = np.zeros(sum(counts), dtype=dtype)
    if cloud.size:
        xyz = np.concatenate([hand.points for hand in hands])
        cloud["x"], cloud["y"], cloud["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        cloud["hand"] = np.repeat([hand.track_id for hand in hands], counts)
        cloud["side"] = np.repeat([SIDES.index(hand.side) for hand in hands], counts)
    return cloud


def points_cloud(hands: Sequence[HandPoints], header, *, backend: str = "auto") -> PointCloud2:
    """All hands of one frame as one PointCloud2 (layout in the module docstring).

    Args:
        hands: the frame's hands, in publishing order; empty -> an empty (width 0) cloud.
        header: std_msgs/Header of the input image (stamp and frame_id), used as is.
        backend: "auto" (sensor_msgs_py when importable, else numpy), "sensor_msgs_py" or
            "numpy"; every backend gives the same message.
    Raises:
        ValueError: an unknown backend or an element of ``hands`` that is not a HandPoints.
        ImportError: backend "sensor_msgs_py" without sensor_msgs_py.
    """
    use_pc2 = _check_backend(backend)
    hands = tuple(hands)
    for index, hand in enumerate(hands):
        if not isinstance(hand, HandPoints):
            raise ValueError(f"hands[{index}] must be a HandPoints, got {type(hand).__name__}")
    fields = cloud_fields()
    if use_pc2:
        points = _fill(hands, _pc2.dtype_from_fields(fields, point_step=POINT_STEP))
        msg = _pc2.create_cloud(header, fields, points, point_step=POINT_STEP)
    else:
        points = _fill(hands, CLOUD_DTYPE)
        msg = PointCloud2(
            header=header,
            height=1,
            width=len(points),
            fields=fields,
            is_bigendian=sys.byteorder != "little",
            point_step=POINT_STEP,
            row_step=POINT_STEP * len(points),
        )
        msg.data = array.array("B", points.tobytes())  # array.array: no per-byte checks
    msg.is_dense = True  # HandPoints are finite; create_cloud always writes False
    return msg


def read_cloud(msg: PointCloud2, *, backend: str = "auto") -> np.ndarray:
    """Any PointCloud2 -> (width * height,) structured array, one named column per field.

    With sensor_msgs_py this is ``point_cloud2.read_points(msg)``; the numpy fallback gives
    the same dtype and values. The result is a view of ``msg.data`` where the byte order is
    the host's (copy it to keep it or change it); points are in row order, NaNs kept.

    Raises:
        ValueError: an unknown backend or datatype, or ``data`` shorter than the fields say.
        ImportError: backend "sensor_msgs_py" without sensor_msgs_py.
    """
    use_pc2 = _check_backend(backend)
    count = msg.width * msg.height
    if len(msg.data) < count * msg.point_step:
        raise ValueError(
            f"PointCloud2 data holds {len(msg.data)} bytes, fewer than width {msg.width} x "
            f"height {msg.height} x point_step {msg.point_step}"
        )
    if use_pc2:
        return _pc2.read_points(msg)
    specs = ((f.name, f.offset, f.datatype, f.count) for f in msg.fields)
    dtype = _dtype(specs, msg.point_step)
    points = np.frombuffer(msg.data, dtype=dtype, count=count)
    if bool(msg.is_bigendian) != (sys.byteorder == "big"):
        points = points.byteswap()  # a copy; sensor_msgs_py swaps msg.data in place
    return points
