"""ROS message conversions on real message objects: images in every encoding (with row padding
and byte order), CameraInfo, and results of a real hand model forward pass -> joints, MANO,
mesh markers, indexed meshes, diagnostics and the overlay image."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
import torch
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Point
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from hand_mesh_ros.camera import project
from hand_mesh_ros.handmodel.model import load_hand_model
from hand_mesh_ros.imageio import ImageError, to_rgb8
from hand_mesh_ros.outputs import render_overlay
from hand_mesh_ros.pipeline.types import CameraIntrinsics, FrameResult, HandEstimate
from hand_mesh_ros.ros import conversions
from hand_mesh_ros.ros.image_bridge import (
    _checked_layout,
    _ros2_cv_bridge,
    image_msg_to_rgb8,
    rgb8_to_image_msg,
    supported_encodings,
)
from hand_mesh_ros.topology import KEYPOINT_PARENTS

HEIGHT, WIDTH = 34, 40  # small but above imageio.MIN_SIDE; width even for YUV 4:2:2
PADDING = 6  # extra bytes at the end of every row (step > width x bytes per pixel)
CAMERA = CameraIntrinsics(300.0, 310.0, 199.5, 119.5)
IMAGE_H, IMAGE_W = 240, 400  # the result's image


def _header(sec: int = 17, nanosec: int = 250, frame_id: str = "cam_optical") -> Header:
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def _image_msg(array: np.ndarray, encoding: str, *, bigendian: bool = False, pad: int = PADDING):
    """A sensor_msgs/Image holding ``array`` (H, W[, C]) with ``pad`` bytes after each row."""
    height, width = array.shape[:2]
    wire = array.dtype.newbyteorder(">" if bigendian else "<")
    rows = np.ascontiguousarray(array.astype(wire)).view(np.uint8).reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    msg = Image(header=_header(), height=height, width=width, encoding=encoding)
    msg.is_bigendian = int(bigendian)
    msg.step = padded.shape[1]
    msg.data = padded.tobytes()
    return msg


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


# ----- images -------------------------------------------------------------------------------
def test_color_encodings_convert_to_the_known_rgb(rgb):
    bgr = rgb[:, :, ::-1]
    alpha = np.full((HEIGHT, WIDTH, 1), 7, np.uint8)
    cases = {
        "rgb8": rgb,
        "bgr8": bgr,
        "8UC3": bgr,  # OpenCV's order for generic 3-channel images
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([bgr, alpha], axis=2),
    }
    for encoding, array in cases.items():
        out = image_msg_to_rgb8(_image_msg(array, encoding), max_pixels=10**6)
        assert out.shape == (HEIGHT, WIDTH, 3) and out.dtype == np.uint8, encoding
        assert out.flags.c_contiguous
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)


def test_mono_encodings_replicate_and_stretch(rgb):
    grey = rgb[:, :, 1]
    np.testing.assert_array_equal(
        image_msg_to_rgb8(_image_msg(grey, "mono8")), np.dstack([grey] * 3)
    )
    depth = (grey.astype(np.uint16) * 4).astype(np.uint16)  # max 1020, as depth in mm would be
    expected = np.round(depth * (255.0 / depth.max())).astype(np.uint8)
    for encoding in ("mono16", "16UC1"):
        for bigendian in (False, True):
            msg = _image_msg(depth, encoding, bigendian=bigendian)
            out = image_msg_to_rgb8(msg)
            np.testing.assert_array_equal(out, np.dstack([expected] * 3), err_msg=encoding)
    assert image_msg_to_rgb8(_image_msg(depth, "16UC1", bigendian=True))[..., 0].max() == 255


def test_big_endian_16_bit_color_is_read_in_its_byte_order(rgb):
    high, low = rgb.astype(np.uint16), 255 - rgb.astype(np.uint16)
    wide = (high << 8) | low  # >> 8 gives rgb back; the bytes swapped give 255 - rgb
    for bigendian in (False, True):
        out = image_msg_to_rgb8(_image_msg(wide, "rgb16", bigendian=bigendian))
        np.testing.assert_array_equal(out, rgb, err_msg=f"bigendian={bigendian}")
    swapped = _image_msg(wide, "rgb16", bigendian=True)
    swapped.is_bigendian = 0  # the flag matters: the same bytes in the other order
    np.testing.assert_array_equal(image_msg_to_rgb8(swapped), 255 - rgb)


def test_yuv422_matches_opencv_on_the_unpadded_pixels(rgb):
    grey = np.full((HEIGHT, WIDTH, 2), 128, np.uint8)  # U = V = Y = 128: mid grey
    out = image_msg_to_rgb8(_image_msg(grey, "yuv422"))
    assert np.abs(out.astype(int) - 128).max() <= 2
    packed = np.random.default_rng(4).integers(16, 236, (HEIGHT, WIDTH, 2), dtype=np.uint8)
    for encoding, code in (("yuv422", cv2.COLOR_YUV2RGB_UYVY), ("yuyv", cv2.COLOR_YUV2RGB_YUY2)):
        out = image_msg_to_rgb8(_image_msg(packed, encoding))
        np.testing.assert_array_equal(out, cv2.cvtColor(packed, code), err_msg=encoding)


def test_every_supported_encoding_reads_like_imageio():
    """Any encoding, either byte order, padded rows: the pixels imageio.to_rgb8 gives for the
    unpadded native array."""
    rng = np.random.default_rng(5)
    for encoding in supported_encodings():
        array = _random_array(encoding, rng)
        expected = to_rgb8(array, encoding)
        for bigendian in (False, True):
            out = image_msg_to_rgb8(_image_msg(array, encoding, bigendian=bigendian))
            np.testing.assert_array_equal(out, expected, err_msg=f"{encoding} {bigendian=}")


def _random_array(encoding: str, rng: np.random.Generator) -> np.ndarray:
    """A random (H, W[, C]) array of ``encoding``'s dtype and channel count."""
    from hand_mesh_ros.imageio import ENCODINGS

    _, channels, dtype = ENCODINGS[encoding]
    shape = (HEIGHT, WIDTH) if channels == 1 else (HEIGHT, WIDTH, channels)
    if np.dtype(dtype).kind == "f":
        return rng.uniform(0.0, 3.0, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 60000), shape).astype(dtype)


def test_rgb8_message_round_trip_keeps_header_and_pixels(rgb):
    header = _header(sec=3, nanosec=9, frame_id="overlay_frame")
    msg = rgb8_to_image_msg(rgb, header)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (HEIGHT, WIDTH, WIDTH * 3, "rgb8")
    assert msg.is_bigendian == 0 and len(msg.data) == HEIGHT * WIDTH * 3
    assert msg.header == header and msg.header is not header
    np.testing.assert_array_equal(image_msg_to_rgb8(msg), rgb)
    back = deserialize_message(serialize_message(msg), Image)  # a valid message on the wire
    np.testing.assert_array_equal(image_msg_to_rgb8(back), rgb)
    with pytest.raises(ImageError, match="uint8"):
        rgb8_to_image_msg(rgb.astype(np.float32), header)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"width": 0}, "zero-size image"),
        ({"height": 0, "data": b""}, "zero-size image"),
        ({"step": WIDTH * 3 - 1}, r"step 119 < width x bytes per pixel"),
        ({"data": bytes(100)}, r"truncated: 100 bytes, expected 4284"),
        ({"encoding": "bayer_rggb8"}, r"unknown image encoding 'bayer_rggb8' \(supported: .*rgb8"),
        ({"encoding": ""}, "unknown image encoding"),
        ({"width": 100_000, "height": 100_000, "step": 300_000, "data": b""}, "too large"),
        ({"width": 8, "step": 24}, "too small"),
    ],
)
def test_bad_messages_raise_a_clear_image_error(rgb, change, message):
    msg = _image_msg(rgb, "rgb8")
    for field, value in change.items():
        setattr(msg, field, value)
    with pytest.raises(ImageError, match=message) as error:
        image_msg_to_rgb8(msg)
    assert "\n" not in str(error.value)


def test_odd_width_yuv_and_the_pixel_limit_are_refused(rgb):
    odd = np.full((HEIGHT, WIDTH + 1, 2), 128, np.uint8)
    with pytest.raises(ImageError, match="odd"):
        image_msg_to_rgb8(_image_msg(odd, "uyvy"))
    with pytest.raises(ImageError, match="too large"):
        image_msg_to_rgb8(_image_msg(rgb, "rgb8"), max_pixels=HEIGHT * WIDTH - 1)


def test_cv_bridge_is_used_only_when_it_is_the_ros2_one(rgb):
    if importlib.util.find_spec("cv_bridge") is None:
        assert _ros2_cv_bridge() is None
        return
    bridge = _ros2_cv_bridge()
    if bridge is None:
        pytest.skip("a non-ROS 2 cv_bridge module is importable (correctly ignored)")
    for encoding in ("rgb8", "bgra8", "mono16", "yuv422"):  # cv_bridge path == own reader
        array = _random_array(encoding, np.random.default_rng(6))
        for bigendian in (False, True):
            msg = _image_msg(array, encoding, bigendian=bigendian)
            own = to_rgb8(_checked_layout(msg, max_pixels=10**6, min_side=1)(), encoding)
            np.testing.assert_array_equal(image_msg_to_rgb8(msg), own, err_msg=encoding)


# ----- CameraInfo ---------------------------------------------------------------------------
def _camera_info(k) -> CameraInfo:
    info = CameraInfo(width=IMAGE_W, height=IMAGE_H)
    info.k = np.asarray(k, dtype=np.float64)
    return info


def test_camera_info_gives_the_intrinsics_of_k():
    camera = conversions.camera_info_to_intrinsics(
        _camera_info([520.5, 0.0, 321.25, 0.0, 518.0, 240.75, 0.0, 0.0, 1.0])
    )
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (520.5, 518.0, 321.25, 240.75)
    assert camera.assumed is False


@pytest.mark.parametrize(
    ("k", "message"),
    [
        ([0.0] * 9, "all zeros.*uncalibrated"),
        ([0.0, 0, 320, 0, 500, 240, 0, 0, 1], r"focal length must be > 0, got fx=0.0"),
        ([500.0, 0, 320, 0, -500, 240, 0, 0, 1], "focal length must be > 0"),
        ([float("nan"), 0, 320, 0, 500, 240, 0, 0, 1], "non-finite"),
        ([500.0, 0, 320, 0, 500, 240, 0, 0, 0], r"last row must be \[0, 0, 1\]"),
    ],
)
def test_bad_camera_info_raises_value_error(k, message):
    with pytest.raises(ValueError, match=message):
        conversions.camera_info_to_intrinsics(_camera_info(k))


# ----- results ------------------------------------------------------------------------------
def _hand(side: str, x_offset: float, track_id: int, pose_seed: int) -> HandEstimate:
    """A real forward pass of the ``side`` hand model, 0.5 m in front of the camera."""
    model = load_hand_model(side, dtype=torch.float64)
    pose = 0.2 * torch.randn(
        1, 45, dtype=torch.float64, generator=torch.Generator().manual_seed(pose_seed)
    )
    shape = torch.linspace(-1.0, 1.0, 10, dtype=torch.float64)[None]
    orient = torch.tensor([[0.1, -0.2, 0.3]], dtype=torch.float64)
    transl = torch.tensor([[x_offset, 0.02, 0.5]], dtype=torch.float64)
    with torch.no_grad():
        out = model(pose=pose, shape=shape, global_orient=orient, transl=transl)
    keypoints = out.keypoints[0]
    keypoints_2d = project(keypoints[None], CAMERA.matrix(dtype=torch.float64))[0]
    return HandEstimate(
        side=side, score=0.87, track_id=track_id,
        keypoints_2d=keypoints_2d.numpy(), detected_keypoints_2d=keypoints_2d.numpy() + 0.5,
        keypoints_3d=keypoints.numpy(), pose=pose[0].numpy(), shape=shape[0].numpy(),
        global_orient=orient[0].numpy(), transl=transl[0].numpy(),
        vertices=out.vertices[0].numpy(), faces=model.faces.numpy(),
        model_name=model.name, refine_iterations=4, refine_loss=0.5, keypoint_error_px=0.7,
    )  # fmt: skip


@pytest.fixture(scope="module")
def hands() -> tuple[HandEstimate, HandEstimate]:
    return _hand("right", 0.06, 5, pose_seed=1), _hand("left", -0.06, 9, pose_seed=2)


def _frame(hands) -> FrameResult:
    return FrameResult(IMAGE_W, IMAGE_H, CAMERA, tuple(hands), {"total": 10.0})


def _with(hand: HandEstimate, **changes) -> HandEstimate:
    fields = {name: getattr(hand, name) for name in HandEstimate.__dataclass_fields__}
    return HandEstimate(**{**fields, **changes})


def _assert_header(msg_header: Header, header: Header) -> None:
    assert msg_header == header and msg_header is not header


def test_joints_carry_header_and_values(hands):
    header = _header()
    msg = conversions.joints_array(_frame(hands), header)
    _assert_header(msg.header, header)
    assert len(msg.hands) == 2
    for joints, hand in zip(msg.hands, hands, strict=True):
        assert (joints.side, joints.track_id) == (hand.side, hand.track_id)
        assert joints.score == pytest.approx(0.87, abs=1e-7)
        np.testing.assert_array_equal(
            joints.joints_3d, hand.keypoints_3d.astype(np.float32).ravel()
        )
        np.testing.assert_array_equal(
            joints.joints_2d, hand.keypoints_2d.astype(np.float32).ravel()
        )
        assert np.asarray(joints.joints_3d).reshape(21, 3)[0, 2] == pytest.approx(
            hand.keypoints_3d[0, 2], abs=1e-6
        )  # x y z order: the wrist's depth is the third value
    again = deserialize_message(serialize_message(msg), type(msg))
    np.testing.assert_array_equal(again.hands[1].joints_3d, msg.hands[1].joints_3d)


def test_joints_say_whether_the_aligned_depth_placed_each_hand(hands):
    from hand_mesh_ros.pipeline.types import DEPTH_DISAGREES, DEPTH_USED, HandDepth

    used = _with(hands[0], depth=HandDepth(True, DEPTH_USED, 0.8, residual_mm=3.0, scale=1.1))
    rejected = _with(hands[1], depth=HandDepth(False, DEPTH_DISAGREES, 0.6))
    msg = conversions.joints_array(_frame((used, rejected)), _header())
    assert [j.depth_used for j in msg.hands] == [True, False]
    rgb_only = conversions.joints_array(_frame(hands), _header())  # no depth: HandDepth None
    assert [j.depth_used for j in rgb_only.hands] == [False, False]
    again = deserialize_message(serialize_message(msg), type(msg))
    assert [j.depth_used for j in again.hands] == [True, False]


def test_mano_carries_parameters_and_model(hands):
    header = _header(sec=1, nanosec=2)
    msg = conversions.mano_array(_frame(hands), header)
    _assert_header(msg.header, header)
    for mano, hand in zip(msg.hands, hands, strict=True):
        assert (mano.side, mano.track_id, mano.model) == (hand.side, hand.track_id, "open_hand")
        for field in ("pose", "shape", "global_orient", "transl"):
            expected = getattr(hand, field).astype(np.float32)
            np.testing.assert_array_equal(getattr(mano, field), expected, err_msg=field)


def test_indexed_mesh_carries_vertices_and_triangles(hands):
    header = _header()
    msg = conversions.mesh_array(_frame(hands), header)
    _assert_header(msg.header, header)
    for mesh, hand in zip(msg.hands, hands, strict=True):
        assert (mesh.side, mesh.track_id, mesh.model) == (hand.side, hand.track_id, hand.model_name)
        vertices = np.frombuffer(mesh.vertices, np.float32).reshape(-1, 3)
        triangles = np.frombuffer(mesh.triangles, np.uint32).reshape(-1, 3)
        np.testing.assert_array_equal(vertices, hand.vertices.astype(np.float32))
        np.testing.assert_array_equal(triangles, hand.faces)
        assert vertices.shape == (900, 3) and triangles.shape == (1796, 3)
    again = deserialize_message(serialize_message(msg), type(msg))
    assert list(again.hands[0].triangles) == list(msg.hands[0].triangles)


def test_mesh_markers_are_deleteall_then_one_triangle_list_per_hand(hands):
    header = _header()
    msg = conversions.mesh_markers(_frame(hands), header)
    assert isinstance(msg, MarkerArray) and len(msg.markers) == 3
    first = msg.markers[0]
    assert first.action == Marker.DELETEALL and first.ns == "hand_mesh"
    _assert_header(first.header, header)
    from hand_mesh_ros.visualize import SIDE_COLORS  # one palette: overlay and RViz

    colors = {side: (*(np.array(rgb) / 255.0), 0.85) for side, rgb in SIDE_COLORS.items()}
    for index, (marker, hand) in enumerate(zip(msg.markers[1:], hands, strict=True)):
        _assert_header(marker.header, header)
        assert (marker.type, marker.action, marker.id, marker.ns) == (
            Marker.TRIANGLE_LIST, Marker.ADD, index, "hand_mesh"
        )  # fmt: skip
        pose = marker.pose
        assert (pose.position.x, pose.position.y, pose.position.z) == (0.0, 0.0, 0.0)
        assert (pose.orientation.x, pose.orientation.y, pose.orientation.z) == (0.0, 0.0, 0.0)
        assert pose.orientation.w == 1.0
        assert (marker.scale.x, marker.scale.y, marker.scale.z) == (1.0, 1.0, 1.0)
        color = (marker.color.r, marker.color.g, marker.color.b, marker.color.a)
        np.testing.assert_allclose(color, colors[hand.side], atol=1e-7)
        points = np.array([(p.x, p.y, p.z) for p in marker.points])
        np.testing.assert_array_equal(points, hand.vertices[hand.faces].reshape(-1, 3))
        assert len(marker.points) == 3 * 1796
        assert points[:, 2].min() > 0.3  # in front of the camera, metres
    assert msg.markers[1].color != msg.markers[2].color


def test_fast_points_equal_the_constructor_and_survive_the_wire(hands):
    xyz = hands[0].vertices[hands[0].faces].reshape(-1, 3)
    fast = conversions._points_from_slots(xyz)
    slow = conversions._points_from_constructor(xyz)
    assert all(type(p) is Point for p in fast)
    assert fast == slow
    assert repr(fast[7]) == repr(slow[7])
    marker = Marker(points=fast)
    again = deserialize_message(serialize_message(MarkerArray(markers=[marker])), MarkerArray)
    back = np.array([(p.x, p.y, p.z) for p in again.markers[0].points])
    np.testing.assert_array_equal(back, xyz)
    fast[0].x = 1.5  # the objects stay ordinary mutable messages
    assert fast[0] != slow[0] and fast[0].x == 1.5


def test_joint_markers_hold_joints_and_bones(hands):
    msg = conversions.joint_markers(_frame(hands), _header())
    assert msg.markers[0].action == Marker.DELETEALL and len(msg.markers) == 5
    spheres, bones = msg.markers[3], msg.markers[4]  # the second hand
    assert (spheres.type, spheres.id, bones.type, bones.id) == (
        Marker.SPHERE_LIST, 2, Marker.LINE_LIST, 3
    )  # fmt: skip
    keypoints = hands[1].keypoints_3d
    np.testing.assert_array_equal([(p.x, p.y, p.z) for p in spheres.points], keypoints)
    pairs = np.array([(p.x, p.y, p.z) for p in bones.points]).reshape(-1, 2, 3)
    assert len(pairs) == 20
    expected = [(parent, child) for child, parent in enumerate(KEYPOINT_PARENTS) if parent >= 0]
    for (start, end), (parent, child) in zip(pairs, expected, strict=True):
        np.testing.assert_array_equal(start, keypoints[parent])
        np.testing.assert_array_equal(end, keypoints[child])


def test_a_frame_without_hands_gives_empty_arrays():
    header = _header(sec=99)
    empty = _frame(())
    for convert in (conversions.joints_array, conversions.mano_array, conversions.mesh_array):
        msg = convert(empty, header)
        assert msg.hands == [] and msg.header == header
    for convert in (conversions.mesh_markers, conversions.joint_markers):
        markers = convert(empty, header).markers
        assert len(markers) == 1 and markers[0].action == Marker.DELETEALL
        assert markers[0].header == header


@pytest.mark.parametrize(
    ("field", "convert"),
    [
        ("keypoints_3d", conversions.joints_array),
        ("keypoints_2d", conversions.joints_array),
        ("pose", conversions.mano_array),
        ("transl", conversions.mano_array),
        ("vertices", conversions.mesh_array),
        ("vertices", conversions.mesh_markers),
        ("keypoints_3d", conversions.joint_markers),
    ],
)
def test_non_finite_results_raise_value_error(hands, field, convert):
    for bad in (np.nan, np.inf):
        values = getattr(hands[1], field).copy()
        values.flat[1] = bad
        result = _frame((hands[0], _with(hands[1], **{field: values})))
        with pytest.raises(ValueError, match=f"hand 1: {field} has 1 non-finite"):
            convert(result, _header())


def test_malformed_hands_raise_value_error(hands):
    cases = [
        ({"side": "middle"}, conversions.joints_array, "side must be 'left' or 'right'"),
        ({"score": float("nan")}, conversions.joints_array, "score is nan"),
        ({"keypoints_3d": np.zeros((20, 3))}, conversions.joints_array, r"expected \(21, 3\)"),
        ({"shape": np.zeros(9)}, conversions.mano_array, r"expected \(10\)"),
        ({"faces": hands[0].faces + 1}, conversions.mesh_markers, r"must be in \[0, 900\)"),
        ({"faces": hands[0].faces.astype(float)}, conversions.mesh_array, "integers"),
        ({"track_id": 2**40}, conversions.mano_array, "int32"),
    ]
    for change, convert, message in cases:
        with pytest.raises(ValueError, match=message):
            convert(_frame((_with(hands[0], **change),)), _header())


def test_diagnostics_status_and_values():
    stamp = Time(sec=12, nanosec=34)
    values = {"frames": 7, "fps": 29.97002997, "device": "cpu", "active": True, "drop": np.int64(2)}
    msg = conversions.diagnostic_array(
        stamp, hardware_id="cpu", values=values, level=DiagnosticStatus.WARN, message="slow"
    )
    assert msg.header.stamp == stamp and len(msg.status) == 1
    status = msg.status[0]
    assert (status.name, status.level, status.message, status.hardware_id) == (
        "hand_mesh_ros: estimator", DiagnosticStatus.WARN, "slow", "cpu"
    )  # fmt: skip
    pairs = [(kv.key, kv.value) for kv in status.values]
    assert pairs == [
        ("frames", "7"), ("fps", "29.97"), ("device", "cpu"), ("active", "true"), ("drop", "2")
    ]  # fmt: skip
    numeric = conversions.diagnostic_array(stamp, hardware_id="", values={}, level=2, message="")
    assert numeric.status[0].level == DiagnosticStatus.ERROR
    with pytest.raises(ValueError, match="diagnostic level"):
        conversions.diagnostic_array(stamp, hardware_id="", values={}, level=4, message="")
    with pytest.raises(TypeError, match="diagnostic values"):
        conversions.diagnostic_array(stamp, hardware_id="", values={"x": [1]}, level=0, message="")


def test_overlay_image_is_the_rendered_overlay(hands):
    image = np.full((IMAGE_H, IMAGE_W, 3), 60, np.uint8)
    header = _header(frame_id="overlay")
    msg = conversions.overlay_image(image, _frame(hands), header)
    assert (msg.encoding, msg.height, msg.width) == ("rgb8", IMAGE_H, IMAGE_W)
    _assert_header(msg.header, header)
    out = image_msg_to_rgb8(msg)
    np.testing.assert_array_equal(out, render_overlay(image, _frame(hands)))
    assert (out != 60).any(axis=2).mean() > 0.01  # the hands are drawn
    nan_vertices = hands[0].vertices.copy()
    nan_vertices[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        conversions.overlay_image(image, _frame((_with(hands[0], vertices=nan_vertices),)), header)
