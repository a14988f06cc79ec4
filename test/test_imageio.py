"""Image reading and conversion: files written with cv2, raw ROS-style arrays, bad inputs."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from helpers import SHARED_DATA

from hand_mesh_ros.imageio import (
    MIN_SIDE,
    PNG_MAGIC,
    ImageError,
    image_file_size,
    is_video,
    list_inputs,
    read_image,
    to_rgb8,
)


def _color_image(height: int = 48, width: int = 64) -> np.ndarray:
    """(H, W, 3) uint8 with distinct channels and a gradient, so order mix-ups show."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack(
        [cols * 255 // (width - 1), rows * 255 // (height - 1), np.full_like(rows, 40)], axis=2
    ).astype(np.uint8)


def _write(path, image, params=()) -> str:
    assert cv2.imwrite(str(path), image, list(params)), f"cv2 could not write {path}"
    return str(path)


def _assert_rgb8(image: np.ndarray, height: int, width: int) -> None:
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert image.flags.c_contiguous


def test_color_png_is_returned_as_rgb(tmp_path):
    rgb = _color_image()
    out = read_image(_write(tmp_path / "c.png", rgb[:, :, ::-1]))  # cv2 writes BGR
    _assert_rgb8(out, 48, 64)
    np.testing.assert_array_equal(out, rgb)


def test_grey_png_is_replicated(tmp_path):
    grey = _color_image()[:, :, 0]
    out = read_image(_write(tmp_path / "g.png", grey))
    _assert_rgb8(out, 48, 64)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], grey)


def test_rgba_png_drops_alpha(tmp_path):
    rgb = _color_image()
    alpha = np.zeros((48, 64, 1), np.uint8)  # fully transparent: colors are still kept
    out = read_image(_write(tmp_path / "a.png", np.concatenate([rgb[:, :, ::-1], alpha], 2)))
    np.testing.assert_array_equal(out, rgb)


def test_16bit_color_png_is_shifted_by_8_bits(tmp_path):
    rgb16 = _color_image().astype(np.uint16) * 257 + 3  # full-scale 16-bit photo
    out = read_image(_write(tmp_path / "c16.png", rgb16[:, :, ::-1]))
    np.testing.assert_array_equal(out, (rgb16 >> 8).astype(np.uint8))


def test_16bit_depth_png_is_stretched_to_its_maximum(tmp_path):
    depth = np.linspace(0, 2000, 48 * 64).reshape(48, 64).astype(np.uint16)  # mm
    out = read_image(_write(tmp_path / "d16.png", depth))
    assert out[:, :, 0].max() == 255 and out[0, 0, 0] == 0
    expected = np.round(depth.astype(np.float64) * 255.0 / 2000.0).astype(np.uint8)
    np.testing.assert_array_equal(out[:, :, 1], expected)


def test_float_tiff_in_unit_range_is_scaled_by_255(tmp_path):
    rgb = _color_image().astype(np.float32) / 255.0
    # Uncompressed: OpenCV's default for 3-channel float TIFF (SGILOG) is lossy.
    params = (cv2.IMWRITE_TIFF_COMPRESSION, 1)
    out = read_image(_write(tmp_path / "f.tiff", rgb[:, :, ::-1].copy(), params))
    np.testing.assert_array_equal(out, _color_image())


def test_jpeg_exif_orientation_is_applied(tmp_path):
    """A phone photo stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise)."""
    stored = _color_image(48, 64)
    ok, jpeg = cv2.imencode(".jpg", stored[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
    assert ok
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack("<I", 0)
    exif = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd
    app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    data = jpeg.tobytes()
    (tmp_path / "r.jpg").write_bytes(data[:2] + app1 + data[2:])
    out = read_image(tmp_path / "r.jpg")
    _assert_rgb8(out, 64, 48)
    clockwise = np.rot90(stored, k=-1).astype(float)
    assert np.abs(out - clockwise).mean() < 3.0
    assert np.abs(out - np.rot90(stored, k=1)).mean() > 30.0


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("text.png", b"this is not an image\n" * 4, "not a readable image"),
        ("empty.png", b"", "empty file"),
    ],
)
def test_unreadable_files(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageError, match=message):
        read_image(tmp_path / name)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="not a file"):
        read_image(tmp_path)
    assert issubclass(ImageError, ValueError)


def test_too_small_image(tmp_path):
    path = _write(tmp_path / "tiny.png", np.zeros((MIN_SIDE - 1, 100, 3), np.uint8))
    with pytest.raises(ImageError, match="too small"):
        read_image(path)
    read_image(_write(tmp_path / "ok.png", np.zeros((MIN_SIDE, MIN_SIDE, 3), np.uint8)))


def test_too_large_image(tmp_path):
    path = _write(tmp_path / "big.png", np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ImageError, match="too large"):
        read_image(path, max_pixels=48 * 64 - 1)
    assert read_image(path, max_pixels=48 * 64).shape == (48, 64, 3)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_huge_header_is_refused_before_decoding(tmp_path, ext):
    """A file whose header claims 60000 x 50000 pixels (3 GP) is refused as too large,
    from the header alone (decoding would fail or need gigabytes)."""
    ok, encoded = cv2.imencode(ext, _color_image())
    data = bytearray(encoded.tobytes())
    if ext == ".png":
        data[16:24] = struct.pack(">II", 60000, 50000)
    else:
        sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xC0)
        data[sof + 5 : sof + 9] = struct.pack(">HH", 50000, 60000)
    (tmp_path / f"huge{ext}").write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"too large \(60000x50000"):
        read_image(tmp_path / f"huge{ext}")


@pytest.mark.parametrize(("ext", "dtype"), [(".png", np.uint8), (".png", np.uint16),
                                            (".jpg", np.uint8)])
def test_image_file_size_reads_the_header(ext, dtype):
    """(width, height) from the first bytes alone (``depthio`` checks depth PNGs this way)."""
    ok, encoded = cv2.imencode(ext, np.zeros((37, 53), dtype))
    head = encoded.tobytes()
    assert ok and image_file_size(head) == (53, 37)
    assert head.startswith(PNG_MAGIC) == (ext == ".png")
    assert image_file_size(b"GIF89a" + head[6:]) is None


def test_real_shared_image_matches_cv2():
    path = SHARED_DATA / "hands" / "images" / "RHD" / "00111.png"
    if not path.is_file():
        pytest.skip(f"shared hand images not found at {path.parent}")
    out = read_image(path)
    _assert_rgb8(out, 320, 320)
    np.testing.assert_array_equal(out, cv2.imread(str(path))[:, :, ::-1])


# ---- to_rgb8: raw arrays with ROS encodings ----------------------------------------------


def test_to_rgb8_color_orders():
    rgb = _color_image()
    alpha = np.full((48, 64, 1), 9, np.uint8)
    np.testing.assert_array_equal(to_rgb8(rgb, "rgb8"), rgb)
    np.testing.assert_array_equal(to_rgb8(rgb[:, :, ::-1], "bgr8"), rgb)
    np.testing.assert_array_equal(to_rgb8(rgb[:, :, ::-1], "8UC3"), rgb)  # OpenCV order
    np.testing.assert_array_equal(to_rgb8(np.concatenate([rgb, alpha], 2), "rgba8"), rgb)
    bgra = np.concatenate([rgb[:, :, ::-1], alpha], 2)
    np.testing.assert_array_equal(to_rgb8(bgra, "bgra8"), rgb)
    out = to_rgb8(rgb[:, :, ::-1], "bgr8")
    assert out.flags.c_contiguous and out.dtype == np.uint8


def test_to_rgb8_mono_and_16bit():
    grey = _color_image()[:, :, 0]
    np.testing.assert_array_equal(to_rgb8(grey, "mono8"), np.repeat(grey[:, :, None], 3, 2))
    np.testing.assert_array_equal(to_rgb8(grey[:, :, None], "8UC1")[:, :, 2], grey)
    depth = np.zeros((48, 64), np.uint16)
    depth[10:20, 10:20] = 1500  # mm
    depth[30, 40] = 3000
    for encoding in ("mono16", "16UC1"):
        out = to_rgb8(depth, encoding)
        assert out[30, 40].tolist() == [255, 255, 255] and out[15, 15, 0] == 128
        assert out[0, 0, 0] == 0
    rgb16 = _color_image().astype(np.uint16) << 8
    np.testing.assert_array_equal(to_rgb8(rgb16[:, :, ::-1], "bgr16"), _color_image())


def test_to_rgb8_float_depth_with_invalid_values():
    depth = np.full((48, 64), 2.0, np.float32)  # metres
    depth[0, 0], depth[0, 1], depth[0, 2], depth[0, 3] = np.nan, np.inf, -1.0, 4.0
    out = to_rgb8(depth, "32FC1")[:, :, 0]
    assert out[0, :4].tolist() == [0, 0, 0, 255] and out[5, 5] == 128


def test_to_rgb8_packed_yuv422():
    # UYVY bytes per pixel pair: U Y0 V Y1. Grey: U = V = 128.
    grey = np.full((48, 64, 2), 128, np.uint8)
    assert np.abs(to_rgb8(grey, "yuv422").astype(int) - 128).max() <= 2
    reddish = grey.copy()
    reddish[:, 0::2, 0] = 128  # U
    reddish[:, 1::2, 0] = 220  # V high -> red
    out = to_rgb8(reddish, "uyvy")
    assert (out[:, :, 0] > out[:, :, 1] + 50).all() and (out[:, :, 0] > out[:, :, 2] + 50).all()
    yuyv = np.full((48, 64, 2), 128, np.uint8)  # Y0 U Y1 V
    yuyv[:, 1::2, 1] = 220  # V
    out = to_rgb8(yuyv, "yuv422_yuy2")
    assert (out[:, :, 0] > out[:, :, 2] + 50).all()


@pytest.mark.parametrize(
    ("array", "encoding", "message"),
    [
        (np.zeros((48, 64, 3), np.uint8), "bayer_rggb8", "unknown image encoding 'bayer_rggb8'"),
        (np.zeros((48, 64, 3), np.uint16), "rgb8", "dtype uint16, expected uint8"),
        (np.zeros((48, 64), np.uint8), "rgb8", r"expected \(H, W, 3\)"),
        (np.zeros((48, 64, 4), np.uint8), "bgr8", r"expected \(H, W, 3\)"),
        (np.zeros((0, 64, 3), np.uint8), "rgb8", "empty image"),
        (np.zeros((16, 64, 3), np.uint8), "rgb8", "too small"),
    ],
)
def test_to_rgb8_errors(array, encoding, message):
    with pytest.raises(ImageError, match=message):
        to_rgb8(array, encoding)


def test_to_rgb8_too_large_with_a_small_limit():
    with pytest.raises(ImageError, match="too large"):
        to_rgb8(np.zeros((48, 64, 3), np.uint8), "rgb8", max_pixels=1000)


# ---- list_inputs -------------------------------------------------------------------------


def test_list_inputs_expands_folders(tmp_path):
    for name in ("b.png", "A.JPG", "clip.mp4", "notes.txt", "c.jpeg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"x")
    extra = tmp_path / "sub" / "other.dat"
    extra.write_bytes(b"x")
    found = list_inputs([tmp_path, extra])
    assert [p.name for p in found] == ["A.JPG", "b.png", "c.jpeg", "clip.mp4", "other.dat"]
    assert [is_video(p) for p in found] == [False, False, False, True, False]
    assert list_inputs(str(tmp_path / "b.png")) == [tmp_path / "b.png"]
    with pytest.raises(ImageError, match="no such file or folder"):
        list_inputs([tmp_path / "nope"])
