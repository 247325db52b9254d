"""data/io.read_image on the image kinds real captures bring: EXIF orientation, RGBA, CMYK,
16-bit with alpha, float, and damaged files. (Greyscale, 16-bit grey and RGB, palette, LA and
bilevel images are covered in test_blender.py.)"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nerfkit.data.io import read_image
from nerfkit.errors import DataError

ORIENTATION = 0x0112

# EXIF orientation -> how the stored pixels are shown (the EXIF 2.3 spec, written out)
DISPLAYED = {
    1: lambda s: s,
    2: lambda s: s[:, ::-1],
    3: lambda s: s[::-1, ::-1],
    4: lambda s: s[::-1, :],
    5: lambda s: s.transpose(1, 0, 2),
    6: lambda s: np.rot90(s, -1),  # 90 degrees clockwise
    7: lambda s: s[::-1, ::-1].transpose(1, 0, 2),
    8: lambda s: np.rot90(s, 1),
}


def stored() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (3, 5, 3), dtype=np.uint8)


@pytest.mark.parametrize("orientation", sorted(DISPLAYED))
def test_exif_orientation_is_applied(tmp_path, orientation):
    im = Image.fromarray(stored())
    exif = im.getexif()
    exif[ORIENTATION] = orientation
    im.save(tmp_path / "o.png", exif=exif)
    out = read_image(tmp_path / "o.png")
    expect = DISPLAYED[orientation](stored()) / 255.0
    assert out.shape == expect.shape
    np.testing.assert_allclose(out, expect, atol=1e-7)


def test_exif_rotated_jpeg(tmp_path):
    big = np.zeros((16, 32, 3), np.uint8)
    big[:8, :8] = 255  # a white block top-left in the stored pixels
    im = Image.fromarray(big)
    exif = im.getexif()
    exif[ORIENTATION] = 6
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "r.jpg")
    assert out.shape == (32, 16, 3)  # portrait after rotation
    assert out[:8, 8:].mean() > 0.9 and out[8:, :].mean() < 0.1  # block now top-right


def test_rgba_keeps_alpha_and_straight_colour(tmp_path):
    rgba = np.array([[[255, 0, 0, 255], [0, 255, 0, 128], [10, 20, 30, 0]]], np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (1, 3, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out, rgba / 255.0, atol=1e-7)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = (200, 40, 40)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (8, 8, 3)
    np.testing.assert_allclose(out[2, 1], np.array([200, 40, 40]) / 255, atol=0.05)


def write_png16(path: Path, arr: np.ndarray) -> None:
    """A 16-bit PNG written by hand (grey, grey+alpha, RGB or RGBA by channel count)."""
    h, w, c = arr.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
    path.write_bytes(png + chunk(b"IEND", b""))


def test_16bit_rgba_and_grey_alpha(tmp_path):
    # Pillow decodes 16-bit colour PNGs at 8-bit precision: values are right to within 1/255
    rgba = np.array([[[0, 65535, 30000, 65535], [1000, 20000, 65000, 0]]], np.uint16)
    write_png16(tmp_path / "a16.png", rgba)
    out = read_image(tmp_path / "a16.png")
    assert out.shape == (1, 2, 4)
    np.testing.assert_allclose(out, rgba / 65535.0, atol=1 / 255 + 1e-6)
    la = np.array([[[40000, 65535], [5, 0]]], np.uint16)
    write_png16(tmp_path / "la16.png", la)
    out = read_image(tmp_path / "la16.png")
    assert out.shape == (1, 2, 4)
    np.testing.assert_allclose(out[..., :3], np.repeat(la[..., :1] / 65535.0, 3, -1), atol=1 / 255)
    np.testing.assert_allclose(out[..., 3], la[..., 1] / 65535.0, atol=1 / 255)


def test_16bit_grey_with_exif_rotation(tmp_path):
    grey = np.array([[0, 1000, 2000], [30000, 40000, 65535]], np.uint16)
    im = Image.fromarray(grey)
    exif = im.getexif()
    exif[ORIENTATION] = 8
    im.save(tmp_path / "g.png", exif=exif)
    out = read_image(tmp_path / "g.png")
    np.testing.assert_allclose(out[..., 0], np.rot90(grey, 1) / 65535.0, atol=1e-7)


def test_float_tiff_is_clipped_to_unit_range(tmp_path):
    Image.fromarray(np.array([[0.25, 1.5, -0.5]], np.float32), mode="F").save(tmp_path / "f.tif")
    out = read_image(tmp_path / "f.tif")
    np.testing.assert_allclose(out[..., 0], [[0.25, 1.0, 0.0]])
    assert out.shape == (1, 3, 3)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image(tmp_path, suffix):
    p = tmp_path / f"t{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(DataError, match=rf"t\{suffix}: unreadable or truncated image"):
        read_image(p)


def test_not_an_image(tmp_path):
    (tmp_path / "x.png").write_text("not a picture")
    with pytest.raises(DataError, match=r"x.png: unreadable or truncated image"):
        read_image(tmp_path / "x.png")


def test_missing_image(tmp_path):
    with pytest.raises(DataError, match=r"nope.png: image not found"):
        read_image(tmp_path / "nope.png")
