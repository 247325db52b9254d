"""Camera pose maths: small pure functions on camera-to-world matrices.

Conventions (docs/conventions.md): camera-to-world matrices in the OpenGL frame (camera +x right,
+y up, looking along -z); a [3, 4] matrix is a [4, 4] one without its last row (0, 0, 0, 1).
The numpy functions work in float64 (the loaders); the torch ones keep their input's dtype
(render paths, the synthetic scene). Only torch and numpy are imported here.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

ArrayT = TypeVar("ArrayT", np.ndarray, Tensor)


def normalize(v: ArrayT) -> ArrayT:
    """Unit vectors along the last axis (zero vectors stay zero). [..., 3] -> [..., 3]"""
    if isinstance(v, Tensor):
        return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


# ----------------------------------------------------------------------------- building poses


def look_at(eye: Tensor, target: Tensor, up: Tensor) -> Tensor:
    """Camera-to-world [4, 4] of a camera at `eye` looking at `target`, its +y towards `up`.

    Args:
        eye, target, up: [3].
    """
    back = eye - target
    back = back / back.norm()
    right = torch.linalg.cross(up, back)
    if right.norm() < 1e-8:  # looking along `up`: pick any perpendicular
        axis = torch.zeros_like(back)
        axis[int(back.abs().argmin())] = 1.0  # the world axis least parallel to `back`
        right = torch.linalg.cross(axis, back)
    right = right / right.norm()
    true_up = torch.linalg.cross(back, right)
    m = torch.eye(4, dtype=eye.dtype, device=eye.device)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, true_up, back, eye
    return m


def orbit_pose(azimuth: float, elevation: float, radius: float) -> Tensor:
    """Camera-to-world [4, 4] (float64) at `radius` from the origin looking at it, +z up.

    Args:
        azimuth: angle about +z from +x; elevation: angle above the xy plane (radians).
    """
    eye = torch.tensor(
        [
            radius * math.cos(elevation) * math.cos(azimuth),
            radius * math.cos(elevation) * math.sin(azimuth),
            radius * math.sin(elevation),
        ],
        dtype=torch.float64,
    )
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    return look_at(eye, torch.zeros(3, dtype=torch.float64), up)


def view_matrix(z: np.ndarray, up: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Camera-to-world [3, 4] with back axis `z`, roughly-up `up`, position `pos` (each [3])."""
    z = normalize(z)
    x = normalize(np.cross(up, z))
    y = normalize(np.cross(z, x))
    return np.stack([x, y, z, pos], 1)


def opencv_w2c_to_c2w(rot: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World-to-camera poses in the OpenCV frame (x right, y down, z forward), as COLMAP and
    Nerfies store them, -> camera-to-world in the OpenGL frame.

    Args:
        rot: [N, 3, 3] world-to-camera rotations; t: [N, 3] translations (x_cam = R x + t).
    Returns:
        [N, 4, 4]: [R^T | -R^T t], its y and z columns flipped.
    """
    c2w = np.tile(np.eye(4), (rot.shape[0], 1, 1))
    c2w[:, :3, :3] = np.transpose(rot, (0, 2, 1)) @ np.diag([1.0, -1.0, -1.0])
    c2w[:, :3, 3] = -np.einsum("nji,nj->ni", rot, t)
    return c2w


# ----------------------------------------------------------------------------- summarising poses


def average_pose(c2w: np.ndarray) -> np.ndarray:
    """The reference NeRF `poses_avg`: mean position, back (+z) axis and up.

    Args:
        c2w: [N, 3|4, 4]. Returns: [3, 4].
    """
    return view_matrix(c2w[:, :3, 2].sum(0), c2w[:, :3, 1].sum(0), c2w[:, :3, 3].mean(0))


def focus_point(c2w: Tensor) -> Tensor:
    """The point closest (least squares) to all cameras' optical axes.

    Args:
        c2w: [N, 4, 4]. Returns: [3] (the mean camera position if the axes are all parallel).
    """
    o = c2w[:, :3, 3].double()
    d = normalize(-c2w[:, :3, 2].double())  # cameras look along -z
    eye = torch.eye(3, dtype=torch.float64)
    proj = eye[None] - d[:, :, None] * d[:, None, :]  # [N, 3, 3]
    a = proj.sum(0)
    b = (proj @ o[:, :, None]).sum(0)[:, 0]
    if torch.linalg.matrix_rank(a) < 3:
        return o.mean(0).float()
    return torch.linalg.solve(a, b).float()


def similarity_scale(t: np.ndarray) -> float:
    """The scale factor of a similarity t [4, 4] (rotation times a uniform scale)."""
    return float(np.cbrt(abs(np.linalg.det(t[:3, :3]))))


def scene_kind(c2w: np.ndarray) -> str:
    """'forward' when all cameras look roughly the same way (|mean view dir| > 0.9), else
    'object'. c2w: [N, 3|4, 4]."""
    view = -c2w[:, :3, 2]
    return "forward" if np.linalg.norm(view.mean(0)) > 0.9 else "object"


FORWARD_MAX_ANGLE_DEG = 30.0  # every view direction within this of the mean one
FORWARD_MAX_SPREAD = 0.5  # camera spread at most this times the distance to the content


def is_forward_facing(c2w: np.ndarray, near: np.ndarray | float | None = None) -> bool:
    """Whether cameras form a forward-facing capture (LLFF-like: NDC material), from the poses.

    The rule, every part of which must hold:
    1. at least 2 cameras;
    2. every camera's view direction (-z) lies within FORWARD_MAX_ANGLE_DEG = 30 degrees of the
       cameras' mean view direction (LLFF flower: 4.3 degrees; an orbit or a ring: up to 180);
    3. small baseline: the spread of the cameras, the largest distance of a camera centre from
       their mean, is at most FORWARD_MAX_SPREAD = 0.5 times the distance to the content, the
       median over cameras of `near` (flower: 0.28). A "sweep" (cameras facing one way, spread
       far apart along a wall) fails here: no single frustum holds what its cameras see.
       Without `near` (content depth unknown) this part is not checked.

    Args:
        c2w: [N, 3|4, 4] camera-to-world (OpenGL frame: cameras look along -z).
        near: [N] depth of the nearest content each camera sees (or one depth for all), in the
            units of the camera positions, e.g. from sparse points or LLFF bounds; None: unknown.
    """
    if c2w.shape[0] < 2:
        return False
    view = normalize(-c2w[:, :3, 2])
    mean = normalize(view.mean(0))
    cos = np.clip(view @ mean, -1.0, 1.0)
    if np.degrees(np.arccos(cos.min())) > FORWARD_MAX_ANGLE_DEG:
        return False
    if near is None:
        return True
    pos = c2w[:, :3, 3]
    spread = float(np.linalg.norm(pos - pos.mean(0), axis=-1).max())
    return spread <= FORWARD_MAX_SPREAD * float(np.median(near))


# ----------------------------------------------------------------------------- re-framing poses


def recenter_poses(c2w: np.ndarray) -> np.ndarray:
    """Express poses [N, 3|4, 4] in the frame of their average pose. Returns [N, 4, 4]."""
    n = c2w.shape[0]
    full = np.tile(np.eye(4), (n, 1, 1))
    full[:, :3, :4] = c2w[:, :3, :4]
    avg = np.eye(4)
    avg[:3, :4] = average_pose(full)
    return np.linalg.inv(avg) @ full


def forward_facing_frame(
    c2w: np.ndarray, bounds: np.ndarray, bd_factor: float = 0.75
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frame NDC rays need (the reference `load_llff_data(recenter=True, bd_factor=0.75)`).

    Positions and bounds are scaled by 1 / (bd_factor * min(bounds)), so the nearest content
    lies at depth 1 / bd_factor, beyond the NDC near plane at depth 1; then the poses are
    recentred on their average pose (`recenter_poses`), so the cameras look along -z.

    Args:
        c2w: [N, 3|4, 4] camera-to-world (OpenGL frame).
        bounds: [N, 2] per-camera near and far depths of the content (positive).
        bd_factor: the margin; 0.75 as in the reference code.
    Returns:
        (c2w [N, 4, 4] re-framed, bounds [N, 2] scaled, T [4, 4] the similarity applied to
        points: p_new = T[:3, :3] @ p + T[:3, 3]).
    """
    sc = 1.0 / (bounds.min() * bd_factor)
    c2w = c2w.copy()
    c2w[:, :3, 3] *= sc
    avg = np.eye(4)
    avg[:3, :4] = average_pose(c2w)
    t = np.linalg.inv(avg) @ np.diag([sc, sc, sc, 1.0])
    return recenter_poses(c2w), bounds * sc, t


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation [3, 3] turning unit vector a [3] onto unit vector b [3] (about a x b)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1 + 1e-8:  # opposite: turn by pi about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def normalize_poses(
    c2w: np.ndarray, orient: bool = True, scale: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Centre, orient ("up" -> +z) and scale camera poses, as nerfstudio's auto-orient.

    Args:
        c2w: [N, 4, 4] camera-to-world (OpenGL frame).
        orient: rotate so that the mean camera up (+y) axis becomes world +z.
        scale: scale so that the largest |coordinate| of a camera position is 1.
    Returns:
        (c2w [N, 4, 4] normalised with rigid rotations, T [4, 4] the similarity applied to
        points: p_new = T[:3, :3] @ p + T[:3, 3]).
    """
    centre = c2w[:, :3, 3].mean(0)
    rot = np.eye(3)
    if orient:
        up = c2w[:, :3, 1].mean(0)
        if np.linalg.norm(up) > 1e-8:
            rot = rotation_between(up, np.array([0.0, 0.0, 1.0]))
    pos = (c2w[:, :3, 3] - centre) @ rot.T
    s = 1.0
    if scale:
        extent = float(np.abs(pos).max())
        s = 1.0 / extent if extent > 1e-12 else 1.0
    out = c2w.copy()
    out[:, :3, :3] = rot @ c2w[:, :3, :3]
    out[:, :3, 3] = pos * s
    t = np.eye(4)
    t[:3, :3] = s * rot
    t[:3, 3] = -s * rot @ centre
    return out, t


# ----------------------------------------------------------------------------- aligning poses


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity dst ~ s * R @ src + t (Umeyama 1991).

    Args:
        src, dst: [N, 3] corresponding points, N >= 3 not collinear.
    Returns:
        (s, R [3, 3] a rotation (det +1), t [3]).
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    e = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[2, 2] = -1.0
    rot = u @ e @ vt
    var_s = (xs**2).sum(1).mean()
    s = float(np.trace(np.diag(d) @ e) / var_s)
    return s, rot, mu_d - s * rot @ mu_s


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle in degrees of the rotation taking [3, 3] rotation a to b (of a^T b)."""
    c = (np.trace(a.T @ b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


# ----------------------------------------------------------------------------- boxes


def box_corners(box: np.ndarray) -> np.ndarray:
    """The 8 corners [8, 3] of the axis-aligned box [[xmin, ymin, zmin], [xmax, ymax, zmax]]."""
    return np.array(
        [[box[i, 0], box[j, 1], box[k, 2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    )


def transform_box(box: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The axis-aligned box [2, 3] holding box [2, 3] after the similarity t [4, 4]."""
    c = box_corners(box) @ t[:3, :3].T + t[:3, 3]
    return np.stack([c.min(0), c.max(0)])


def far_from_box(c2w: np.ndarray, box: np.ndarray) -> float:
    """The largest distance from a camera centre (c2w [N, 3|4, 4]) to a corner of box [2, 3]."""
    d = np.linalg.norm(c2w[:, None, :3, 3] - box_corners(box)[None], axis=-1)
    return float(d.max())
