"""The hand as a point cloud (issue 13): surface sampling, normals and inflation on the bundled
open hand model, and ``hand/points`` PointCloud2 messages built by sensor_msgs_py and by the
numpy fallback (same bytes), read back with ``read_points``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from builtin_interfaces.msg import Time
from geometry_reference import (
    nearest_face,
    point_triangle_distance,
    slow_point_triangle_distance,
    surface_distance,
)
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from hand_mesh_ros.handmodel.mesh_checks import signed_volume
from hand_mesh_ros.handmodel.model import load_hand_model
from hand_mesh_ros.render.geometry import vertex_normals as torch_vertex_normals
from hand_mesh_ros.ros import point_cloud
from hand_mesh_ros.ros.point_cloud import (
    CLOUD_DTYPE,
    HAVE_SENSOR_MSGS_PY,
    POINT_STEP,
    HandPoints,
    cloud_fields,
    points_cloud,
    read_cloud,
)
from hand_mesh_ros.surface_points import (
    face_normals,
    hand_points,
    sample_surface,
    vertex_normals,
)

if HAVE_SENSOR_MSGS_PY:
    from sensor_msgs_py import point_cloud2 as pc2

needs_pc2 = pytest.mark.skipif(
    not HAVE_SENSOR_MSGS_PY,
    reason="sensor_msgs_py not importable (tools/install_shared_wheels.sh installs the wheel)",
)
HEADER = Header(stamp=Time(sec=1700000000, nanosec=123456789), frame_id="camera_optical_frame")
INFLATE_M = 0.01  # a 1 cm safety margin
SAMPLES = 2000  # points per hand, as in the issue


def cube(size: float = 0.04):
    """Closed cube, 12 triangles counter-clockwise seen from outside; a convex test mesh."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float) * size
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [tri for q in quads for tri in ((q[0], q[1], q[2]), (q[0], q[2], q[3]))]
    return corners, np.array(faces, dtype=np.int64)


@pytest.fixture(scope="module")
def hands():
    """The bundled open hand model at zero pose, both sides: side -> (vertices float64, faces)."""
    out = {}
    for side, transl in (("right", (0.0, 0.0, 0.5)), ("left", (0.18, 0.02, 0.6))):
        model = load_hand_model(side, dtype=torch.float64)
        with torch.inference_mode():
            vertices = model(transl=torch.tensor([transl], dtype=torch.float64)).vertices[0]
        out[side] = (vertices.numpy(), model.faces.numpy())
    return out


# --- the references themselves ---------------------------------------------------------------


def test_point_triangle_distance_matches_slow_reference():
    rng = np.random.default_rng(1)
    tri = rng.normal(size=(20, 3, 3))
    points = rng.normal(size=(50, 3)) * 1.5
    fast = point_triangle_distance(points, tri[:, 0], tri[:, 1], tri[:, 2])
    slow = np.array([[slow_point_triangle_distance(p, *t) for t in tri] for p in points])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


# --- normals ---------------------------------------------------------------------------------


def test_vertex_normals_are_unit_outward_and_match_the_torch_renderer(hands):
    for side, (vertices, faces) in hands.items():
        normals = vertex_normals(vertices, faces)
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-12)
        reference = torch_vertex_normals(torch.from_numpy(vertices)[None], torch.from_numpy(faces))
        np.testing.assert_allclose(normals, reference[0].numpy(), atol=1e-12, err_msg=side)
        # outward: moving every vertex out by d grows the enclosed volume, to first order by
        # d * sum_f area_f * n_f . (mean normal of f's corners), a little below area * d
        a, b, c = (vertices[faces[:, k]] for k in range(3))
        cross = np.cross(b - a, c - a)
        first_order = 0.5 * (cross * normals[faces].mean(1)).sum()
        area = 0.5 * np.linalg.norm(cross, axis=1).sum()
        assert 0.9 * area < first_order < area, side
        d = 1e-4
        grown = signed_volume(vertices + d * normals, faces) - signed_volume(vertices, faces)
        assert grown == pytest.approx(first_order * d, rel=0.01), side


def octahedron(radius: float = 0.03):
    """Regular octahedron (vertices +-radius on the axes), counter-clockwise from outside."""
    vertices = np.concatenate([np.eye(3), -np.eye(3)]) * radius
    faces = []
    for sx in (1, -1):
        for sy in (1, -1):
            for sz in (1, -1):
                tri = [0 if sx > 0 else 3, 1 if sy > 0 else 4, 2 if sz > 0 else 5]
                faces.append(tri if sx * sy * sz > 0 else tri[::-1])
    return vertices, np.array(faces, dtype=np.int64)


def test_vertex_normals_of_an_octahedron_point_along_the_axes_and_flip_with_winding():
    vertices, faces = octahedron()
    assert signed_volume(vertices, faces) > 0
    axes = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    np.testing.assert_allclose(vertex_normals(vertices, faces), axes, atol=1e-12)
    np.testing.assert_allclose(vertex_normals(vertices, faces[:, ::-1]), -axes, atol=1e-12)
    centres = vertices[faces].mean(1)
    expected = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    np.testing.assert_allclose(face_normals(vertices, faces), expected, atol=1e-12)


def test_unused_vertices_and_degenerate_faces_get_zero_normals():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5], [2, 0, 0]], float)
    faces = np.array([[0, 1, 2], [0, 1, 4]])  # the second is a zero-area sliver on the x axis
    np.testing.assert_allclose(face_normals(vertices, faces), [[0, 0, 1], [0, 0, 0]])
    np.testing.assert_allclose(
        vertex_normals(vertices, faces)[[0, 3, 4]], [[0, 0, 1], [0] * 3, [0] * 3]
    )


# --- sampling --------------------------------------------------------------------------------


def test_sampled_points_lie_on_the_hand_surface(hands):
    for side, (vertices, faces) in hands.items():
        points, normals = sample_surface(vertices, faces, SAMPLES, seed=3)
        assert points.shape == normals.shape == (SAMPLES, 3)
        assert surface_distance(points, vertices, faces).max() < 1e-12, side
        published = hand_points(vertices, faces, count=SAMPLES, seed=3)
        assert published.dtype == np.float32
        assert surface_distance(published, vertices, faces).max() < 1e-6, side  # float32 rounding


def test_sampled_normals_are_the_normals_of_the_faces_the_points_lie_on(hands):
    vertices, faces = hands["right"]
    points, normals = sample_surface(vertices, faces, 500, seed=4)
    unit = face_normals(vertices, faces)[nearest_face(points, vertices, faces)]
    # a point on a shared edge may name either face: compare where the nearest face is unique
    agree = np.abs(normals - unit).max(1) < 1e-9
    assert agree.mean() > 0.99


def test_face_counts_follow_area_within_one_stratum_on_the_hand(hands):
    vertices, faces = hands["right"]
    points, _ = sample_surface(vertices, faces, SAMPLES, seed=5)
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    expected = SAMPLES * area / area.sum()  # ~1.1 per face
    counts = np.bincount(nearest_face(points, vertices, faces), minlength=len(faces))
    # stratified: an area fraction of L strata receives within 2 of L points (i.i.d. draws
    # would give several of the 1,796 faces 3 or more points above or below their share)
    assert np.abs(counts - expected).max() < 2.0


def test_a_big_and_a_small_triangle_get_points_in_proportion_to_area():
    vertices = np.array(
        [[0, 0, 0], [3, 0, 0], [0, 3, 0], [10, 0, 0], [11, 0, 0], [10, 1, 0]], float
    )
    faces = np.array([[0, 1, 2], [3, 4, 5]])  # areas 4.5 and 0.5: 90% and 10%
    for seed in range(5):
        points, _ = sample_surface(vertices, faces, 10_000, seed=seed)
        on_small = int((points[:, 0] >= 10.0 - 1e-12).sum())
        assert abs(on_small - 1000) <= 1, (seed, on_small)


def test_points_are_uniform_within_a_triangle():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    points, _ = sample_surface(vertices, np.array([[0, 1, 2]]), 40_000, seed=6)
    # the four midpoint sub-triangles have equal area: chi-square with 3 degrees of freedom
    x, y = points[:, 0], points[:, 1]
    corner = np.select([x > 0.5, y > 0.5, x + y < 0.5], [0, 1, 2], default=3)
    counts = np.bincount(corner, minlength=4)
    chi2 = float(((counts - 10_000) ** 2 / 10_000).sum())
    assert chi2 < 16.3, counts  # p = 0.001; without the sqrt, the corner at 0 gets ~2x too many
    assert np.all(x >= 0) and np.all(y >= 0) and np.all(x + y <= 1 + 1e-12)


def test_sampling_is_deterministic_per_seed(hands):
    vertices, faces = hands["left"]
    first = hand_points(vertices, faces, count=SAMPLES, seed=11)
    np.testing.assert_array_equal(first, hand_points(vertices, faces, count=SAMPLES, seed=11))
    other = hand_points(vertices, faces, count=SAMPLES, seed=12)
    assert np.abs(first - other).max() > 1e-3
    global_state = np.random.get_state()[1].copy()
    hand_points(vertices, faces, count=10, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], global_state)  # no global RNG


def test_zero_degenerate_faces_are_never_sampled():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0]], float)
    faces = np.array([[0, 1, 3], [0, 1, 2], [1, 3, 0]])  # first and last have no area
    points, normals = sample_surface(vertices, faces, 1000, seed=0)
    np.testing.assert_allclose(normals, np.tile([0.0, 0.0, 1.0], (1000, 1)))
    assert np.all(points[:, 1] >= 0) and np.all(points.sum(1) <= 1 + 1e-12)


def test_count_zero_gives_the_mesh_vertices(hands):
    vertices, faces = hands["right"]
    points = hand_points(vertices, faces)
    assert points.dtype == np.float32 and points.shape == vertices.shape
    np.testing.assert_array_equal(points, vertices.astype(np.float32))
    empty, empty_normals = sample_surface(vertices, faces, 0, seed=0)
    assert empty.shape == empty_normals.shape == (0, 3)


# --- inflation -------------------------------------------------------------------------------


def test_inflated_cube_points_are_exactly_inflate_m_outside_the_surface():
    vertices, faces = cube()
    assert signed_volume(vertices, faces) > 0  # outward winding
    points = hand_points(vertices, faces, count=3000, inflate_m=INFLATE_M, seed=2)
    # convex: the distance to the surface is the largest signed distance to a face plane
    # when the point lies off a face along its normal -- the same d for both measures
    distance = surface_distance(points, vertices, faces)
    np.testing.assert_allclose(distance, INFLATE_M, rtol=0, atol=1e-6)
    n = face_normals(vertices, faces)
    signed = ((points[:, None, :] - vertices[faces[:, 0]][None]) * n[None]).sum(-1).max(1)
    np.testing.assert_allclose(signed, INFLATE_M, rtol=0, atol=1e-6)  # > 0: outside


def test_inflated_hand_points_move_by_inflate_m_along_the_outward_normal(hands):
    for side, (vertices, faces) in hands.items():
        base, normals = sample_surface(vertices, faces, SAMPLES, seed=8)
        moved = hand_points(vertices, faces, count=SAMPLES, inflate_m=INFLATE_M, seed=8)
        np.testing.assert_allclose(moved, base + INFLATE_M * normals, rtol=0, atol=1e-6)
        distance = surface_distance(moved, vertices, faces)
        # never farther than d; exactly d wherever the hand is locally convex (most of it)
        assert distance.max() <= INFLATE_M + 1e-6, side
        assert np.mean(np.abs(distance - INFLATE_M) < 1e-6) > 0.5, side
        # outward: points end up in front of their face, not behind it
        shift = ((moved - base) * normals).sum(1)
        np.testing.assert_allclose(shift, INFLATE_M, rtol=0, atol=1e-6)


def test_inflated_vertices_move_along_the_vertex_normals(hands):
    vertices, faces = hands["right"]
    moved = hand_points(vertices, faces, inflate_m=INFLATE_M)
    step = moved - vertices
    np.testing.assert_allclose(np.linalg.norm(step, axis=1), INFLATE_M, rtol=0, atol=1e-6)
    np.testing.assert_allclose(step / INFLATE_M, vertex_normals(vertices, faces), atol=1e-4)
    assert signed_volume(moved.astype(np.float64), faces) > signed_volume(vertices, faces)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": -1}, "count must be >= 0"),
        ({"count": 2.5}, "count must be an integer"),
        ({"count": True}, "count must be an integer"),
        ({"inflate_m": -0.01}, "inflate_m must be finite and >= 0"),
        ({"inflate_m": float("nan")}, "inflate_m must be finite and >= 0"),
        ({"inflate_m": float("inf")}, "inflate_m must be finite and >= 0"),
        ({"count": 5, "seed": 1.5}, "seed must be an integer"),
    ],
)
def test_hand_points_rejects_bad_arguments(kwargs, message):
    vertices, faces = cube()
    with pytest.raises(ValueError, match=message):
        hand_points(vertices, faces, **kwargs)


def test_hand_points_rejects_bad_meshes():
    vertices, faces = cube()
    bad = vertices.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="vertex 3"):
        hand_points(bad, faces)
    with pytest.raises(ValueError, match=r"shape \(V, 3\)"):
        hand_points(vertices[:, :2], faces)
    with pytest.raises(ValueError, match=r"shape \(F, 3\)"):
        hand_points(vertices, faces.ravel())
    with pytest.raises(ValueError, match="face indices must lie in"):
        hand_points(vertices, faces + 1)
    with pytest.raises(ValueError, match="integer vertex indices"):
        hand_points(vertices, faces.astype(float))
    with pytest.raises(ValueError, match="without surface area"):
        hand_points(vertices, np.zeros((0, 3), int), count=3)
    with pytest.raises(ValueError, match="without surface area"):
        hand_points(np.zeros((3, 3)), np.array([[0, 1, 2]]), count=3)


# --- PointCloud2 -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame(hands):
    """Two hands as the node would publish them: sampled + inflated right, vertices of left."""
    right_v, right_f = hands["right"]
    left_v, left_f = hands["left"]
    return (
        HandPoints(3, "right", hand_points(right_v, right_f, count=SAMPLES, inflate_m=0.005)),
        HandPoints(-7, "left", hand_points(left_v, left_f)),
    )


@pytest.mark.parametrize("backend", ["numpy", pytest.param("sensor_msgs_py", marks=needs_pc2)])
def test_cloud_layout(frame, backend):
    msg = points_cloud(frame, HEADER, backend=backend)
    n = SAMPLES + len(frame[1].points)
    assert isinstance(msg, PointCloud2)
    assert msg.header.stamp == HEADER.stamp and msg.header.frame_id == "camera_optical_frame"
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, n, 20, 20 * n)
    assert msg.is_dense is True and msg.is_bigendian is False
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
        ("hand", 12, PointField.INT32, 1),
        ("side", 16, PointField.UINT8, 1),
    ]
    raw = np.frombuffer(msg.data, dtype=np.uint8).reshape(n, POINT_STEP)
    assert not raw[:, 17:].any()  # padding bytes are zero, so the bytes are reproducible
    xyz = raw[:, :12].copy().view("<f4")
    np.testing.assert_array_equal(xyz, np.concatenate([h.points for h in frame]))
    np.testing.assert_array_equal(
        raw[:, 12:16].copy().view("<i4")[:, 0], [3] * SAMPLES + [-7] * 900
    )
    np.testing.assert_array_equal(raw[:, 16], [0] * SAMPLES + [1] * 900)


@needs_pc2
def test_sensor_msgs_py_and_numpy_build_the_same_message(frame):
    assert pc2.dtype_from_fields(cloud_fields(), point_step=POINT_STEP) == CLOUD_DTYPE
    for hands in (frame, frame[:1], ()):
        with_pc2 = points_cloud(hands, HEADER, backend="sensor_msgs_py")
        with_numpy = points_cloud(hands, HEADER, backend="numpy")
        assert bytes(with_pc2.data) == bytes(with_numpy.data)
        assert with_pc2.fields == with_numpy.fields
        assert with_pc2.point_step == with_numpy.point_step == POINT_STEP
        assert with_pc2 == with_numpy  # every field of the message, header included
        assert points_cloud(hands, HEADER) == with_pc2  # auto picks sensor_msgs_py


@needs_pc2
def test_layout_agrees_with_create_cloud_from_plain_tuples(frame):
    """sensor_msgs_py's documented input (one tuple per point) places every field where we do;
    it leaves the padding bytes uninitialised, so only the 17 field bytes are compared."""
    tuples = [
        (*map(float, p), hand.track_id, 0 if hand.side == "right" else 1)
        for hand in frame
        for p in hand.points
    ]
    reference = pc2.create_cloud(HEADER, cloud_fields(), tuples, point_step=POINT_STEP)
    ours = points_cloud(frame, HEADER, backend="numpy")
    n = len(tuples)
    ref_raw = np.frombuffer(reference.data, dtype=np.uint8).reshape(n, POINT_STEP)
    our_raw = np.frombuffer(ours.data, dtype=np.uint8).reshape(n, POINT_STEP)
    np.testing.assert_array_equal(ref_raw[:, :17], our_raw[:, :17])


@pytest.mark.parametrize("backend", ["numpy", pytest.param("sensor_msgs_py", marks=needs_pc2)])
def test_round_trip_gives_back_points_hand_and_side(frame, backend):
    msg = points_cloud(frame, HEADER, backend=backend)
    readers = [lambda m: read_cloud(m, backend="numpy")]
    if HAVE_SENSOR_MSGS_PY:
        readers.append(pc2.read_points)
    for read in readers:
        cloud = read(msg)
        assert cloud.dtype == CLOUD_DTYPE and cloud.shape == (msg.width,)
        xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1)
        np.testing.assert_array_equal(xyz, np.concatenate([h.points for h in frame]))
        np.testing.assert_array_equal(cloud["hand"], np.repeat([3, -7], [SAMPLES, 900]))
        np.testing.assert_array_equal(cloud["side"], np.repeat([0, 1], [SAMPLES, 900]))


def test_cloud_survives_cdr_serialisation(frame):
    """What a subscriber in another process receives: rclpy's serialiser accepts the message."""
    msg = points_cloud(frame, HEADER)
    back = deserialize_message(serialize_message(msg), PointCloud2)
    assert back == msg
    np.testing.assert_array_equal(read_cloud(back, backend="numpy")["hand"][-1], -7)


def test_round_trip_points_lie_on_the_mesh(hands):
    vertices, faces = hands["right"]
    msg = points_cloud([HandPoints(1, "right", hand_points(vertices, faces, count=500))], HEADER)
    cloud = read_cloud(msg)
    xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1)
    assert surface_distance(xyz, vertices, faces).max() < 1e-6


@needs_pc2
def test_read_cloud_reads_a_camera_cloud_like_read_points():
    """A depth camera's layout (x y z, padding, rgb packed in a float, point_step 32, an
    array field and an unnamed one): the numpy reader builds sensor_msgs_py's dtype."""
    fields = [
        PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
        PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
        PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
        PointField(name="rgb", offset=16, datatype=PointField.FLOAT32, count=1),
        PointField(name="normal", offset=20, datatype=PointField.INT16, count=3),
        PointField(name="", offset=26, datatype=PointField.UINT8, count=1),
    ]
    dtype = pc2.dtype_from_fields(fields, point_step=32)
    rng = np.random.default_rng(0)
    raw = np.zeros(12, dtype)
    for name in dtype.names:
        raw[name] = rng.integers(0, 100, size=12)
    raw["z"][3] = np.nan
    msg = pc2.create_cloud(HEADER, fields, raw, point_step=32)
    expected = pc2.read_points(msg)
    ours = read_cloud(msg, backend="numpy")
    assert ours.dtype == expected.dtype
    assert ours.dtype.names[-1] == "unnamed_field_5" and "normal_2" in ours.dtype.names
    assert ours.tobytes() == expected.tobytes()  # structured == would fail on the NaN
    assert np.isnan(ours["z"][3])


@pytest.mark.parametrize("backend", ["numpy", pytest.param("sensor_msgs_py", marks=needs_pc2)])
def test_empty_frame_gives_a_valid_empty_cloud(backend):
    for hands in ((), (HandPoints(0, "left", np.zeros((0, 3))),)):
        msg = points_cloud(hands, HEADER, backend=backend)
        assert (msg.height, msg.width, msg.row_step, msg.point_step) == (1, 0, 0, POINT_STEP)
        assert len(msg.data) == 0 and msg.is_dense and len(msg.fields) == 5
        assert msg.header.frame_id == HEADER.frame_id
        cloud = read_cloud(msg, backend=backend)
        assert cloud.shape == (0,) and cloud.dtype == CLOUD_DTYPE


def test_hand_points_validates_and_copies():
    source = np.zeros((4, 3))
    hand = HandPoints(np.int64(5), "right", source)
    source[0, 0] = 1.0
    assert hand.points.dtype == np.float32 and hand.points[0, 0] == 0.0
    assert type(hand.track_id) is int and not hand.points.flags.writeable
    for args, message in [
        ((1, "middle", source), "side must be one of"),
        ((2**31, "left", source), "does not fit in int32"),
        ((True, "left", source), "track_id must be an integer"),
        ((1, "left", source[:, :2]), r"must be \(N, 3\)"),
        ((1, "left", np.full((2, 3), np.inf)), "NaN or infinity"),
    ]:
        with pytest.raises(ValueError, match=message):
            HandPoints(*args)


def test_bad_backends_and_inputs_are_rejected(frame, monkeypatch):
    with pytest.raises(ValueError, match="backend must be one of"):
        points_cloud(frame, HEADER, backend="pcl")
    with pytest.raises(ValueError, match="must be a HandPoints"):
        points_cloud([(3, "right", np.zeros((2, 3)))], HEADER)
    short = points_cloud(frame, HEADER, backend="numpy")
    short.width += 1
    with pytest.raises(ValueError, match="fewer than width"):
        read_cloud(short)
    monkeypatch.setattr(point_cloud, "HAVE_SENSOR_MSGS_PY", False)
    with pytest.raises(ImportError, match="sensor_msgs_py is not importable"):
        points_cloud(frame, HEADER, backend="sensor_msgs_py")
    # auto falls back to numpy and still gives the documented message
    assert points_cloud(frame, HEADER).is_dense
