"""Scenes packed into one `.npz` (the "tiny NeRF" / "tiny D-NeRF" files).

Keys: `images` [N, H, W, 3|4] (float in [0, 1] or uint8), `poses` [N, 4, 4] (or [N, 3, 4])
camera-to-world in the OpenGL frame, `focal` (pixels, scalar or [N]), optional `times` [N] in
[0, 1] (dynamic scenes), optional `near`, `far`, `i_split` (three index arrays) .

Splits: `i_split` if present; else, for dynamic scenes whose time stamps restart at 0 exactly
twice (train, val, test concatenated, as in ../shared/data/tiny_dnerf: 0-49, 50-60, 61-80), those
three runs; else every 8th frame held out for test (and val).
The background is black (the tiny files dropped alpha without compositing) unless the images
have an alpha channel, which is composited onto `background`. near/far default to the
synthetic Blender scenes' 2 and 6.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from nerfkit.data.core import HOLD, Frame, hold_out, scene_from_frames
from nerfkit.data.scene import Scene
from nerfkit.errors import DataError

REQUIRED = ("images", "poses", "focal")


def find_npz(root: Path) -> Path | None:
    """The single .npz file in root holding images, poses and focal (None if not exactly one)."""
    found = []
    for p in sorted(root.glob("*.npz")):
        try:
            with np.load(p, allow_pickle=False) as z:
                if all(k in z.files for k in REQUIRED):
                    found.append(p)
        except (OSError, ValueError, zipfile.BadZipFile):
            continue
    return found[0] if len(found) == 1 else None


def is_npz(root: Path) -> bool:
    return find_npz(root) is not None


def _time_runs(times: np.ndarray) -> list[np.ndarray] | None:
    """Index runs split where the time stamps restart (decrease)."""
    cuts = np.nonzero(np.diff(times) < 0)[0] + 1
    if len(cuts) != 2:
        return None
    return np.split(np.arange(len(times)), cuts)


def load_npz(
    root: Path,
    downscale: int = 1,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    near: float = 2.0,
    far: float = 6.0,
    hold: int = HOLD,
) -> Scene:
    """Load a single-file .npz scene (see the module docstring).

    Args:
        root: the folder holding one such .npz, or the .npz file itself.
    """
    root = Path(root)
    path = root if root.suffix == ".npz" else find_npz(root)
    if path is None:
        raise DataError(f"{root}: no single .npz with keys {', '.join(REQUIRED)} found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read ({e}); re-create the file") from None
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
    images = data["images"]
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or len(images) == 0:
        raise DataError(f"{path}: 'images' has shape {images.shape}, expected [N, H, W, 3|4]")
    images = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    if not np.all(np.isfinite(images)):
        raise DataError(f"{path}: 'images' has non-finite values")
    n = len(images)
    poses = np.asarray(data["poses"], dtype=np.float64)
    if poses.shape not in ((n, 4, 4), (n, 3, 4)):
        raise DataError(f"{path}: 'poses' has shape {poses.shape}, expected [{n}, 4, 4]")
    focal = np.broadcast_to(np.asarray(data["focal"], dtype=np.float64).reshape(-1), (n,))
    if not np.all(np.isfinite(focal)) or np.any(focal <= 0):
        raise DataError(f"{path}: 'focal' must be positive")
    times = data.get("times")
    if times is not None:
        times = np.asarray(times, dtype=np.float32).reshape(-1)
        if len(times) != n:
            raise DataError(f"{path}: {len(times)} times for {n} images")
    frames = [
        Frame(
            image=images[i],
            c2w=poses[i],
            name=f"frame_{i:03d}",
            where=f"{path} pose {i}",
            fx=float(focal[i]),
            fy=float(focal[i]),
            time=None if times is None else float(times[i]),
        )
        for i in range(n)
    ]

    if "i_split" in data:
        parts = [np.asarray(a, dtype=int).reshape(-1) for a in data["i_split"]]
        if len(parts) < 2:
            raise DataError(f"{path}: 'i_split' must hold train, val[, test] index arrays")
        split_idx = {k: v.tolist() for k, v in zip(("train", "val", "test"), parts)}
    elif times is not None and (runs := _time_runs(times)) is not None:
        split_idx = {k: v.tolist() for k, v in zip(("train", "val", "test"), runs)}
    else:
        split_idx = hold_out(n, hold)
    for name, ix in split_idx.items():
        if ix and (min(ix) < 0 or max(ix) >= n):
            raise DataError(f"{path}: split '{name}' indexes frames outside 0..{n - 1}")
    return scene_from_frames(
        frames,
        split_idx,
        root=root,
        source=path,
        downscale=downscale,
        background=background,
        near=float(np.asarray(data.get("near", near))),
        far=float(np.asarray(data.get("far", far))),
        format="npz",
    )
