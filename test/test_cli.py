"""``hand-mesh estimate`` end to end on real images (the real estimator), bad inputs, a video
with tracking, intrinsics flags and usage errors."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import struct

import cv2
import numpy as np
import pytest
from helpers import SHARED_DATA

from hand_mesh_ros.cli import main, unique_stem

HANDS = SHARED_DATA / "hands"
ITERATIONS = "10"  # refinement iterations: enough for the keypoints, quick on a CPU
MAX_MEAN_ERROR_PX = 15.0  # fitted vs annotated 2D keypoints, visible joints
BAD_FILES = ("not_an_image.jpg", "tiny.png", "huge.png")
HUGE = (10_000, 6_000)  # 60 MP, over imageio.MAX_PIXELS (refused from the PNG header)


def _annotations() -> dict[str, dict]:
    if not HANDS.is_dir():
        return {}
    lines = (HANDS / "annotations.jsonl").read_text().splitlines()
    return {record["image"]: record for record in map(json.loads, lines)}


ANNOTATIONS = _annotations()


def _read_bgr(name: str) -> np.ndarray:
    image = cv2.imread(str(HANDS / name), cv2.IMREAD_COLOR)
    assert image is not None, name
    return image


def _make_inputs(folder) -> dict[str, str]:
    """Input files -> the annotation they show (stems are the keys' stems)."""
    folder.mkdir()
    shown = {}
    for name in ("images/RHD/00111.png", "images/FreiHAND/00017620.jpg"):
        target = folder / name.rsplit("/", 1)[1]
        shutil.copy(HANDS / name, target)
        shown[target.name] = name
    cv2.imwrite(str(folder / "grey.png"),
                cv2.cvtColor(_read_bgr("images/RHD/11111.png"), cv2.COLOR_BGR2GRAY))
    shown["grey.png"] = "images/RHD/11111.png"
    bgr = _read_bgr("images/FreiHAND/00082740.jpg")
    alpha = np.full(bgr.shape[:2] + (1,), 255, np.uint8)
    cv2.imwrite(str(folder / "rgba.png"), np.concatenate([bgr, alpha], axis=2))
    shown["rgba.png"] = "images/FreiHAND/00082740.jpg"
    cv2.imwrite(str(folder / "deep.png"), _read_bgr("images/RHD/01111.png").astype(np.uint16) * 257)
    shown["deep.png"] = "images/RHD/01111.png"
    (folder / "not_an_image.jpg").write_text("this is text, not a JPEG\n")
    cv2.imwrite(str(folder / "tiny.png"), np.full((10, 10, 3), 128, np.uint8))
    # only the header of a huge PNG: its size alone must get it refused, without decoding
    ihdr = struct.pack(">II5B", *HUGE, 8, 2, 0, 0, 0)
    (folder / "huge.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4
    )
    return shown


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    if not HANDS.is_dir():
        pytest.skip(f"{HANDS} (shared data) is absent")
    """One run over a folder of good and bad images plus a missing path."""
    root = tmp_path_factory.mktemp("cli_images")
    shown = _make_inputs(root / "in")
    out = root / "out"
    errors = io.StringIO()  # mediapipe's native logs go to fd 2 directly, not here
    with contextlib.redirect_stderr(errors):
        status = main(["estimate", str(root / "in"), str(root / "missing.png"), "--out", str(out),
                       "--iterations", ITERATIONS, "--max-hands", "1", "--quiet"])
    return status, errors.getvalue(), shown, out, root


def _check_schema(data: dict) -> None:
    assert set(data) >= {"image", "width", "height", "camera", "hands"}
    assert set(data["camera"]) >= {"fx", "fy", "cx", "cy", "assumed"}
    for hand in data["hands"]:
        assert hand["side"] in ("left", "right") and isinstance(hand["track_id"], int)
        assert 0.0 <= hand["score"] <= 1.0
        assert np.array(hand["keypoints_2d"]).shape == (21, 2)
        assert np.array(hand["keypoints_3d"]).shape == (21, 3)
        sizes = {k: len(v) for k, v in hand["mano"].items()}
        assert sizes == {"pose": 45, "shape": 10, "global_orient": 3, "transl": 3}
        for values in (hand["keypoints_2d"], hand["keypoints_3d"], *hand["mano"].values()):
            assert all(math.isfinite(x) for x in np.ravel(values))


def _mean_error(hand: dict, annotation: dict) -> float:
    truth = np.array(annotation["kp2d"], dtype=np.float64)
    visible = truth[:, 2] > 0
    errors = np.linalg.norm(np.array(hand["keypoints_2d"]) - truth[:, :2], axis=1)
    return float(errors[visible].mean())


def test_bad_files_are_reported_and_the_rest_processed(image_run):
    status, stderr, shown, out, root = image_run
    assert status == 1
    error_lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 4, stderr
    by_file = {line.split(": ")[1]: line for line in error_lines}
    assert by_file[str(root / "in" / "not_an_image.jpg")].endswith("(OpenCV could not decode it)")
    assert "too small (10x10 pixels" in by_file[str(root / "in" / "tiny.png")]
    assert by_file[str(root / "missing.png")].endswith("no such file or folder")
    assert "too large (10000x6000 = 60000000 pixels" in by_file[str(root / "in" / "huge.png")]
    written = sorted(p.name for p in out.iterdir())
    for name in BAD_FILES:
        assert not any(w.startswith(name.split(".")[0]) for w in written), written
    expected = set()
    for name in shown:
        stem = name.rsplit(".", 1)[0]
        expected |= {f"{stem}.json", f"{stem}_overlay.png", f"{stem}_hand0.ply"}
    assert set(written) == expected


def test_hands_found_where_annotated(image_run):
    _, _, shown, out, root = image_run
    for name, source in shown.items():
        stem = name.rsplit(".", 1)[0]
        data = json.loads((out / f"{stem}.json").read_text())
        _check_schema(data)
        annotation = ANNOTATIONS[source]
        assert data["image"] == str(root / "in" / name)
        assert [data["width"], data["height"]] == annotation["image_size"]
        assert data["camera"]["assumed"] is True
        assert data["camera"]["cx"] == pytest.approx((data["width"] - 1) / 2)
        assert len(data["hands"]) == 1, name
        hand = data["hands"][0]
        assert hand["side"] == annotation["side"], name
        assert hand["mesh"] == f"{stem}_hand0.ply" and hand["track_id"] == 0
        error = _mean_error(hand, annotation)
        assert error < MAX_MEAN_ERROR_PX, f"{name}: mean keypoint error {error:.1f} px"
        z = np.array(hand["keypoints_3d"])[:, 2]
        assert (z > 0.05).all() and (z < 5.0).all(), f"{name}: depths {z.min()}..{z.max()} m"
        ply = (out / hand["mesh"]).read_bytes()
        assert ply.startswith(b"ply\n") and b"element face" in ply
        overlay = cv2.imread(str(out / f"{stem}_overlay.png"))
        assert overlay.shape[:2] == (data["height"], data["width"])


def _write_video(path, frames: list[np.ndarray]) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    if not HANDS.is_dir():
        pytest.skip(f"{HANDS} (shared data) is absent")
    """A 3-frame MJPG video of an RHD image moving 3 px right per frame, with RHD's K."""
    root = tmp_path_factory.mktemp("cli_video")
    K = np.array(ANNOTATIONS["images/RHD/00111.png"]["K"])
    image = _read_bgr("images/RHD/00111.png")
    _write_video(root / "clip.avi", [np.roll(image, shift, axis=1) for shift in (0, 3, 6)])
    intrinsics = ["--fx", str(K[0, 0]), "--fy", str(K[1, 1]), "--cx", str(K[0, 2]),
                  "--cy", str(K[1, 2])]
    status = main(["estimate", str(root / "clip.avi"), "--out", str(root / "out"), *intrinsics,
                   "--iterations", ITERATIONS, "--quiet"])
    frames = [json.loads((root / "out" / f"clip_{i:06d}.json").read_text()) for i in range(3)]
    return status, frames, K, root


def _median_depth(hand: dict) -> float:
    return float(np.median(np.array(hand["keypoints_3d"])[:, 2]))


def test_video_frames_are_tracked(video_run):
    status, frames, K, root = video_run
    assert status == 0
    wrist_u = []
    for index, data in enumerate(frames):
        _check_schema(data)
        assert data["frame"] == index and data["image"] == str(root / "clip.avi")
        assert data["camera"] == {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2],
                                  "assumed": False}
        assert [h["track_id"] for h in data["hands"]] == [0], f"frame {index}"
        hand = data["hands"][0]
        assert hand["side"] == "left"
        assert hand["mesh"] == f"clip_{index:06d}_hand0.ply"
        assert (root / "out" / hand["mesh"]).is_file()
        assert (root / "out" / f"clip_{index:06d}_overlay.png").is_file()
        wrist_u.append(hand["keypoints_2d"][0][0])
    steps = np.diff(wrist_u)
    assert ((steps > 0.5) & (steps < 6.0)).all(), f"wrist u per frame {wrist_u}"


def test_video_depth_with_given_intrinsics(video_run):
    """Cold start with RHD's K: metric depth from the size prior, within a loose bound."""
    _, frames, _, _ = video_run
    truth = np.median(np.array(ANNOTATIONS["images/RHD/00111.png"]["kp3d"])[:, 2]) / 1000.0
    ratio = _median_depth(frames[0]["hands"][0]) / truth
    assert abs(ratio - 1.0) < 0.35, f"depth / true depth = {ratio:.2f}"


def test_tracked_depth_is_stable(video_run):
    _, frames, _, _ = video_run
    depths = [_median_depth(data["hands"][0]) for data in frames]
    assert max(depths) / min(depths) < 1.1, f"median depth per frame {depths}"


def test_partial_intrinsics_are_a_usage_error(tmp_path, capsys):
    status = main(["estimate", str(tmp_path), "--out", str(tmp_path / "o"), "--fx", "500"])
    assert status == 2
    err = capsys.readouterr().err
    assert "--fy, --cx, --cy" in err and "usage: hand-mesh estimate" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv",
    [[], ["estimate"], ["estimate", "x.png"],
     ["estimate", "x.png", "--out", "o", "--device", "tpu"],
     ["estimate", "x.png", "--out", "o", "--max-hands", "0"],
     ["estimate", "x.png", "--out", "o", "--iterations", "-1"],
     ["estimate", "x.png", "--out", "o", "--fx", "0", "--fy", "1", "--cx", "1", "--cy", "1"]],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_and_evaluate_are_wired(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "estimate" in text and "evaluate" in text
    assert main(["evaluate", "--help"]) == 0
    assert "annotations" in capsys.readouterr().out


def test_colliding_stems_get_a_suffix():
    used: set[str] = set()
    assert [unique_stem(s, used) for s in ("a", "a", "b", "a")] == ["a", "a_2", "b", "a_3"]


def test_progress_lines_and_inputs_that_all_fail(tmp_path, capsys):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "nothing").mkdir()
    argv = ["estimate", str(tmp_path / "empty.png"), str(tmp_path / "nothing"),
            "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert f"error: {tmp_path / 'nothing'}: folder holds no image or video files" in lines
    assert f"[1/1] {tmp_path / 'empty.png'}" in lines
    assert f"error: {tmp_path / 'empty.png'}: empty file (0 bytes)" in lines
    assert lines[-1] == f"done: 1 input(s), 2 failed; results in {tmp_path / 'o'}"
    assert list((tmp_path / "o").iterdir()) == []


def test_params_file_sets_the_estimator_and_tracker_and_options_override_it(tmp_path, capsys):
    from hand_mesh_ros.cli import build_parser, config_from_args
    from hand_mesh_ros.pipeline.config import EstimatorConfig, TrackerConfig

    params = tmp_path / "params.yaml"
    params.write_text(
        "/**:\n  ros__parameters:\n    max_hands: 4\n    warm_iterations: 6\n"
        "    track_timeout_s: 0.25\n    publish_tf: false\n"  # a node option: accepted, unused
    )
    argv = ["estimate", "x.png", "--out", str(tmp_path), "--params-file", str(params)]
    config, tracking = config_from_args(build_parser(argv).parse_args(argv))
    assert (config.max_hands, config.warm_iterations) == (4, 6)
    assert tracking == TrackerConfig(track_timeout_s=0.25)
    argv += ["--max-hands", "1", "--device", "cpu"]
    config, _ = config_from_args(build_parser(argv).parse_args(argv))
    assert (config.max_hands, config.device, config.warm_iterations) == (1, "cpu", 6)
    defaults, _ = config_from_args(build_parser(argv[:4]).parse_args(argv[:4]))
    assert defaults == EstimatorConfig()
    params.write_text("/**:\n  ros__parameters:\n    max_hand: 4\n")
    assert main(argv) == 2  # an unknown key is a usage error naming it
    assert "max_hand" in capsys.readouterr().err
