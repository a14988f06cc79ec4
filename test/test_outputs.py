"""Result files: the JSON schema, PLY meshes parsed back, overlays, write_frame's file set."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from helpers import assert_close

from hand_mesh_ros.camera import project
from hand_mesh_ros.handmodel.model import load_hand_model
from hand_mesh_ros.outputs import (
    dumps,
    frame_to_json,
    mesh_file_names,
    render_overlay,
    write_frame,
    write_ply,
)
from hand_mesh_ros.pipeline.types import (
    DEPTH_TOO_FEW,
    DEPTH_USED,
    CameraIntrinsics,
    FrameResult,
    HandDepth,
    HandEstimate,
)

HEIGHT, WIDTH = 240, 400
CAMERA = CameraIntrinsics(300.0, 300.0, 199.5, 119.5, assumed=False)
DEPTH = 0.6  # metres from the camera to the hand's centroid
GREY = 90


def _hand(side: str, x_offset: float, track_id: int) -> HandEstimate:
    """A real model hand (mean shape, a little pose) centred DEPTH in front of the camera."""
    model = load_hand_model("right", dtype=torch.float64)
    pose = 0.1 * torch.randn(1, 45, dtype=torch.float64)
    with torch.no_grad():
        rest = model(pose=pose).vertices[0]
        transl = torch.tensor([[x_offset, 0.0, DEPTH]], dtype=torch.float64) - rest.mean(0)
        out = model(pose=pose, transl=transl)
    kp3d = out.keypoints[0]
    kp2d = project(kp3d[None], CAMERA.matrix(dtype=torch.float64))[0]
    return HandEstimate(
        side=side, score=0.9, track_id=track_id,
        keypoints_2d=kp2d.numpy(), detected_keypoints_2d=kp2d.numpy() + 1.0,
        keypoints_3d=kp3d.numpy(), pose=pose[0].numpy(), shape=np.zeros(10),
        global_orient=np.zeros(3), transl=transl[0].numpy(),
        vertices=out.vertices[0].numpy(), faces=model.faces.numpy(),
        model_name=model.name, refine_iterations=7, refine_loss=0.25, keypoint_error_px=1.5,
    )


@pytest.fixture(scope="module")
def hands() -> tuple[HandEstimate, HandEstimate]:
    torch.manual_seed(1)
    return _hand("left", -0.1, 0), _hand("right", 0.1, 1)


def _frame(hands) -> FrameResult:
    timings = {"detect": 1.0, "total": 2.0}
    return FrameResult(WIDTH, HEIGHT, CAMERA, tuple(hands), timings)


def _grey_image() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)


def _assert_numbers(value, shape: tuple[int, ...], what: str) -> None:
    array = np.array(value, dtype=object)
    assert array.shape == shape, f"{what}: shape {array.shape} != {shape}"
    for x in array.ravel():
        assert type(x) is float and math.isfinite(x), f"{what}: {x!r} is not a finite float"


def test_frame_json_schema_and_values(hands):
    data = frame_to_json(_frame(hands), "img.png", mesh_file_names("img", 2))
    assert data["image"] == "img.png"
    assert (data["width"], data["height"]) == (WIDTH, HEIGHT)
    assert type(data["width"]) is int and type(data["height"]) is int
    assert data["camera"] == {**CAMERA.as_dict(), "assumed": False}
    assert all(type(data["camera"][k]) is float for k in ("fx", "fy", "cx", "cy"))
    assert len(data["hands"]) == 2
    for i, (entry, hand) in enumerate(zip(data["hands"], hands, strict=True)):
        assert entry["side"] == hand.side and entry["track_id"] == i
        assert type(entry["track_id"]) is int and type(entry["score"]) is float
        assert entry["mesh"] == f"img_hand{i}.ply"
        _assert_numbers(entry["keypoints_2d"], (21, 2), "keypoints_2d")
        _assert_numbers(entry["keypoints_3d"], (21, 3), "keypoints_3d")
        for key, size in (("pose", 45), ("shape", 10), ("global_orient", 3), ("transl", 3)):
            _assert_numbers(entry["mano"][key], (size,), key)
        assert_close(entry["keypoints_3d"], hand.keypoints_3d, atol=0.0, what="kp3d")
        assert_close(entry["keypoints_2d"], hand.keypoints_2d, atol=0.0, what="kp2d")
        assert_close(entry["mano"]["pose"], hand.pose, atol=0.0, what="pose")
        assert entry["refine"] == {"iterations": 7, "loss": 0.25, "keypoint_error_px": 1.5}
        assert entry["depth_used"] is False and "depth" not in entry  # no depth image
    assert data["depth_given"] is False
    # the text form parses back (strictly) to the same object
    assert json.loads(dumps(data), parse_constant=_reject) == data


def test_depth_fields_say_how_each_hand_used_the_depth(hands):
    used = HandDepth(True, DEPTH_USED, 0.875, residual_mm=3.25, scale=1.125)
    unused = HandDepth(False, DEPTH_TOO_FEW, 0.0625)  # residual nan: null in the JSON
    with_depth = [HandEstimate(**{**h.__dict__, "depth": d})
                  for h, d in zip(hands, (used, unused), strict=True)]
    frame = FrameResult(WIDTH, HEIGHT, CAMERA, tuple(with_depth), {}, depth_given=True)
    data = frame_to_json(frame, "d.png", mesh_file_names("d", 2))
    assert data["depth_given"] is True
    first, second = data["hands"]
    assert first["depth_used"] is True
    assert first["depth"] == {"status": "used", "valid_fraction": 0.875, "residual_mm": 3.25,
                              "scale": 1.125}
    assert second["depth_used"] is False
    assert second["depth"] == {"status": DEPTH_TOO_FEW, "valid_fraction": 0.0625,
                               "residual_mm": None, "scale": 1.0}
    assert json.loads(dumps(data), parse_constant=_reject) == data


def _reject(token):
    raise AssertionError(f"non-standard JSON constant {token}")


def test_non_finite_numbers_become_null(hands):
    hand = hands[0]
    bad = HandEstimate(**{**hand.__dict__, "refine_loss": float("nan"),
                          "shape": np.array([np.inf] + [0.0] * 9)})
    data = frame_to_json(_frame([bad]), "x.png", ["x_hand0.ply"])
    assert data["hands"][0]["refine"]["loss"] is None
    assert data["hands"][0]["mano"]["shape"][0] is None
    assert data["hands"][0]["mano"]["shape"][1] == 0.0
    assert json.loads(dumps(data), parse_constant=_reject) == data


def test_frame_json_rejects_wrong_names_and_shapes(hands):
    with pytest.raises(ValueError, match="mesh names"):
        frame_to_json(_frame(hands), "x.png", ["only_one.ply"])
    short = HandEstimate(**{**hands[0].__dict__, "pose": np.zeros(44)})
    with pytest.raises(ValueError, match=r"\(45,\)"):
        frame_to_json(_frame([short]), "x.png", ["x_hand0.ply"])


def _read_ply(path) -> tuple[np.ndarray, np.ndarray]:
    """A minimal PLY reader for the files write_ply produces (checks the header too)."""
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").splitlines()
    assert header[0] == "ply"
    fmt = header[1].split()[1]
    elements = [line.split() for line in header if line.startswith("element")]
    counts = {name: int(count) for _, name, count in elements}
    nv, nf = counts["vertex"], counts["face"]
    body = raw[end:]
    if fmt == "ascii":
        rows = body.decode("ascii").split("\n")
        verts = np.array([[float(x) for x in r.split()] for r in rows[:nv]])
        faces = np.array([[int(x) for x in r.split()] for r in rows[nv:nv + nf]])
        assert (faces[:, 0] == 3).all()
        return verts, faces[:, 1:]
    assert fmt == "binary_little_endian"
    verts = np.frombuffer(body[: nv * 12], dtype="<f4").reshape(nv, 3)
    face_dtype = np.dtype([("n", "u1"), ("idx", "<i4", (3,))])
    rows = np.frombuffer(body[nv * 12:], dtype=face_dtype)
    assert len(rows) == nf and (rows["n"] == 3).all()
    return verts.astype(np.float64), rows["idx"].astype(np.int64)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip(tmp_path, hands, binary):
    hand = hands[1]
    path = tmp_path / "hand.ply"
    write_ply(path, hand.vertices, hand.faces, binary=binary)
    verts, faces = _read_ply(path)
    assert verts.shape == hand.vertices.shape and faces.shape == hand.faces.shape
    assert_close(verts, hand.vertices, atol=1e-6, what="vertices")  # float32 / 7 digits
    np.testing.assert_array_equal(faces, hand.faces)


def test_ply_rejects_bad_faces(tmp_path):
    verts = np.zeros((3, 3))
    with pytest.raises(ValueError, match="face indices"):
        write_ply(tmp_path / "bad.ply", verts, np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match="faces must be"):
        write_ply(tmp_path / "bad.ply", verts, np.array([[0.0, 1.0, 2.0]]))


def _projected_box(hand: HandEstimate, margin: int) -> tuple[slice, slice]:
    uv = project(torch.as_tensor(hand.vertices)[None], CAMERA.matrix(dtype=torch.float64))[0]
    lo = np.floor(uv.min(0).values.numpy()).astype(int) - margin
    hi = np.ceil(uv.max(0).values.numpy()).astype(int) + margin
    return slice(max(lo[1], 0), hi[1] + 1), slice(max(lo[0], 0), hi[0] + 1)


def test_overlay_draws_meshes_by_side_and_leaves_far_pixels(hands):
    image = _grey_image()
    out = render_overlay(image, _frame(hands))
    assert out.shape == image.shape and out.dtype == np.uint8
    changed = (out != image).any(axis=2)
    near = np.zeros_like(changed)
    for hand in hands:
        rows, cols = _projected_box(hand, margin=4)  # keypoint dots stay within a few px
        near[rows, cols] = True
        box = changed[rows, cols]
        assert box.mean() > 0.3, f"{hand.side}: only {box.mean():.2f} of its box was drawn"
    assert near.mean() < 0.8 and not changed[~near].any(), "pixels far from the hands changed"
    # color by side: left is orange (R > B), right is blue (B > R) where the mesh was drawn
    for hand in hands:
        rows, cols = _projected_box(hand, margin=0)
        patch = out[rows, cols].astype(int)
        drawn = changed[rows, cols]
        blue_minus_red = np.median((patch[..., 2] - patch[..., 0])[drawn])  # skeleton aside
        expected_sign = 1 if hand.side == "right" else -1
        assert expected_sign * blue_minus_red > 20, (hand.side, blue_minus_red)
    # the fitted keypoints are drawn on top: the wrist dot is white
    u, v = np.round(hands[0].keypoints_2d[0]).astype(int)
    assert (out[v, u] > 200).all()


def test_overlay_rejects_a_wrong_image(hands):
    with pytest.raises(ValueError, match="uint8"):
        render_overlay(np.zeros((HEIGHT, WIDTH + 1, 3), np.uint8), _frame(hands))


def test_write_frame_file_set(tmp_path, hands):
    image = _grey_image()
    files = write_frame(tmp_path, "f", image, _frame(hands), "f.png", extra={"frame": 3})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["f.json", "f_hand0.ply", "f_hand1.ply", "f_overlay.png"]
    data = json.loads(files.json.read_text())
    assert data["frame"] == 3 and [h["mesh"] for h in data["hands"]] == names[1:3]
    overlay = cv2.cvtColor(cv2.imread(str(files.overlay)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(overlay, render_overlay(image, _frame(hands)))


def test_write_frame_without_hands(tmp_path):
    image = _grey_image()
    image[10:20, 30:50] = (200, 10, 10)
    files = write_frame(tmp_path, "empty", image, _frame([]), "empty.png")
    assert files.meshes == ()
    assert json.loads(files.json.read_text())["hands"] == []
    overlay = cv2.cvtColor(cv2.imread(str(files.overlay)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(overlay, image)
