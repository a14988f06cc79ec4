"""Reading aligned depth files (``depthio.py``): 16-bit PNG and .npy values with their scale,
the folder naming rule, and every refused input with its message."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from helpers import assert_close

from hand_mesh_ros.depthio import (
    DEFAULT_DEPTH_SCALE,
    DepthError,
    check_depth_scale,
    depth_path_for,
    depth_to_metres,
    read_depth,
)

H, W = 40, 48


def _units() -> np.ndarray:
    """(H, W) uint16 depth in mm: a ramp 300..(300 + H*W - 1), a hole (0) in one corner,
    and the largest value 65535 in another."""
    units = (300 + np.arange(H * W)).reshape(H, W).astype(np.uint16)
    units[0, 0] = 0
    units[-1, -1] = 65535
    return units


def _write_png(path, array) -> None:
    assert cv2.imwrite(str(path), array)


def test_16_bit_png_in_millimetres_by_default(tmp_path):
    units = _units()
    _write_png(tmp_path / "d.png", units)
    depth = read_depth(tmp_path / "d.png")
    assert depth.shape == (H, W) and depth.dtype == np.float32 and depth.flags.c_contiguous
    assert DEFAULT_DEPTH_SCALE == 0.001
    assert depth[0, 0] == 0.0  # a hole stays 0 (no data)
    assert depth[0, 1] == pytest.approx(0.301, abs=1e-7)
    assert depth[-1, -1] == pytest.approx(65.535, rel=1e-7)
    assert_close(depth, units.astype(np.float64) * 0.001, rtol=1e-6, what="metres")


def test_scale_is_metres_per_unit(tmp_path):
    units = _units()
    _write_png(tmp_path / "d.png", units)
    depth = read_depth(tmp_path / "d.png", scale=0.000125)  # units of 1/8 mm
    assert depth[0, 1] == pytest.approx(301 * 0.000125, rel=1e-6)
    np.save(tmp_path / "u.npy", units)  # a uint16 .npy reads like the PNG
    assert_close(read_depth(tmp_path / "u.npy", scale=0.002), units * 0.002, rtol=1e-6)


def test_float_npy_is_metres_and_non_finite_is_no_data(tmp_path):
    metres = np.linspace(0.25, 1.5, H * W, dtype=np.float32).reshape(H, W)
    metres[1, 2], metres[3, 4], metres[5, 6] = np.nan, np.inf, -np.inf
    np.save(tmp_path / "d.npy", metres)
    depth = read_depth(tmp_path / "d.npy", scale=0.5)  # the scale does not apply to metres
    assert depth.dtype == np.float32 and np.isfinite(depth).all()
    assert depth[1, 2] == depth[3, 4] == depth[5, 6] == 0.0
    expected = np.where(np.isfinite(metres), metres, 0.0)
    assert_close(depth, expected, atol=0.0, what="metres")
    np.save(tmp_path / "d64.npy", expected.astype(np.float64))
    assert_close(read_depth(tmp_path / "d64.npy"), expected, atol=1e-7)


def test_shape_is_checked_against_the_image(tmp_path):
    _write_png(tmp_path / "d.png", _units())
    assert read_depth(tmp_path / "d.png", shape=(H, W)).shape == (H, W)
    with pytest.raises(DepthError, match=rf"depth is {W}x{H} pixels but the image is 64x32"):
        read_depth(tmp_path / "d.png", shape=(32, 64))
    np.save(tmp_path / "d.npy", np.ones((H, W), np.float32))
    with pytest.raises(DepthError, match=rf"d.npy: depth is {W}x{H} pixels"):
        read_depth(tmp_path / "d.npy", shape=(H + 1, W))


def test_a_huge_png_is_refused_from_its_header(tmp_path):
    ihdr = struct.pack(">II5B", 10_000, 6_000, 16, 0, 0, 0, 0)  # 16-bit grey, header only
    (tmp_path / "huge.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4
    )
    with pytest.raises(DepthError, match=r"huge.png: too large \(10000x6000"):
        read_depth(tmp_path / "huge.png")


def _bad_inputs(tmp_path) -> dict[str, tuple[str, str]]:
    """file name -> (what to write, the expected reason)."""
    grey8 = np.full((H, W), 100, np.uint8)
    colour16 = np.full((H, W, 3), 1000, np.uint16)
    _write_png(tmp_path / "grey8.png", grey8)
    _write_png(tmp_path / "colour8.png", np.stack([grey8] * 3, axis=2))
    _write_png(tmp_path / "colour16.png", colour16)
    (tmp_path / "text.png").write_text("not a PNG\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes((tmp_path / "grey8.png").read_bytes()[:60])
    np.save(tmp_path / "int32.npy", np.ones((H, W), np.int32))
    np.save(tmp_path / "three.npy", np.ones((H, W, 1), np.float32))
    negative = np.ones((H, W), np.float32)
    negative[2, 3], negative[4, 5] = -0.5, -0.25
    np.save(tmp_path / "negative.npy", negative)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "text.npy").write_text("not numpy\n")
    (tmp_path / "d.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "folder.png").mkdir()
    return {
        "missing.png": "no such file",
        "folder.png": "not a file",
        "empty.png": r"empty file \(0 bytes\)",
        "text.png": r"not a PNG file \(no PNG header\)",
        "cut.png": "OpenCV could not decode it",
        "grey8.png": "8-bit single-channel PNG; a depth PNG must be 16-bit single-channel",
        "colour8.png": r"8-bit 3-channel \(colour\) PNG",
        "colour16.png": r"16-bit 3-channel \(colour\) PNG",
        "int32.npy": "dtype int32, a depth image must be uint16",
        "three.npy": r"shape \(40, 48, 1\), a depth image must be \(H, W\)",
        "negative.npy": r"2 negative depth values \(min -0.5 m\)",
        "objects.npy": "not a readable .npy array",
        "text.npy": "not a readable .npy array",
        "d.jpg": r"unsupported depth file type '.jpg'",
    }


def test_every_bad_file_is_one_error_naming_it(tmp_path):
    for name, reason in _bad_inputs(tmp_path).items():
        with pytest.raises(DepthError, match=reason) as caught:
            read_depth(tmp_path / name)
        assert caught.value.what == str(tmp_path / name), name
        assert str(caught.value).startswith(f"{tmp_path / name}: "), name
        assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("scale", [0.0, -0.001, float("nan"), float("inf")])
def test_a_bad_scale_is_refused(tmp_path, scale):
    _write_png(tmp_path / "d.png", _units())
    with pytest.raises(DepthError, match="depth scale: must be finite and > 0"):
        read_depth(tmp_path / "d.png", scale=scale)
    with pytest.raises(DepthError):
        check_depth_scale(scale)
    assert check_depth_scale(0.0001) == 0.0001


def test_raw_arrays_follow_the_same_rules():
    assert_close(depth_to_metres(np.full((2, 3), 1500, np.uint16), what="x"), np.full((2, 3), 1.5))
    with pytest.raises(DepthError, match=r"16UC1 image: shape \(2, 3, 2\)"):
        depth_to_metres(np.zeros((2, 3, 2), np.uint16), what="16UC1 image")
    with pytest.raises(DepthError, match="dtype uint8"):
        depth_to_metres(np.zeros((2, 3), np.uint8), what="mono8 image")


def test_folder_rule_finds_png_or_npy_by_stem(tmp_path):
    _write_png(tmp_path / "frame_0001.png", _units())
    np.save(tmp_path / "frame_0002.npy", np.ones((H, W), np.float32))
    assert depth_path_for(tmp_path, "frame_0001") == tmp_path / "frame_0001.png"
    assert depth_path_for(tmp_path, "frame_0002") == tmp_path / "frame_0002.npy"
    with pytest.raises(DepthError, match=r"frame_0003.png: no such file \(nor frame_0003.npy\)"):
        depth_path_for(tmp_path, "frame_0003")
    np.save(tmp_path / "frame_0001.npy", np.ones((H, W), np.float32))
    with pytest.raises(DepthError, match="both frame_0001.png and frame_0001.npy exist"):
        depth_path_for(tmp_path, "frame_0001")
