"""Reading images and JSON with one-line errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nerfkit.errors import DataError


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


def read_image(path: Path) -> np.ndarray:
    """Read an image as float32 [H, W, C] in [0, 1], C = 3 (RGB) or 4 (RGBA).

    Greyscale, 16-bit, palette and CMYK images are converted; EXIF orientation is applied.
    An unreadable or truncated file raises a DataError naming it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.is_file():
        raise DataError(f"{path}: image not found; check the frame's file_path")
    try:
        with Image.open(path) as im:
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
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    return arr.astype(np.float32) / 255.0


def read_16bit_png(path: Path) -> np.ndarray | None:
    """Read a PNG keeping 16-bit precision for RGB(A) (PIL drops it); None if not 16-bit."""
    import imageio.v3 as iio

    arr = iio.imread(path)
    if arr.dtype != np.uint16:
        return None
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
