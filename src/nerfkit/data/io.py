"""Reading images and JSON with one-line errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from nerfkit.errors import DataError

if TYPE_CHECKING:
    from PIL.ImageFile import ImageFile


def read_json(path: Path) -> dict:
    """Parse a JSON file; a missing file or a syntax error becomes a DataError naming the place."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}; "
            "fix or re-export it"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


# 16-bit colour PNGs: Pillow decodes them at 8 bits (the high bytes, rawmode "...;16B"). Decoding
# the same file again with the little-endian rawmode keeps the other byte of each sample (the same
# filter unit, so the same un-filtering): high * 256 + low is the full 16-bit value. Grey+alpha
# (LA;16B, opened as RGBA) decodes losslessly as raw RGBA bytes (L high, L low, A high, A low).
_PNG16_RAWMODES = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L", "LA;16B": "RGBA"}


def read_image(path: Path) -> np.ndarray:
    """Read an image as float32 [H, W, C] in [0, 1], C = 3 (RGB) or 4 (RGBA).

    Greyscale, palette and CMYK images are converted; 16-bit images (grey, RGB, RGBA, grey+alpha
    PNGs) keep their full precision; EXIF orientation is applied.
    An unreadable or truncated file raises a DataError naming it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.is_file():
        raise DataError(f"{path}: image not found; check the frame's file_path")
    try:
        with Image.open(path) as im:
            png16 = _read_png16(path, im)
            if png16 is not None:
                return png16
            im.load()
            im = ImageOps.exif_transpose(im)
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)
                arr = arr / (65535.0 if arr.max() > 255 or mode != "I" else 255.0)
                return np.repeat(arr[..., None], 3, axis=-1).astype(np.float32)
            if mode == "F":
                arr = np.asarray(im, dtype=np.float32)
                return np.repeat(np.clip(arr, 0, 1)[..., None], 3, axis=-1)
            has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info)
            im = im.convert("RGBA" if has_alpha else "RGB")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable or truncated image ({e}); re-export it") from None
    return arr.astype(np.float32) / 255.0


def _read_png16(path: Path, im: ImageFile) -> np.ndarray | None:
    """A 16-bit RGB, RGBA or grey+alpha PNG at full precision (see _PNG16_RAWMODES) as float32
    [H, W, 3|4] in [0, 1], EXIF orientation applied; None for any other image (and where this
    Pillow lacks the rawmode, so that the caller reads it at 8 bits).

    Args:
        im: `path` opened by PIL, not yet loaded.
    """
    from PIL import Image, ImageOps

    tile = getattr(im, "tile", None)
    if im.format != "PNG" or not tile or len(tile) != 1 or tile[0][3] not in _PNG16_RAWMODES:
        return None
    raw = _PNG16_RAWMODES[tile[0][3]]
    with Image.open(path) as other:
        t = other.tile[0]
        other.tile = [t._replace(args=raw) if hasattr(t, "_replace") else (*t[:3], raw)]
        try:
            other.load()
        except ValueError:  # "unknown raw mode"
            return None
        low = np.asarray(ImageOps.exif_transpose(other), dtype=np.uint16)
    if raw == "RGBA":  # grey+alpha: the raw bytes
        grey, alpha = low[..., 0] << 8 | low[..., 1], low[..., 2] << 8 | low[..., 3]
        arr = np.stack([grey, grey, grey, alpha], -1)
    else:
        im.load()
        arr = np.asarray(ImageOps.exif_transpose(im), dtype=np.uint16) << 8 | low
    return arr.astype(np.float32) / 65535.0


def composite_background(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Composite straight (non-premultiplied) RGBA over a background colour.

    Transparent pixels may hold arbitrary RGB (e.g. the mic scene), which alpha removes.

    Args:
        rgba: [H, W, 4] in [0, 1]; background: [3].
    Returns:
        [H, W, 3]
    """
    if rgba.shape[-1] == 3:
        return rgba
    a = rgba[..., 3:4]
    return rgba[..., :3] * a + background[None, None, :] * (1.0 - a)


def downscale_image(img: Tensor, factor: int) -> Tensor:
    """Area-average downscale of [H, W, C] by an integer factor (sizes rounded down)."""
    if factor == 1:
        return img
    h, w = img.shape[0] // factor, img.shape[1] // factor
    x = img[: h * factor, : w * factor].permute(2, 0, 1)[None]
    return torch.nn.functional.avg_pool2d(x, factor)[0].permute(1, 2, 0).contiguous()


def rgb_tensor(img: np.ndarray, background: np.ndarray, downscale: int = 1) -> Tensor:
    """An image as read by `read_image` -> float32 RGB tensor [H/k, W/k, 3] over `background`.

    Composites RGBA onto the background (see `composite_background`), then area-downscales.
    """
    rgb = torch.from_numpy(np.ascontiguousarray(composite_background(img, background)))
    return downscale_image(rgb, downscale)
