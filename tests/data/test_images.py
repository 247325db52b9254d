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


def png16_bytes(w: int, h: int, colour_type: int, raw: bytes) -> bytes:
    """A whole 16-bit PNG file from its filtered scanlines `raw`."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
    return png + chunk(b"IEND", b"")


def write_png16(path: Path, arr: np.ndarray) -> None:
    """A 16-bit PNG written by hand (grey, grey+alpha, RGB or RGBA by channel count)."""
    h, w, c = arr.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))

    path.write_bytes(png16_bytes(w, h, colour_type, raw))


def test_16bit_rgba_and_grey_alpha(tmp_path):
    # (full 16-bit precision is checked in test_16bit_png_keeps_full_precision below)
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


# --- 16-bit colour PNGs at full precision -------------------------------------------------------


def write_png16_filtered(path: Path, arr: np.ndarray) -> None:
    """A 16-bit PNG (grey+alpha, RGB or RGBA by channel count) whose rows use each of the five
    PNG filters in turn (none, sub, up, average, Paeth), as real encoders mix them."""
    h, w, c = arr.shape
    colour_type = {2: 4, 3: 2, 4: 6}[c]
    bpp = 2 * c
    rows = [
        np.frombuffer(arr[r].astype(">u2").tobytes(), np.uint8).astype(np.int64) for r in range(h)
    ]
    raw = b""
    for r, x in enumerate(rows):
        up = rows[r - 1] if r else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]])
        kind = r % 5
        if kind == 4:
            p = left + up - upleft
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        else:
            pred = [0 * x, left, up, (left + up) // 2][kind]
        raw += bytes([kind]) + ((x - pred) % 256).astype(np.uint8).tobytes()

    path.write_bytes(png16_bytes(w, h, colour_type, raw))


@pytest.mark.parametrize("channels", [3, 4, 2])
def test_16bit_png_keeps_full_precision(tmp_path, channels):
    # values that are not multiples of 257, so 8-bit precision cannot represent them
    arr = np.random.default_rng(channels).integers(0, 65536, (7, 6, channels), dtype=np.uint16)
    arr[arr % 257 == 0] += 1
    arr[0, 0] = [1] * channels
    arr[0, 1] = [65534] * channels
    write_png16_filtered(tmp_path / "p16.png", arr)
    out = read_image(tmp_path / "p16.png")
    expect = arr / 65535.0
    if channels == 2:  # grey+alpha becomes RGBA
        expect = np.concatenate([np.repeat(expect[..., :1], 3, -1), expect[..., 1:]], -1)
    assert out.shape == (7, 6, 3 if channels == 3 else 4) and out.dtype == np.float32
    np.testing.assert_allclose(out, expect, atol=0.5 / 65535, rtol=0)


def test_16bit_rgb_png_with_exif_rotation(tmp_path):
    arr = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 1001 + 7
    write_png16(tmp_path / "r.png", arr)
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[ORIENTATION] = 6
    data = (tmp_path / "r.png").read_bytes()
    body = exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif\x00\x00") else exif.tobytes()
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + body) & 0xFFFFFFFF)
    iend = data.rindex(b"IEND") - 4
    (tmp_path / "r.png").write_bytes(data[:iend] + chunk + data[iend:])
    out = read_image(tmp_path / "r.png")
    np.testing.assert_allclose(out, DISPLAYED[6](arr) / 65535.0, atol=0.5 / 65535, rtol=0)


def test_truncated_16bit_png(tmp_path):
    arr = np.random.default_rng(0).integers(0, 65536, (32, 32, 3), dtype=np.uint16)
    write_png16(tmp_path / "t.png", arr)
    p = tmp_path / "t.png"
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(DataError, match=r"t.png: unreadable or truncated image"):
        read_image(p)
