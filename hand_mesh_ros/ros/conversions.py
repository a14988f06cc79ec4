"""Pipeline results -> ROS 2 messages (and CameraInfo -> intrinsics). No node logic here.

    camera_info_to_intrinsics(msg) -> CameraIntrinsics
    joints_array(result, header)  -> HandJointsArray   (hand/joints)
    mano_array(result, header)    -> HandManoArray     (hand/mano)
    mesh_markers(result, header)  -> MarkerArray       (hand/mesh, RViz and planners)
    mesh_array(result, header)    -> HandMeshArray     (indexed mesh for planners)
    joint_markers(result, header) -> MarkerArray       (21 joints + bones, RViz)
    diagnostic_array(stamp, ...)  -> DiagnosticArray   (/diagnostics)
    overlay_image(rgb, result, header) -> Image        (hand/overlay, debug)
    hand_transforms(result, header, prefix=...) -> [TransformStamped]  (/tf, two per hand)

Frames and units: everything is in the input image's optical frame (x right, y down, z
forward; the ``frame_id`` of the image's header), metres; pixels with centres at integer
coordinates; keypoint order of ``topology.py``. Every message carries a copy of the input
image's header (stamp and frame_id). A frame without hands gives empty arrays (not silence).

Validation: shapes are checked and any NaN or infinity in a hand's arrays raises
``ValueError`` naming the hand and the field (the node drops the frame); nothing is published
half-built.

Reading ``hand/mesh`` (visualization_msgs/MarkerArray) in a grasp planner:
  - ``markers[0]`` is always a DELETEALL (action 3) in namespace ``hand_mesh``: it clears the
    hands of the previous frame in RViz. Skip it. With no hand in the frame it is the only one.
  - Every further marker is one hand: type TRIANGLE_LIST (11), ``id`` = the hand's index in
    the frame, pose identity, scale 1. ``points`` holds 3 x F points: triangle t is
    ``points[3t], points[3t+1], points[3t+2]``, counter-clockwise seen from outside the hand,
    metres in ``header.frame_id`` (the camera's optical frame) at ``header.stamp``.
  - Color tells the side (``visualize.SIDE_COLORS``, as in the overlay): right hand blue
    (0.31, 0.63, 1.0), left hand orange (1.0, 0.59, 0.24). The same hands as an indexed mesh
    with side and track id: ``HandMeshArray``.

Speed: a TRIANGLE_LIST of the 900-vertex, 1796-face hand is 5388 geometry_msgs/Point objects.
They are created by filling the message class's slots directly (``_points_from_slots``): about
1.8 ms per hand on 2 CPU cores, 3-5x faster than ``Point(x=..., y=..., z=...)``; the constructor
is used where the generated class has other slots than this code knows (other ROS
distributions). Serialising the marker for publishing takes another 2-4 ms. In a process that
holds torch (~190k objects), those thousands of new objects trigger Python's full garbage
collections (~150 ms each, every ~10 frames) unless the process calls ``gc.freeze()`` once
after loading its models.
"""

from __future__ import annotations

import array
import math
from collections.abc import Mapping

import numpy as np
import torch
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, TransformStamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from hand_mesh_ros.msg import (
    HandJoints,
    HandJointsArray,
    HandMano,
    HandManoArray,
    HandMesh,
    HandMeshArray,
)
from hand_mesh_ros.outputs import render_overlay
from hand_mesh_ros.pipeline.types import CameraIntrinsics, FrameResult, HandEstimate
from hand_mesh_ros.ros.image_bridge import rgb8_to_image_msg
from hand_mesh_ros.rotations import axis_angle_to_quaternion
from hand_mesh_ros.topology import (
    KEYPOINT_PARENTS,
    NUM_KEYPOINTS,
    NUM_POSE,
    NUM_SHAPE,
    WRIST_KEYPOINT,
)
from hand_mesh_ros.visualize import SIDE_COLORS

DIAGNOSTIC_NAME = "hand_mesh_ros: estimator"
MESH_NAMESPACE = "hand_mesh"
JOINTS_NAMESPACE = "hand_joints"
MARKER_ALPHA = 0.85  # the meshes stay see-through in RViz
SIDE_RGBA: dict[str, tuple[float, float, float, float]] = {  # the overlay's palette, in [0, 1]
    side: (*(c / 255.0 for c in rgb), MARKER_ALPHA) for side, rgb in SIDE_COLORS.items()
}
JOINT_DIAMETER_M = 0.01  # sphere size of a joint in joint_markers
BONE_WIDTH_M = 0.004  # line width of a bone in joint_markers
DIAGNOSTIC_LEVELS = (
    DiagnosticStatus.OK,
    DiagnosticStatus.WARN,
    DiagnosticStatus.ERROR,
    DiagnosticStatus.STALE,
)
_INT32_RANGE = (-(2**31), 2**31 - 1)
_BONES = tuple((parent, child) for child, parent in enumerate(KEYPOINT_PARENTS) if parent >= 0)
PALM_KEYPOINTS = (0, 5, 9, 13, 17)  # wrist + index/middle/ring/little MCPs: their mean = palm
PALM_FRAME_SUFFIX = "_palm"


# ----- CameraInfo ---------------------------------------------------------------------------
def camera_info_to_intrinsics(msg: CameraInfo) -> CameraIntrinsics:
    """The pinhole intrinsics of ``msg.k`` (row-major 3x3 K, pixels) for the raw image.

    Skew (K[0,1]) and distortion (``msg.d``) are ignored. Raises ``ValueError`` for an all-zero
    K (an uncalibrated camera), non-finite values, a focal length <= 0, or a last row other
    than [0, 0, 1]."""
    k = np.asarray(msg.k, dtype=np.float64)
    if k.shape != (9,):
        raise ValueError(f"CameraInfo.k must hold 9 values, got {k.size}")
    if not k.any():
        raise ValueError(
            "CameraInfo K is all zeros: the camera is uncalibrated (calibrate it, e.g. with "
            "camera_calibration, or publish its intrinsics)"
        )
    if not np.isfinite(k).all():
        raise ValueError(f"CameraInfo K has non-finite values: {k.tolist()}")
    fx, fy, cx, cy = float(k[0]), float(k[4]), float(k[2]), float(k[5])
    if fx <= 0 or fy <= 0:
        raise ValueError(f"CameraInfo focal length must be > 0, got fx={fx} fy={fy}")
    if k[6] != 0 or k[7] != 0 or k[8] != 1:
        raise ValueError(f"CameraInfo K's last row must be [0, 0, 1], got {k[6:].tolist()}")
    return CameraIntrinsics(fx, fy, cx, cy, assumed=False)


# ----- per-hand messages --------------------------------------------------------------------
def joints_array(result: FrameResult, header: Header) -> HandJointsArray:
    """Per hand: 21 keypoints in metres (camera frame) and the fitted hand's 2D keypoints
    (pixels), flattened float32 x0 y0 z0 x1 ... / u0 v0 u1 ..., side, score, track id, and
    whether the aligned depth placed the hand (``HandEstimate.depth_used``)."""
    msg = HandJointsArray(header=_copy_header(header))
    for index, hand in enumerate(result.hands):
        joints = HandJoints()
        joints.side = _side(hand, index)
        joints.score = _finite_scalar(hand.score, "score", index)
        joints.track_id = _track_id(hand, index)
        joints.joints_3d = _float32(hand.keypoints_3d, (NUM_KEYPOINTS, 3), "keypoints_3d", index)
        joints.joints_2d = _float32(hand.keypoints_2d, (NUM_KEYPOINTS, 2), "keypoints_2d", index)
        joints.depth_used = bool(hand.depth_used)
        msg.hands.append(joints)
    return msg


def mano_array(result: FrameResult, header: Header) -> HandManoArray:
    """Per hand: pose (45), shape (10), global_orient (3), transl (3, metres) float32 of the
    hand model ``HandEstimate.model_name``, side and track id."""
    msg = HandManoArray(header=_copy_header(header))
    for index, hand in enumerate(result.hands):
        mano = HandMano()
        mano.side = _side(hand, index)
        mano.track_id = _track_id(hand, index)
        mano.model = str(hand.model_name)
        mano.pose = _float32(hand.pose, (NUM_POSE,), "pose", index)
        mano.shape = _float32(hand.shape, (NUM_SHAPE,), "shape", index)
        mano.global_orient = _float32(hand.global_orient, (3,), "global_orient", index)
        mano.transl = _float32(hand.transl, (3,), "transl", index)
        msg.hands.append(mano)
    return msg


def mesh_array(result: FrameResult, header: Header) -> HandMeshArray:
    """Per hand: vertices (3V float32, metres, camera frame) and triangles (3F uint32)."""
    msg = HandMeshArray(header=_copy_header(header))
    for index, hand in enumerate(result.hands):
        vertices, faces = _mesh(hand, index)
        mesh = HandMesh()
        mesh.side = _side(hand, index)
        mesh.track_id = _track_id(hand, index)
        mesh.model = str(hand.model_name)
        mesh.vertices = array.array("f", vertices.astype("=f4").tobytes())
        mesh.triangles = array.array("I", faces.astype("=u4").tobytes())
        msg.hands.append(mesh)
    return msg


def mesh_markers(
    result: FrameResult, header: Header, *, namespace: str = MESH_NAMESPACE
) -> MarkerArray:
    """DELETEALL, then one TRIANGLE_LIST marker per hand (layout: module docstring)."""
    markers = [_delete_all(header, namespace)]
    for index, hand in enumerate(result.hands):
        vertices, faces = _mesh(hand, index)
        marker = _marker(header, namespace, index, Marker.TRIANGLE_LIST, _side(hand, index))
        marker.scale.x = marker.scale.y = marker.scale.z = 1.0
        marker.points = _points(vertices[faces].reshape(-1, 3))
        markers.append(marker)
    return MarkerArray(markers=markers)


def joint_markers(
    result: FrameResult, header: Header, *, namespace: str = JOINTS_NAMESPACE
) -> MarkerArray:
    """DELETEALL, then per hand i a SPHERE_LIST of its 21 keypoints (id 2i) and a LINE_LIST of
    its 20 bones (id 2i+1, point pairs parent -> child), metres, camera frame."""
    markers = [_delete_all(header, namespace)]
    for index, hand in enumerate(result.hands):
        keypoints = _checked(hand.keypoints_3d, (NUM_KEYPOINTS, 3), "keypoints_3d", index)
        side = _side(hand, index)
        spheres = _marker(header, namespace, 2 * index, Marker.SPHERE_LIST, side)
        spheres.scale.x = spheres.scale.y = spheres.scale.z = JOINT_DIAMETER_M
        spheres.points = _points(keypoints)
        bones = _marker(header, namespace, 2 * index + 1, Marker.LINE_LIST, side)
        bones.scale.x = BONE_WIDTH_M
        bones.points = _points(keypoints[np.asarray(_BONES).reshape(-1)])
        markers += [spheres, bones]
    return MarkerArray(markers=markers)


def overlay_image(rgb: np.ndarray, result: FrameResult, header: Header) -> Image:
    """The meshes and keypoints drawn over the input image (``outputs.render_overlay``);
    rgb (H, W, 3) uint8 -> sensor_msgs/Image rgb8 with the input's header."""
    for index, hand in enumerate(result.hands):
        _mesh(hand, index)
        _checked(hand.keypoints_2d, (NUM_KEYPOINTS, 2), "keypoints_2d", index)
        _side(hand, index)
    return rgb8_to_image_msg(render_overlay(rgb, result), header)


# ----- /tf ----------------------------------------------------------------------------------
def hand_frame_id(side: str, track_id: int, *, prefix: str = "") -> str:
    """The TF frame of a hand's wrist: ``<prefix>hand_<side>_<track_id>``."""
    return f"{prefix}hand_{side}_{track_id}"


def hand_transforms(
    result: FrameResult, header: Header, *, prefix: str = ""
) -> list[TransformStamped]:
    """Per hand, in ``result.hands`` order, two transforms from ``header.frame_id`` (the
    camera's optical frame) at ``header.stamp``:

    - ``<prefix>hand_<side>_<track_id>``: origin at the wrist (keypoint 0), metres;
    - the same name + ``_palm``: origin at the palm centre, the mean of keypoints
      ``PALM_KEYPOINTS`` (wrist and the four finger MCPs); same orientation.

    Orientation: the rotation R of the hand's ``global_orient`` (axis-angle of its side's
    model, rotating about the wrist joint), quaternion (x, y, z, w). The child axes, in the
    camera frame, are R e_x, R e_y, R e_z: those of the side's hand model's canonical frame
    (docs/hand_model.md) -- fingers of the flat hand along -y, palm facing -z (back of the
    hand +z), thumb on +x for a right hand and on -x for a left one (the left model is the
    x-mirror, so both frames are right-handed). A point p of the canonical, zero-orient hand
    relative to its wrist joint is at R p + wrist in the camera frame.
    ``prefix`` is prepended verbatim (e.g. ``"cam1/"``); tf2 frames never start with ``/``."""
    if prefix.startswith("/"):
        raise ValueError(f"tf prefix must not start with '/', got {prefix!r}")
    transforms = []
    for index, hand in enumerate(result.hands):
        keypoints = _checked(hand.keypoints_3d, (NUM_KEYPOINTS, 3), "keypoints_3d", index)
        orient = _checked(hand.global_orient, (3,), "global_orient", index)
        w, x, y, z = axis_angle_to_quaternion(torch.from_numpy(orient)).tolist()
        child = hand_frame_id(_side(hand, index), _track_id(hand, index), prefix=prefix)
        palm = keypoints[list(PALM_KEYPOINTS)].mean(axis=0)
        for name, origin in ((child, keypoints[WRIST_KEYPOINT]), (child + PALM_FRAME_SUFFIX, palm)):
            transform = TransformStamped(header=_copy_header(header), child_frame_id=name)
            translation, rotation = transform.transform.translation, transform.transform.rotation
            translation.x, translation.y, translation.z = origin.tolist()
            rotation.x, rotation.y, rotation.z, rotation.w = x, y, z, w
            transforms.append(transform)
    return transforms


# ----- diagnostics --------------------------------------------------------------------------
def diagnostic_array(
    stamp: Time,
    *,
    hardware_id: str,
    values: Mapping[str, str | float | int],
    level: bytes | int,
    message: str,
) -> DiagnosticArray:
    """One DiagnosticStatus named ``DIAGNOSTIC_NAME``; ``values`` become KeyValue pairs in
    their order (floats with 6 significant digits, booleans as true/false). ``level`` is a
    DiagnosticStatus constant (OK, WARN, ERROR, STALE) or its number 0-3."""
    if isinstance(level, int) and not isinstance(level, bool):
        level = bytes([level]) if 0 <= level <= 255 else b"\xff"
    if level not in DIAGNOSTIC_LEVELS:
        raise ValueError(f"diagnostic level must be OK, WARN, ERROR or STALE, got {level!r}")
    if not isinstance(stamp, Time):
        raise TypeError(f"stamp must be a builtin_interfaces/Time, got {type(stamp).__name__}")
    status = DiagnosticStatus(
        level=level,
        name=DIAGNOSTIC_NAME,
        message=str(message),
        hardware_id=str(hardware_id),
        values=[KeyValue(key=str(key), value=_diagnostic_text(v)) for key, v in values.items()],
    )
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = Time(sec=stamp.sec, nanosec=stamp.nanosec)
    return msg


def _diagnostic_text(value: str | float | int) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    raise TypeError(f"diagnostic values must be str, float or int, got {type(value).__name__}")


# ----- checks and builders ------------------------------------------------------------------
def _copy_header(header: Header) -> Header:
    stamp = Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec)
    return Header(stamp=stamp, frame_id=header.frame_id)


def _checked(value, shape: tuple[int | None, ...], field: str, index: int) -> np.ndarray:
    """``value`` as float64 of ``shape`` (None: any length), all finite, else ValueError."""
    values = np.asarray(value, dtype=np.float64)
    if values.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(values.shape, shape, strict=True)
    ):
        wanted = "(" + ", ".join("N" if n is None else str(n) for n in shape) + ")"
        raise ValueError(f"hand {index}: {field} has shape {values.shape}, expected {wanted}")
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise ValueError(f"hand {index}: {field} has {bad} non-finite values (NaN or inf)")
    return values


def _float32(value, shape: tuple[int, ...], field: str, index: int) -> np.ndarray:
    """Checked and flattened to float32 (for the fixed-size float32[N] message fields)."""
    return _checked(value, shape, field, index).astype(np.float32).reshape(-1)


def _finite_scalar(value, field: str, index: int) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"hand {index}: {field} is {number}")
    return number


def _side(hand: HandEstimate, index: int) -> str:
    if hand.side not in SIDE_RGBA:
        raise ValueError(f"hand {index}: side must be 'left' or 'right', got {hand.side!r}")
    return hand.side


def _track_id(hand: HandEstimate, index: int) -> int:
    track_id = int(hand.track_id)
    if not _INT32_RANGE[0] <= track_id <= _INT32_RANGE[1]:
        raise ValueError(f"hand {index}: track_id {track_id} does not fit in int32")
    return track_id


def _mesh(hand: HandEstimate, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Checked vertices (V, 3) float64 and faces (F, 3) int64 indices into them."""
    vertices = _checked(hand.vertices, (None, 3), "vertices", index)
    faces = np.asarray(hand.faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu":
        raise ValueError(
            f"hand {index}: faces must be (F, 3) integers, got {faces.shape} {faces.dtype}"
        )
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(
            f"hand {index}: face indices must be in [0, {len(vertices)}), "
            f"got [{faces.min()}, {faces.max()}]"
        )
    return vertices, faces.astype(np.int64, copy=False)


def _delete_all(header: Header, namespace: str) -> Marker:
    marker = Marker(header=_copy_header(header), ns=namespace, action=Marker.DELETEALL)
    marker.pose.orientation.w = 1.0
    return marker


def _marker(header: Header, namespace: str, marker_id: int, kind: int, side: str) -> Marker:
    """An ADD marker of ``kind`` with identity pose, colored by ``side`` (scale left 0)."""
    marker = Marker(header=_copy_header(header), ns=namespace, id=marker_id, type=kind)
    marker.action = Marker.ADD
    marker.pose.orientation.w = 1.0
    r, g, b, a = SIDE_RGBA[side]
    marker.color = ColorRGBA(r=r, g=g, b=b, a=a)
    return marker


def _points_from_constructor(xyz: np.ndarray) -> list[Point]:
    """(N, 3) float -> N geometry_msgs/Point through the public constructor."""
    return [Point(x=x, y=y, z=z) for x, y, z in np.asarray(xyz, dtype=np.float64).tolist()]


def _points_from_slots(xyz: np.ndarray) -> list[Point]:
    """(N, 3) float -> N geometry_msgs/Point by filling the generated class's slots (the
    values are Python floats from a finite float64 array, which is all the setters check)."""
    new = Point.__new__
    check_fields = _POINT_CHECK_FIELDS
    points = []
    append = points.append
    for x, y, z in np.asarray(xyz, dtype=np.float64).tolist():
        point = new(Point)
        point._check_fields = check_fields
        point._x = x
        point._y = y
        point._z = z
        append(point)
    return points


# The slots of geometry_msgs/Point generated by rosidl_generator_py for Jazzy and later.
_KNOWN_POINT_SLOTS = ("_x", "_y", "_z", "_check_fields")
if tuple(Point.__slots__) == _KNOWN_POINT_SLOTS:
    _POINT_CHECK_FIELDS = Point()._check_fields  # the constructor's default for this process
    _points = _points_from_slots
else:
    _points = _points_from_constructor
