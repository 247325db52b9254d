"""Camera paths for videos: an orbit around object scenes, a spiral for forward-facing ones.

The spiral is the reference NeRF/LLFF one, which lives beside the LLFF recentring it relies on.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nerfkit.cameras import look_at
from nerfkit.data.llff import spiral_path

__all__ = ["focus_point", "orbit_path", "spiral_path"]


def _normalize(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def focus_point(c2w: Tensor) -> Tensor:
    """The point closest (least squares) to all cameras' optical axes.

    Args:
        c2w: [N, 4, 4]. Returns: [3].
    """
    o = c2w[:, :3, 3].double()
    d = _normalize(-c2w[:, :3, 2].double())  # cameras look along -z
    eye = torch.eye(3, dtype=torch.float64)
    proj = eye[None] - d[:, :, None] * d[:, None, :]  # [N, 3, 3]
    a = proj.sum(0)
    b = (proj @ o[:, :, None]).sum(0)[:, 0]
    if torch.linalg.matrix_rank(a) < 3:
        return o.mean(0).float()
    return torch.linalg.solve(a, b).float()


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
    up = _normalize(c2w[:, :3, 1].mean(0))
    offsets = c2w[:, :3, 3] - center
    radius = offsets.norm(dim=-1).mean()
    if elevation_deg is None:
        sin_el = (_normalize(offsets) @ up).mean().clamp(-0.99, 0.99)
        elev = math.asin(float(sin_el))
    else:
        elev = math.radians(elevation_deg)
    # an orthonormal basis of the orbit plane, starting at the first camera's azimuth
    first = offsets[0] - (offsets[0] @ up) * up
    e1 = _normalize(first if first.norm() > 1e-6 else torch.linalg.cross(up, c2w[0, :3, 0]))
    e2 = torch.linalg.cross(up, e1)
    poses = []
    for k in range(n_frames):
        th = 2 * math.pi * k / n_frames
        dirn = math.cos(elev) * (math.cos(th) * e1 + math.sin(th) * e2) + math.sin(elev) * up
        poses.append(look_at(center + radius * dirn, center, up))
    return torch.stack(poses)
