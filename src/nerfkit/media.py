"""Writing PNG and MP4 files atomically (a failed write never leaves a half file)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from torch import Tensor

from nerfkit.atomic import atomic_path


def to_uint8(img: np.ndarray | Tensor) -> np.ndarray:
    """[H, W, C] float in [0, 1] -> uint8 (rounded, as the papers' 8-bit PNGs)."""
    if isinstance(img, Tensor):
        img = img.detach().float().cpu().numpy()
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(path: Path, img: np.ndarray | Tensor) -> Path:
    """Write [H, W, 3|4] float in [0, 1] or uint8 as PNG, atomically."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = img if isinstance(img, np.ndarray) and img.dtype == np.uint8 else to_uint8(img)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, arr, extension=".png")
    return path


def write_mp4(path: Path, frames: Iterable[np.ndarray], fps: int = 30) -> Path:
    """Write uint8 [H, W, 3] frames as an H.264 MP4 (yuv420p, plays everywhere), atomically."""
    import imageio.v2 as iio2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(path) as tmp,
        iio2.get_writer(
            tmp,
            format="FFMPEG",
            mode="I",
            fps=fps,
            codec="libx264",
            quality=8,
            pixelformat="yuv420p",
            macro_block_size=1,
        ) as w,
    ):
        for f in frames:
            # yuv420p needs even sizes
            h, wd = f.shape[0] // 2 * 2, f.shape[1] // 2 * 2
            w.append_data(np.ascontiguousarray(f[:h, :wd]))
    return path


def colorize_depth(
    depth: np.ndarray | Tensor, near: float, far: float, acc: np.ndarray | Tensor | None = None
) -> np.ndarray:
    """Depth [H, W] -> uint8 [H, W, 3] with the turbo colour map (near = red... far = blue).

    Pixels with opacity `acc` below 0.5 are drawn white (nothing there).
    """
    import matplotlib

    if isinstance(depth, Tensor):
        depth = depth.detach().float().cpu().numpy()
    x = np.clip((depth - near) / max(far - near, 1e-8), 0.0, 1.0)
    rgb = matplotlib.colormaps["turbo"](1.0 - x)[..., :3]
    if acc is not None:
        if isinstance(acc, Tensor):
            acc = acc.detach().float().cpu().numpy()
        rgb[acc < 0.5] = 1.0
    return to_uint8(rgb)
