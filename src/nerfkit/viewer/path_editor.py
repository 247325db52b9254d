"""The viewer's camera-path editor: keyframes (viewer cameras) -> a camera path that
`nerfkit render RUN --path FILE.json` renders, written as nerfstudio camera-path JSON
(`nerfkit.camera_path.save_camera_path`, in the scene frame, keyframes kept for editing).

Between keyframes the camera follows `nerfkit.paths.interpolate_poses` (positions on a
centripetal Catmull-Rom spline, rotations slerped, roughly constant speed); the field of view
is the first keyframe's (as `camera_path` does for a file of keyframes alone) and, for dynamic
runs, the time runs linearly from the first keyframe's to the last one's. No viser here.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nerfkit.camera_path import CameraPath, save_camera_path
from nerfkit.errors import NerfkitError
from nerfkit.paths import interpolate_poses


@dataclass(frozen=True)
class Keyframe:
    """One keyframe: c2w [4, 4] (OpenGL frame, scene frame), vertical field of view in degrees,
    and the time in [0, 1] shown when it was taken (dynamic runs; None for static ones)."""

    c2w: np.ndarray
    fov_deg: float
    time: float | None = None


def keyframe_path(
    keys: list[Keyframe],
    width: int,
    height: int,
    seconds: float,
    fps: float = 30.0,
    is_cycle: bool = False,
    scene_from_dataset: list[list[float]] | None = None,
) -> CameraPath:
    """The CameraPath of round(seconds * fps) frames through `keys` (a loop if `is_cycle`).

    Args:
        keys: K >= 2 keyframes; width, height: the frame size in pixels.
        scene_from_dataset: the run's SceneMeta.data_transform (recorded in the file).
    """
    if len(keys) < 2:
        raise NerfkitError(f"a camera path needs at least two keyframes, got {len(keys)}")
    if not (seconds > 0 and fps > 0):
        raise NerfkitError(f"a camera path needs seconds > 0 and fps > 0, got {seconds}, {fps}")
    n = max(2, round(seconds * fps))
    c2w = interpolate_poses(np.stack([k.c2w for k in keys]), n, closed=is_cycle)
    times = None
    if all(k.time is not None for k in keys):
        times = torch.linspace(float(keys[0].time), float(keys[-1].time), n)  # type: ignore[arg-type]
    fov = torch.full((n,), float(keys[0].fov_deg), dtype=torch.float64)
    return CameraPath(
        c2w=c2w,
        fov=fov,
        aspect=torch.full((n,), width / height, dtype=torch.float64),
        width=int(width),
        height=int(height),
        fps=float(fps),
        seconds=float(seconds),
        times=times,
        keyframes=torch.tensor(np.stack([k.c2w for k in keys]), dtype=torch.float32),
        keyframe_fov=torch.tensor([k.fov_deg for k in keys], dtype=torch.float64),
        is_cycle=is_cycle,
        scene_from_dataset=torch.tensor(scene_from_dataset) if scene_from_dataset else None,
    )


def render_command(run_dir: Path, path_file: Path) -> str:
    """The `nerfkit render` command line that renders the camera path in `path_file`."""
    return f"nerfkit render {shlex.quote(str(run_dir))} --path {shlex.quote(str(path_file))}"


def save_keyframe_path(path: Path, keys: list[Keyframe], **path_args: object) -> Path:
    """Write `keyframe_path(keys, **path_args)` to `path` (nerfstudio JSON). Returns path."""
    return save_camera_path(Path(path), keyframe_path(keys, **path_args))  # type: ignore[arg-type]
