"""Render paths for videos: an orbit around object scenes, the reference NeRF spiral for
forward-facing ones, a fixed camera; and, for dynamic scenes, the time of every frame
(`frame_times`). The pose maths they build on lives in `nerfkit.poses`."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from nerfkit.errors import NerfkitError
from nerfkit.poses import average_pose, focus_point, look_at, normalize, view_matrix


def orbit_path(c2w: Tensor, n_frames: int = 120, elevation_deg: float | None = None) -> Tensor:
    """A full circle around the scene at the training cameras' mean distance and elevation.

    Args:
        c2w: [N, 4, 4] training cameras (OpenGL frame).
        n_frames: number of poses. elevation_deg: override the elevation above the orbit plane.
    Returns:
        [n_frames, 4, 4] camera-to-world matrices looking at the focus point.
    """
    c2w = c2w.float()
    center = focus_point(c2w)
    up = normalize(c2w[:, :3, 1].mean(0))
    offsets = c2w[:, :3, 3] - center
    radius = offsets.norm(dim=-1).mean()
    if elevation_deg is None:
        sin_el = (normalize(offsets) @ up).mean().clamp(-0.99, 0.99)
        elev = math.asin(float(sin_el))
    else:
        elev = math.radians(elevation_deg)
    # an orthonormal basis of the orbit plane, starting at the first camera's azimuth
    first = offsets[0] - (offsets[0] @ up) * up
    e1 = normalize(first if first.norm() > 1e-6 else torch.linalg.cross(up, c2w[0, :3, 0]))
    e2 = torch.linalg.cross(up, e1)
    poses = []
    for k in range(n_frames):
        th = 2 * math.pi * k / n_frames
        dirn = math.cos(elev) * (math.cos(th) * e1 + math.sin(th) * e2) + math.sin(elev) * up
        poses.append(look_at(center + radius * dirn, center, up))
    return torch.stack(poses)


def spiral_path(
    c2w: np.ndarray | Tensor | list,
    bounds: tuple[float, float] | list[float],
    n_frames: int = 120,
    n_rots: int = 2,
    zrate: float = 0.5,
) -> Tensor:
    """The reference NeRF spiral render path for a (recentred, rescaled) forward-facing scene.

    The cameras circle the average pose with radii the 90th percentile of |positions| and look at
    a point at the "mean focus depth" 1 / (0.25 / (0.9 near) + 0.75 / (5 far)).

    Args:
        c2w: [N, 3|4, 4] training camera-to-world matrices (OpenGL frame).
        bounds: scene-space (near, far) content depths, e.g. SceneMeta.bounds.
        n_frames: number of poses; n_rots: turns of the spiral; zrate: turns of the depth wobble
            per turn of the spiral.
    Returns:
        [n_frames, 4, 4] camera-to-world matrices, float32.
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    avg = average_pose(c2w)
    up = normalize(c2w[:, :3, 1].sum(0))
    close_depth, inf_depth = bounds[0] * 0.9, bounds[1] * 5.0
    dt = 0.75
    focus = 1.0 / ((1.0 - dt) / close_depth + dt / inf_depth)
    rads = np.append(np.percentile(np.abs(c2w[:, :3, 3]), 90, 0), 1.0)
    out = []
    for theta in np.linspace(0.0, 2.0 * np.pi * n_rots, n_frames + 1)[:-1]:
        local = np.array([np.cos(theta), -np.sin(theta), -np.sin(theta * zrate), 1.0]) * rads
        c = avg @ local
        z = normalize(c - avg @ np.array([0.0, 0.0, -focus, 1.0]))
        m = np.eye(4)
        m[:3, :4] = view_matrix(z, up, c)
        out.append(m)
    return torch.tensor(np.stack(out), dtype=torch.float32)


TimeMode = Literal["sweep", "frozen"]
"""How time runs over a dynamic render path: "sweep" from 0 to 1 over the frames, or "frozen"
at one instant."""


def check_time(time: float, what: str = "--time") -> float:
    """`time` as a float if it lies in [0, 1] (the range of `Split.times`), else NerfkitError."""
    t = float(time)
    if not 0.0 <= t <= 1.0:  # also refuses nan
        raise NerfkitError(f"{what} {time} is outside [0, 1]; scene time runs from 0 to 1")
    return t


def frame_times(n_frames: int, mode: TimeMode = "sweep", time: float | None = None) -> Tensor:
    """The time of each frame of a dynamic render path.

    Args:
        n_frames: number of frames F (>= 1).
        mode: "sweep": evenly spaced from 0 (first frame) to 1 (last frame; a single frame is
            at 0); "frozen": every frame at `time`.
        time: the instant in [0, 1] of a frozen path (required there, refused for a sweep).
    Returns:
        [F] float32 times in [0, 1].
    """
    if n_frames < 1:
        raise NerfkitError(f"a render path needs at least one frame, got {n_frames}")
    if mode == "sweep":
        if time is not None:
            raise NerfkitError("a time sweep runs from 0 to 1; a given --time freezes it")
        return torch.linspace(0.0, 1.0, n_frames) if n_frames > 1 else torch.zeros(1)
    if mode == "frozen":
        if time is None:
            raise NerfkitError("a frozen-time path needs a --time in [0, 1]")
        return torch.full((n_frames,), check_time(time))
    raise NerfkitError(f"unknown time mode '{mode}'; use sweep or frozen")
