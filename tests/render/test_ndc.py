"""NDC rays (NeRF appendix C) against the projection of points."""

from __future__ import annotations

import pytest
import torch

from nerfkit.cameras import Cameras
from nerfkit.render.ndc import ndc_rays

W, H, FOCAL = 40, 30, 35.0


def project_ndc(p: torch.Tensor, near: float) -> torch.Tensor:
    """The NDC projection of points [..., 3]: (-2f/W x/z, -2f/H y/z, 1 + 2 near / z)."""
    x, y, z = p.unbind(-1)
    return torch.stack([-2 * FOCAL / W * x / z, -2 * FOCAL / H * y / z, 1 + 2 * near / z], -1)


def forward_rays(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    o = (torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5) * 0.4  # around the camera
    d = torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5
    d[:, 2] = -1.0  # looking along -z
    return o, d / d.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("near", [1.0, 0.5])
def test_near_plane_maps_to_minus_one_and_infinity_to_plus_one(near):
    o, d = forward_rays(16)
    o_ndc, d_ndc = ndc_rays(o, d, FOCAL, W, H, near=near)
    torch.testing.assert_close(o_ndc[:, 2], torch.full((16,), -1.0, dtype=torch.float64))
    torch.testing.assert_close((o_ndc + d_ndc)[:, 2], torch.ones(16, dtype=torch.float64))
    # points at z = -near project to z' = -1; far points approach +1
    p = torch.tensor([[0.1, -0.2, -near], [0.3, 0.1, -1e9]], dtype=torch.float64)
    z = project_ndc(p, near)[:, 2]
    assert z[0].item() == pytest.approx(-1.0, abs=1e-12)
    assert z[1].item() == pytest.approx(1.0, abs=1e-8)
    # the end of the NDC ray (t' = 1) is the ray's vanishing point
    vanishing = project_ndc(d * 1e9, near)[:, :2]
    torch.testing.assert_close((o_ndc + d_ndc)[:, :2], vanishing, atol=1e-7, rtol=0)


@pytest.mark.parametrize("near", [1.0, 0.5])
def test_points_on_a_ray_lie_on_the_ndc_ray(near):
    o, d = forward_rays(32, seed=1)
    o_ndc, d_ndc = ndc_rays(o, d, FOCAL, W, H, near=near)
    # distance from the ray origin to the near plane, then points beyond it
    t_near = -(near + o[:, 2]) / d[:, 2]
    for dt in [0.0, 0.1, 1.0, 7.5, 1e3]:
        p = o + (t_near + dt)[:, None] * d
        q = project_ndc(p, near)
        t_prime = (q[:, 2] - o_ndc[:, 2]) / d_ndc[:, 2]
        assert torch.all(t_prime >= -1e-12) and torch.all(t_prime <= 1.0)
        torch.testing.assert_close(o_ndc + t_prime[:, None] * d_ndc, q, atol=1e-9, rtol=0)
    # t' grows with depth
    t1 = (project_ndc(o + (t_near + 1.0)[:, None] * d, near)[:, 2] - o_ndc[:, 2]) / d_ndc[:, 2]
    t2 = (project_ndc(o + (t_near + 2.0)[:, None] * d, near)[:, 2] - o_ndc[:, 2]) / d_ndc[:, 2]
    assert torch.all(t2 > t1)


def test_image_plane_xy_is_the_normalised_pixel_position():
    # A reference camera at the origin: each NDC ray is parallel to z', at the pixel's position
    # normalised to [-1, 1] (x right, y up: the top row is y' = +1).
    cams = Cameras(
        c2w=torch.eye(4, dtype=torch.float64)[None],
        fx=torch.tensor([FOCAL], dtype=torch.float64),
        fy=torch.tensor([FOCAL], dtype=torch.float64),
        cx=torch.tensor([W / 2], dtype=torch.float64),
        cy=torch.tensor([H / 2], dtype=torch.float64),
        width=W,
        height=H,
    )
    px = torch.tensor([0.5, 20.0, 39.5, 7.25], dtype=torch.float64)
    py = torch.tensor([0.5, 15.0, 29.5, 22.0], dtype=torch.float64)
    rays = cams.rays(torch.zeros(4, dtype=torch.long), px, py, near=0.0, far=1.0, ndc=True)
    expected_xy = torch.stack([2 * px / W - 1, 1 - 2 * py / H], -1)
    torch.testing.assert_close(rays.origins[:, :2], expected_xy)
    torch.testing.assert_close(rays.directions[:, :2], torch.zeros(4, 2, dtype=torch.float64))
    torch.testing.assert_close(rays.origins[:, 2], -torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(rays.directions[:, 2], 2 * torch.ones(4, dtype=torch.float64))
    assert torch.all(rays.near == 0) and torch.all(rays.far == 1)
    # viewdirs keep the world directions (unit length), for view-dependent colour
    torch.testing.assert_close(rays.viewdirs.norm(dim=-1), torch.ones(4, dtype=torch.float64))
    # the same through the point projection: a world point seen at pixel (u, v)
    z = torch.tensor([-1.0, -3.0, -10.0, -2.0], dtype=torch.float64)
    p = torch.stack([(px - W / 2) / FOCAL * -z, -(py - H / 2) / FOCAL * -z, z], -1)
    torch.testing.assert_close(project_ndc(p, 1.0)[:, :2], expected_xy)
