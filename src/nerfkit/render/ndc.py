"""Normalised device coordinates for forward-facing scenes (NeRF paper, appendix C)."""

from __future__ import annotations

import torch
from torch import Tensor


def ndc_rays(
    origins: Tensor, directions: Tensor, focal: float, width: int, height: int, near: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Map camera-space-aligned rays into the NDC cube of the reference camera.

    First each origin is moved onto the plane z = -near; then, with the projection of a pinhole
    camera of focal `focal` and size `width` x `height` looking along -z, the ray becomes a ray
    whose t' in [0, 1] spans depths from the near plane (z' = -1) to infinity (z' = +1).

    Args:
        origins, directions: [R, 3] in the world frame of the forward-facing scene (the frame in
            which the cameras look roughly along -z).
        focal: focal length in pixels; width, height: image size in pixels.
        near: depth of the near plane.
    Returns:
        (origins, directions) in NDC, each [R, 3]; the ray is o' + t' d' with t' in [0, 1].
    """
    t = -(near + origins[..., 2]) / directions[..., 2]
    o = origins + t[..., None] * directions
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = directions.unbind(-1)
    ax = -1.0 / (width / (2.0 * focal))
    ay = -1.0 / (height / (2.0 * focal))
    o0 = ax * ox / oz
    o1 = ay * oy / oz
    o2 = 1.0 + 2.0 * near / oz
    d0 = ax * (dx / dz - ox / oz)
    d1 = ay * (dy / dz - oy / oz)
    d2 = -2.0 * near / oz
    return torch.stack([o0, o1, o2], -1), torch.stack([d0, d1, d2], -1)


def from_ndc(q: Tensor, focal: float, width: int, height: int) -> Tensor:
    """NDC points [N, 3] (near plane at depth 1, `nerfkit.render.ndc.ndc_rays`) -> the scene
    frame [N, 3]: x' = -f / (W / 2) x / z, y' = -f / (H / 2) y / z, z' = 1 + 2 / z inverted."""
    z = 2.0 / (q[..., 2] - 1.0)
    return torch.stack(
        [-q[..., 0] * z * width / (2 * focal), -q[..., 1] * z * height / (2 * focal), z], -1
    )
