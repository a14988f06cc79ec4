"""Aligned depth on the command line: ``hand-mesh estimate --depth`` (one file, a folder by
stem, a video's frames) and ``hand-mesh evaluate`` with a ``depth`` field, end to end with the
real estimator on rendered RGB-D hands (synthetic clip + the z-buffer depth of the true mesh).

Needs no shared data: the scenes are rendered here (``synthetic/clip.py``, ``render``)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json

import cv2
import numpy as np
import pytest
import torch

from hand_mesh_ros.cli import main

SIZE = (240, 320)  # (H, W) pixels
FOCAL = 275.0  # pixels: the hand ~100 px tall at 0.3-0.5 m
BACKGROUND_M = 1.2  # the wall behind the hand in the depth image, metres
ITERATIONS = "10"  # refinement iterations: enough for these clean scenes, quick on a CPU
RGB_DEPTH_SCALE = 0.0001  # metres per unit of the folder's 16-bit depth PNGs (0.1 mm)
# A clip whose hand the size prior places badly from RGB alone (measured: camera-frame MPJPE
# ~62 mm RGB-only, ~11 mm with its depth), so using the depth shows in the numbers.
SEED = 5


@pytest.fixture(scope="module")
def scenes():
    """(K (3,3), frames): 3 rendered frames of a moving right hand, each (image (H,W,3) uint8
    RGB, depth (H,W) float32 metres: the true mesh's z-buffer, the wall elsewhere,
    keypoints_3d (21,3) metres of the true hand)."""
    from hand_mesh_ros import load_hand_model
    from hand_mesh_ros.handmodel.prior import PosePrior
    from hand_mesh_ros.render.front import rasterize
    from hand_mesh_ros.synthetic.clip import render_clip

    pytest.importorskip("mediapipe")
    model = load_hand_model("right")
    clip = render_clip(model, PosePrior.from_model(model), 3, seed=SEED, image_size=SIZE,
                       focal=FOCAL)
    frames = []
    for frame in clip.frames:
        with torch.no_grad():
            vertices = model(**frame.truth.as_kwargs()).vertices.double()
        raster = rasterize(vertices, model.faces, clip.K.double(), SIZE)
        depth = np.where(raster.mask[0].numpy(), raster.depth[0].numpy(), BACKGROUND_M)
        frames.append((frame.image, depth.astype(np.float32), frame.keypoints_3d))
    return clip.K.double().numpy(), frames


def _intrinsics(K) -> list[str]:
    return ["--fx", str(K[0, 0]), "--fy", str(K[1, 1]), "--cx", str(K[0, 2]),
            "--cy", str(K[1, 2])]


def _write_rgb(path, image) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _write_depth_png(path, depth_m, scale: float) -> None:
    units = np.round(depth_m / scale)
    assert units.max() < 65536
    assert cv2.imwrite(str(path), units.astype(np.uint16))


def _run(argv) -> tuple[int, list[str]]:
    """main(argv) -> (status, the error lines it wrote to stderr)."""
    errors = io.StringIO()  # mediapipe's native logs go to fd 2 directly, not here
    with contextlib.redirect_stderr(errors):
        status = main(argv)
    return status, [line for line in errors.getvalue().splitlines() if line.startswith("error:")]


def _wrist_error_mm(hand: dict, truth_m: np.ndarray) -> float:
    return 1000.0 * float(np.linalg.norm(np.array(hand["keypoints_3d"][0]) - truth_m[0]))


def _check_depth_used(hand: dict, truth_m: np.ndarray) -> None:
    """The hand was fitted to a clean, aligned depth: used, nearly all of the hand has depth,
    the fitted surface lies on it, and the wrist is where it truly is."""
    assert hand["depth_used"] is True, hand["depth"]
    assert hand["depth"]["status"] == "used"
    # the observation grid's cells at the hand's outline read what lies past it: here holes
    assert hand["depth"]["valid_fraction"] > 0.8, hand["depth"]
    assert hand["depth"]["residual_mm"] < 5.0, hand["depth"]  # read with the wrong scale: m off
    assert 0.8 < hand["depth"]["scale"] < 1.25, hand["depth"]
    assert _wrist_error_mm(hand, truth_m) < 15.0, hand["keypoints_3d"][0]


@pytest.fixture(scope="module")
def folder_run(scenes, tmp_path_factory):
    """Three images a, b, c and a depth folder (0.1 mm PNGs): a's depth matches, b has none,
    c's is half the size."""
    K, frames = scenes
    root = tmp_path_factory.mktemp("cli_depth_folder")
    (root / "in").mkdir()
    (root / "depth").mkdir()
    for name, (image, _, _) in zip("abc", frames, strict=True):
        _write_rgb(root / "in" / f"{name}.png", image)
    _write_depth_png(root / "depth" / "a.png", frames[0][1], RGB_DEPTH_SCALE)
    small = cv2.resize(frames[2][1], (SIZE[1] // 2, SIZE[0] // 2), interpolation=cv2.INTER_NEAREST)
    _write_depth_png(root / "depth" / "c.png", small, RGB_DEPTH_SCALE)
    status, errors = _run(
        ["estimate", str(root / "in"), "--out", str(root / "out"), "--depth", str(root / "depth"),
         "--depth-scale", str(RGB_DEPTH_SCALE), *_intrinsics(K), "--iterations", ITERATIONS,
         "--max-hands", "1", "--device", "cpu", "--quiet"])
    results = {n: json.loads((root / "out" / f"{n}.json").read_text()) for n in "abc"}
    return status, errors, results, root, frames


def test_a_depth_folder_is_read_by_stem(folder_run):
    status, _, results, root, frames = folder_run
    a = results["a"]
    assert a["depth_given"] is True and a["depth_file"] == str(root / "depth" / "a.png")
    assert len(a["hands"]) == 1
    _check_depth_used(a["hands"][0], frames[0][2])


def test_missing_and_mismatched_depth_are_one_error_line_each_and_fall_back(folder_run):
    status, errors, results, root, _ = folder_run
    assert status == 1  # an image fell back to RGB-only
    assert errors == [
        f"error: {root / 'depth' / 'b.png'}: no such file (nor b.npy); "
        f"{root / 'in' / 'b.png'} processed without depth",
        f"error: {root / 'depth' / 'c.png'}: depth is 160x120 pixels but the image is 320x240 "
        f"(depth must be aligned to the colour image, the same size); "
        f"{root / 'in' / 'c.png'} processed without depth",
    ]
    for name in "bc":  # processed RGB-only: hands found, no depth anywhere in their JSON
        data = results[name]
        assert data["depth_given"] is False and "depth_file" not in data
        assert len(data["hands"]) == 1, name
        assert data["hands"][0]["depth_used"] is False and "depth" not in data["hands"][0]
        assert (root / "out" / f"{name}_hand0.ply").is_file()


def test_one_image_with_a_float_npy_in_metres(scenes, tmp_path):
    K, frames = scenes
    image, depth, truth = frames[1]
    _write_rgb(tmp_path / "frame.png", image)
    holes = depth.copy()
    holes[holes == BACKGROUND_M] = np.nan  # no data where the wall is
    holes[::7, ::5] = 0.0  # and scattered holes on the hand too
    np.save(tmp_path / "frame_depth.npy", holes)
    status, errors = _run(
        ["estimate", str(tmp_path / "frame.png"), "--out", str(tmp_path / "out"),
         "--depth", str(tmp_path / "frame_depth.npy"), *_intrinsics(K),
         "--iterations", ITERATIONS, "--max-hands", "1", "--device", "cpu", "--quiet"])
    assert (status, errors) == (0, [])
    data = json.loads((tmp_path / "out" / "frame.json").read_text())
    assert data["depth_given"] is True and data["depth_file"] == str(tmp_path / "frame_depth.npy")
    _check_depth_used(data["hands"][0], truth)


def test_a_video_reads_each_frames_depth_and_tracks(scenes, tmp_path):
    K, frames = scenes
    height, width = SIZE
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0,
                             (width, height))
    for image, _, _ in frames:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    (tmp_path / "depth").mkdir()
    for index in (0, 1):  # frame 2 has no depth
        _write_depth_png(tmp_path / "depth" / f"clip_{index:06d}.png", frames[index][1], 0.001)
    status, errors = _run(
        ["estimate", str(tmp_path / "clip.avi"), "--out", str(tmp_path / "out"),
         "--depth", str(tmp_path / "depth"), *_intrinsics(K), "--iterations", ITERATIONS,
         "--device", "cpu", "--quiet"])
    assert status == 1
    assert errors == [f"error: {tmp_path / 'depth' / 'clip_000002.png'}: no such file (nor "
                      f"clip_000002.npy); {tmp_path / 'clip.avi'} frame 2 processed without depth"]
    data = [json.loads((tmp_path / "out" / f"clip_{i:06d}.json").read_text()) for i in range(3)]
    assert [d["depth_given"] for d in data] == [True, True, False]
    assert [d["frame"] for d in data] == [0, 1, 2]
    assert [[h["track_id"] for h in d["hands"]] for d in data] == [[0], [0], [0]]
    for index in (0, 1):
        _check_depth_used(data[index]["hands"][0], frames[index][2])
    assert data[2]["hands"][0]["depth_used"] is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--depth-scale", "0.001"], "--depth-scale needs --depth"),
     (["--depth", "d", "--depth-scale", "0"], "--depth-scale: depth scale: must be finite"),
     (["--depth", "d", "--depth-scale", "nan"], "must be finite and > 0")],
)
def test_bad_depth_options_are_usage_errors(tmp_path, capsys, extra, message):
    assert main(["estimate", str(tmp_path), "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "usage: hand-mesh estimate" in err
    assert not (tmp_path / "o").exists()


def test_one_depth_file_for_several_inputs_is_a_usage_error(tmp_path, capsys):
    for name in ("a.png", "b.png", "clip.avi", "d.png"):
        (tmp_path / name).write_bytes(b"x")  # never read: the usage check comes first
    cases = [
        ([tmp_path / "a.png", tmp_path / "b.png"], tmp_path / "d.png",
         f"{tmp_path / 'd.png'} is one depth image, for 2 inputs; give a folder of depth "
         "images named by the inputs' stems"),
        ([tmp_path / "clip.avi"], tmp_path / "d.png",
         f"{tmp_path / 'd.png'} is one depth image, for a video; give a folder of depth "
         "images named by the inputs' stems"),
        ([tmp_path / "a.png", tmp_path / "b.png"], tmp_path / "nowhere",
         f"{tmp_path / 'nowhere'}: no such folder (the depth images of 2 inputs)"),
    ]
    for inputs, depth, message in cases:
        argv = ["estimate", *map(str, inputs), "--out", str(tmp_path / "o"), "--depth", str(depth)]
        assert main(argv) == 2
        assert f"error: --depth: {message}" in capsys.readouterr().err.splitlines()
        assert not (tmp_path / "o").exists()
    # no input at all: the missing input is the error (status 1), not the depth file
    argv = ["estimate", str(tmp_path / "gone.png"), "--out", str(tmp_path / "o"),
            "--depth", str(tmp_path / "d.png")]
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"error: {tmp_path / 'gone.png'}: no such file or folder")


def test_evaluate_reports_rgb_only_and_rgbd_on_the_lines_with_depth(scenes, tmp_path, capsys):
    """Two annotated rendered hands, the first with a 16-bit mm depth image: ours runs twice
    on it (RGB-only and RGB-D); the second is evaluated RGB-only as before."""
    from hand_mesh_ros import evaluation as ev
    from hand_mesh_ros.camera import project

    K, frames = scenes
    lines = []
    for index, (image, depth, truth) in enumerate(frames[:2]):
        _write_rgb(tmp_path / f"hand{index}.png", image)
        kp2d = project(torch.as_tensor(truth)[None], torch.as_tensor(K))[0].numpy()
        box = [*kp2d.min(0), *(kp2d.max(0) - kp2d.min(0))]
        line = {"image": f"hand{index}.png", "dataset": "synthetic", "side": "right",
                "kp2d": [[u, v, 1] for u, v in kp2d.tolist()], "kp3d": (truth * 1000).tolist(),
                "K": K.tolist(), "bbox": [float(v) for v in box]}
        if index == 0:
            (tmp_path / "depth").mkdir()
            _write_depth_png(tmp_path / "depth" / "hand0.png", depth, 0.001)
            line["depth"] = "depth/hand0.png"
        lines.append(json.dumps(line))
    (tmp_path / "ann.jsonl").write_text("\n".join(lines) + "\n")
    parser = argparse.ArgumentParser()
    ev.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "ann.jsonl"), "--device", "cpu", "--iterations",
                              ITERATIONS, "--json", str(tmp_path / "report.json")])
    assert ev.run(args) == 0
    printed = capsys.readouterr().out
    assert "with aligned depth (1 images): ours RGB-only vs RGB-D" in printed
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["run"]["images"] == 2 and report["run"]["images_with_depth"] == 1
    assert report["run"]["max_landmark_difference_px"] == 0.0
    assert report["run"]["mean_timings_ms_depth"]["total"] > 0.0
    methods = [h["method"] for h in report["hands"]]
    assert methods == ["ours", "mediapipe", "ours+depth", "ours", "mediapipe"]
    compared = {(r["dataset"], r["method"]): r for r in report["depth_comparison"]}
    assert set(compared) == {("synthetic", "ours"), ("synthetic", "ours+depth"),
                             ("all", "ours"), ("all", "ours+depth")}
    rgb, rgbd = compared[("all", "ours")], compared[("all", "ours+depth")]
    assert (rgb["hands"], rgb["detected"], rgbd["detected"], rgbd["depth_used"]) == (1, 1, 1, 1)
    for key in ("cam_mpjpe_mm", "wrist_error_mm", "root_depth_error_pct", "pa_mpjpe_mm"):
        assert np.isfinite(rgb[key]) and np.isfinite(rgbd[key]), key
    assert rgbd["wrist_error_mm"] < 15.0 and rgbd["cam_mpjpe_mm"] < 20.0, rgbd
    assert rgbd["cam_mpjpe_mm"] < rgb["cam_mpjpe_mm"], (rgb, rgbd)  # ~11 vs ~62 mm measured
    # the RGB-only row of the comparison is the same hand's RGB-only score
    hand0_rgb = report["hands"][0]
    assert rgb["cam_mpjpe_mm"] == pytest.approx(hand0_rgb["cam_mpjpe_mm"])
    assert report["hands"][2]["depth_status"] == "used" and hand0_rgb["depth_status"] is None
    # the main table: ours over both hands (RGB-only), mediapipe as without depth
    rows = {(s["dataset"], s["method"]): s for s in report["summaries"]}
    assert rows[("all", "ours")]["hands"] == 2 and rows[("all", "mediapipe")]["hands"] == 2
    assert {s["method"] for s in report["summaries"]} == {"ours", "mediapipe"}
