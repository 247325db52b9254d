"""Render paths for videos: an orbit around object scenes, the reference NeRF spiral for
forward-facing ones, a fixed camera; and, for dynamic scenes, the time of every frame
(`frame_times`). The pose maths they build on lives in `nerfkit.poses`."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from nerfkit.data.colmap import qvec_to_rotmat
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


# ----------------------------------------------------------------------------- interpolated path


def rotmat_to_quat(r: np.ndarray) -> np.ndarray:
    """Rotation matrix [3, 3] -> unit quaternion (w, x, y, z) [4] with w >= 0 (Shepperd's
    method: the largest of the four squared components is taken from the diagonal, the others
    from off-diagonal sums, so no branch divides by a small number). The inverse of
    `nerfkit.data.colmap.qvec_to_rotmat`."""
    r = np.asarray(r, dtype=np.float64)
    tr = np.trace(r)
    diag = np.array([tr, r[0, 0], r[1, 1], r[2, 2]])
    k = int(diag.argmax())
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = [s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif k == 1:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [(r[2, 1] - r[1, 2]) / s, s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif k == 2:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions along the shorter arc.

    Args:
        q0, q1: [4] unit quaternions (w, x, y, z); t: [T] (or a scalar) fractions, 0 -> q0, 1 -> q1.
    Returns:
        [T, 4] unit quaternions (constant angular speed in t).
    """
    q0, q1 = np.asarray(q0, np.float64), np.asarray(q1, np.float64)
    t = np.atleast_1d(np.asarray(t, np.float64))[:, None]
    dot = float(q0 @ q1)
    if dot < 0.0:  # q and -q are the same rotation: take the shorter way
        q1, dot = -q1, -dot
    if dot > 1.0 - 1e-9:  # (nearly) the same rotation: linear, then renormalised
        q = (1.0 - t) * q0 + t * q1
    else:
        theta = math.acos(dot)
        q = (np.sin((1.0 - t) * theta) * q0 + np.sin(t * theta) * q1) / math.sin(theta)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def catmull_rom(p: np.ndarray, u: np.ndarray | float, alpha: float = 0.5) -> np.ndarray:
    """Points of one Catmull-Rom segment, from p[1] (u = 0) to p[2] (u = 1).

    The Barry-Goldman form with knots spaced by |p[i+1] - p[i]|^alpha: alpha = 0.5 is the
    centripetal spline (no cusps or self-intersections within a segment), 0 the uniform one.

    Args:
        p: [4, D] control points p0..p3; u: [T] (or a scalar) in [0, 1].
    Returns:
        [T, D] points; the segments of consecutive windows join with continuous tangents.
    """
    p = np.asarray(p, np.float64)
    u = np.atleast_1d(np.asarray(u, np.float64))[:, None]
    gaps = np.maximum(np.linalg.norm(np.diff(p, axis=0), axis=-1) ** alpha, 1e-9)
    t0, t1, t2, t3 = np.concatenate([[0.0], np.cumsum(gaps)])
    t = t1 + u * (t2 - t1)

    def lerp(a: np.ndarray, b: np.ndarray, ta: float, tb: float) -> np.ndarray:
        return ((tb - t) * a + (t - ta) * b) / (tb - ta)

    a1, a2, a3 = lerp(p[0], p[1], t0, t1), lerp(p[1], p[2], t1, t2), lerp(p[2], p[3], t2, t3)
    b1, b2 = lerp(a1, a2, t0, t2), lerp(a2, a3, t1, t3)
    return lerp(b1, b2, t1, t2)


def interpolate_poses(
    keys: np.ndarray | Tensor, n_frames: int, closed: bool = True, alpha: float = 0.5
) -> Tensor:
    """A smooth camera path through key poses: positions on a Catmull-Rom spline
    (`catmull_rom`), rotations slerped (`slerp`) between consecutive keys; frames spaced evenly
    along the chord lengths, so the camera moves at a roughly constant speed.

    Args:
        keys: [K, 3|4, 4] key camera-to-world matrices (rigid), in path order, K >= 2.
        n_frames: F; closed: loop back from the last key to the first (the last frame then
            stops short of the first key); open: the first and last frames are the end keys.
        alpha: knot spacing exponent of the spline (0.5: centripetal).
    Returns:
        [F, 4, 4] camera-to-world matrices, float32; frame 0 is keys[0].
    """
    keys = np.asarray(keys, dtype=np.float64)
    k = keys.shape[0]
    if k < 2 or n_frames < 1:
        raise NerfkitError(
            f"a path through poses needs >= 2 poses and >= 1 frame, got {k}, {n_frames}"
        )
    pos = keys[:, :3, 3]
    quats = np.stack([rotmat_to_quat(m[:3, :3]) for m in keys])
    n_seg = k if closed else k - 1
    if closed:
        ctrl = pos[np.arange(-1, k + 2) % k]
    else:  # end tangents: reflect the neighbours of the end points
        ctrl = np.concatenate([[2 * pos[0] - pos[1]], pos, [2 * pos[-1] - pos[-2]]])
    chords = np.linalg.norm(ctrl[2 : 2 + n_seg] - ctrl[1 : 1 + n_seg], axis=-1)
    if chords.sum() <= 1e-12:  # all keys at one place: equal time per segment
        chords = np.ones(n_seg)
    ends = np.concatenate([[0.0], np.cumsum(chords)])
    denom = n_frames if closed else max(n_frames - 1, 1)
    s = np.arange(n_frames) * ends[-1] / denom
    seg = np.clip(np.searchsorted(ends, s, side="right") - 1, 0, n_seg - 1)
    u = np.clip((s - ends[seg]) / chords[seg], 0.0, 1.0)
    out = np.tile(np.eye(4), (n_frames, 1, 1))
    for j in range(n_frames):
        i = seg[j]
        out[j, :3, 3] = catmull_rom(ctrl[i : i + 4], u[j], alpha)[0]
        out[j, :3, :3] = qvec_to_rotmat(slerp(quats[i], quats[(i + 1) % k], u[j])[0])
    return torch.tensor(out, dtype=torch.float32)


def select_views(c2w: np.ndarray | Tensor, n_keys: int) -> list[int]:
    """A spread-out subset of camera poses in a nearest-neighbour order: up to `n_keys` views
    picked by farthest-point sampling of the positions (from view 0), then ordered by a
    nearest-neighbour tour starting at view 0.

    Args:
        c2w: [N, 3|4, 4] camera-to-world matrices. n_keys: how many to keep (>= 1).
    Returns:
        indices into c2w, in path order.
    """
    pos = np.asarray(c2w, dtype=np.float64)[:, :3, 3]
    chosen = [0]
    dist = np.linalg.norm(pos - pos[0], axis=-1)
    while len(chosen) < min(n_keys, len(pos)):
        nxt = int(dist.argmax())
        if dist[nxt] <= 0 and len(chosen) > 1:
            break
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(pos - pos[nxt], axis=-1))
    order, left = [chosen[0]], chosen[1:]
    while left:
        here = pos[order[-1]]
        j = int(np.argmin([np.linalg.norm(pos[i] - here) for i in left]))
        order.append(left.pop(j))
    return order


def interp_path(
    c2w: np.ndarray | Tensor, n_frames: int = 120, n_keys: int = 8, closed: bool = True
) -> tuple[Tensor, list[int]]:
    """A smooth path through training views: `select_views` picks up to `n_keys` of them,
    `interpolate_poses` joins them (a loop when `closed`).

    Args:
        c2w: [N, 4, 4] training camera-to-world matrices (OpenGL frame), N >= 2.
    Returns:
        ([n_frames, 4, 4] float32 poses, the indices of the training views passed through).
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.shape[0] < 2:
        raise NerfkitError(
            f"--path interp needs at least 2 training views, the run has {c2w.shape[0]}; "
            "use --path orbit or spiral"
        )
    keys = select_views(c2w, n_keys)
    return interpolate_poses(c2w[keys], n_frames, closed), keys
