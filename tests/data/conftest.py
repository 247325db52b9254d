"""Helpers shared by the loader tests (as fixtures: test modules do not import each other)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from torch import Tensor

from nerfkit.cameras import Cameras
from nerfkit.render.ndc import from_ndc


def ndc_ray_miss(
    cams: Cameras, cam: Tensor, px: Tensor, py: Tensor, p_scene: Tensor
) -> tuple[Tensor, Tensor]:
    """NDC rays of cameras `cam` [R] through pixels (px, py) [R], mapped back out of NDC: the
    distance [R] from each scene point p_scene [R, 3] to its ray, and the NDC t' [R] at which
    the ray passes it (in (0, 1) for content beyond the near plane)."""
    rays = cams.rays(cam, px.float(), py.float(), near=0.0, far=1.0, ndc=True)
    o, d = rays.origins.double(), rays.directions.double()
    f, w, h = float(cams.fx[0]), cams.width, cams.height
    a, b = from_ndc(o + 0.25 * d, f, w, h), from_ndc(o + 0.75 * d, f, w, h)
    u = (b - a) / (b - a).norm(dim=-1, keepdim=True)
    v = p_scene.double() - a
    dist = (v - (v * u).sum(-1, keepdim=True) * u).norm(dim=-1)
    z_ndc = 1.0 + 2.0 / p_scene.double()[:, 2]
    return dist, (z_ndc - o[:, 2]) / d[:, 2]


@pytest.fixture
def ndc_miss() -> Callable[..., tuple[Tensor, Tensor]]:
    """`ndc_ray_miss`, for the loader tests."""
    return ndc_ray_miss
