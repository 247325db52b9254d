"""Cameras and rays: pinhole projection in the OpenGL frame, pixel centres, Rays bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.cameras import Cameras, Rays, ndc_ray_box
from nerfkit.poses import look_at

F64 = torch.float64


def make_cameras(c2w: torch.Tensor, w=64, h=48, fx=50.0, fy=55.0, cx=None, cy=None) -> Cameras:
    n = c2w.shape[0]
    full = lambda v: torch.full((n,), float(v), dtype=c2w.dtype)  # noqa: E731
    return Cameras(
        c2w=c2w,
        fx=full(fx),
        fy=full(fy),
        cx=full(w / 2 if cx is None else cx),
        cy=full(h / 2 if cy is None else cy),
        width=w,
        height=h,
    )


def project(cams: Cameras, k: int, p: torch.Tensor) -> tuple[float, float]:
    """Pinhole projection of world point p into camera k: OpenGL frame (x right, y up, looking
    along -z), (u, v) = (column, row) in continuous pixel units, row 0 at the top."""
    rot, trans = cams.c2w[k, :3, :3], cams.c2w[k, :3, 3]
    x, y, z = (rot.T @ (p - trans)).tolist()
    assert z < 0, "point behind the camera"
    u = cams.cx[k].item() + cams.fx[k].item() * x / -z
    v = cams.cy[k].item() - cams.fy[k].item() * y / -z
    return u, v


def rotation(axis, angle) -> torch.Tensor:
    a = torch.tensor(axis, dtype=F64)
    a = a / a.norm()
    k = torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]], dtype=F64)
    return torch.eye(3, dtype=F64) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def explicit_c2w() -> torch.Tensor:
    m = torch.eye(4, dtype=F64)
    m[:3, :3] = rotation([0.3, -1.0, 0.5], 0.7)
    m[:3, 3] = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    return m


def two_cameras() -> Cameras:
    eye = torch.tensor([3.0, -2.0, 1.5], dtype=F64)
    c0 = look_at(
        eye, torch.tensor([0.1, 0.2, 0.3], dtype=F64), torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    )
    return make_cameras(torch.stack([c0, explicit_c2w()]), cx=30.0, cy=26.0)


def distance_to_ray(p, o, d) -> float:
    t = (p - o) @ d
    assert t > 0, "point behind the ray origin"
    return (o + t * d - p).norm().item()


def test_ray_through_projected_pixel_hits_the_point():
    cams = two_cameras()
    g = torch.Generator().manual_seed(0)
    for k in range(2):
        for _ in range(10):
            # a point in front of camera k, somewhere in its view
            cam_pt = torch.tensor(
                [
                    (torch.rand(1, generator=g).item() - 0.5) * 2,
                    (torch.rand(1, generator=g).item() - 0.5) * 2,
                    -2 - 3 * torch.rand(1, generator=g).item(),
                ],
                dtype=F64,
            )
            p = cams.c2w[k, :3, :3] @ cam_pt + cams.c2w[k, :3, 3]
            u, v = project(cams, k, p)
            r = cams.rays(
                torch.tensor([k]),
                torch.tensor([u], dtype=F64),
                torch.tensor([v], dtype=F64),
                0.1,
                10.0,
            )
            assert distance_to_ray(p, r.origins[0], r.directions[0]) < 1e-9
            assert r.directions[0].norm().item() == pytest.approx(1.0, abs=1e-12)


def test_pixel_axes_follow_the_opengl_frame():
    # identity camera at the origin looking along -z: column grows to +x, row grows to -y
    cams = make_cameras(torch.eye(4, dtype=F64)[None], w=4, h=2, fx=2.0, fy=2.0)
    r = cams.image_rays(0, 0.0, 1.0)
    d = r.directions.double()
    assert torch.all(d[:, 2] < 0)
    top_left, bottom_right = d[0], d[-1]
    assert top_left[0] < 0 and top_left[1] > 0
    assert bottom_right[0] > 0 and bottom_right[1] < 0
    # pixel centres at +0.5: pixel (0, 0) of a 4x2 image with f = 2 is at x = -1.5/2, y = 0.5/2
    expected = torch.tensor([-0.75, 0.25, -1.0], dtype=F64)
    torch.testing.assert_close(top_left, expected / expected.norm(), atol=1e-6, rtol=0)


def test_image_rays_are_row_major_unit_and_complete():
    cams = two_cameras()
    w, h = cams.width, cams.height
    r = cams.image_rays(1, 2.0, 6.0)
    assert len(r) == h * w
    torch.testing.assert_close(r.directions.norm(dim=-1), torch.ones(h * w, dtype=F64))
    assert torch.all(r.near == 2.0) and torch.all(r.far == 6.0)
    torch.testing.assert_close(r.origins, cams.c2w[1, :3, 3].expand(h * w, 3))
    # index row * W + col is pixel (col, row) at its centre
    for row, col in [(0, 0), (0, w - 1), (1, 0), (h - 1, w - 1), (17, 5)]:
        single = cams.rays(
            torch.tensor([1]),
            torch.tensor([col + 0.5], dtype=F64),
            torch.tensor([row + 0.5], dtype=F64),
            2.0,
            6.0,
        )
        torch.testing.assert_close(r.directions[row * w + col], single.directions[0])


def test_centre_ray_of_a_camera_looking_at_the_origin_hits_the_origin():
    eye = torch.tensor([2.0, 3.0, -1.0], dtype=F64)
    c2w = look_at(eye, torch.zeros(3, dtype=F64), torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    cams = make_cameras(c2w[None], w=65, h=33)
    r = cams.rays(
        torch.tensor([0]),
        torch.tensor([32.5], dtype=F64),
        torch.tensor([16.5], dtype=F64),
        0.0,
        9.0,
    )
    assert distance_to_ray(torch.zeros(3, dtype=F64), r.origins[0], r.directions[0]) < 1e-12
    torch.testing.assert_close(r.directions[0], -eye / eye.norm())
    # the origin projects to the image centre
    u, v = project(cams, 0, torch.zeros(3, dtype=F64))
    assert (u, v) == (pytest.approx(32.5), pytest.approx(16.5))


def test_scaled_halves_focal_and_size():
    cams = make_cameras(torch.eye(4, dtype=F64)[None], w=64, h=48, fx=50.0, fy=55.0)
    half = cams.scaled(2)
    assert (half.width, half.height) == (32, 24)
    torch.testing.assert_close(half.fx, cams.fx / 2)
    torch.testing.assert_close(half.fy, cams.fy / 2)
    torch.testing.assert_close(half.cx, cams.cx / 2)
    torch.testing.assert_close(half.cy, cams.cy / 2)
    assert torch.equal(half.c2w, cams.c2w)


@pytest.mark.parametrize("w, h, k", [(64, 48, 2), (9, 7, 2), (101, 37, 4)])
def test_scaled_pixel_is_the_centre_of_its_block(w, h, k):
    # Regression: sizes that do not divide used to scale focal by (W // k) / W, not 1 / k, which
    # moved every ray of the (cropped, area-averaged) downscaled image.
    cams = make_cameras(explicit_c2w()[None], w=w, h=h, fx=40.0, fy=41.0, cx=w / 2, cy=h / 2)
    small = cams.scaled(k)
    assert (small.width, small.height) == (w // k, h // k)
    torch.testing.assert_close(small.fx, cams.fx / k)
    ys, xs = torch.meshgrid(torch.arange(h // k), torch.arange(w // k), indexing="ij")
    px, py = xs.reshape(-1).to(F64), ys.reshape(-1).to(F64)
    cam = torch.zeros_like(px, dtype=torch.long)
    a = small.rays(cam, px + 0.5, py + 0.5, 0.0, 1.0)
    b = cams.rays(cam, (px + 0.5) * k, (py + 0.5) * k, 0.0, 1.0)  # centre of the k x k block
    torch.testing.assert_close(a.directions, b.directions)


def test_cameras_indexing():
    cams = two_cameras()
    one = cams[1:]
    assert len(one) == 1 and one.width == cams.width
    torch.testing.assert_close(one.c2w[0], cams.c2w[1])
    assert len(cams[torch.tensor([1, 0, 1])]) == 3


def test_rays_indexing_and_cat():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(6, 3, generator=g)
    rays = Rays(torch.randn(6, 3, generator=g), d, torch.full((6,), 2.0), torch.full((6,), 6.0))
    torch.testing.assert_close(rays.viewdirs, d / d.norm(dim=-1, keepdim=True))
    assert rays.time is None
    part = rays[1:4]
    assert len(part) == 3 and part.time is None
    torch.testing.assert_close(part.origins, rays.origins[1:4])
    torch.testing.assert_close(part.viewdirs, rays.viewdirs[1:4])
    mask = torch.tensor([True, False, True, False, False, True])
    torch.testing.assert_close(rays[mask].directions, d[mask])
    idx = torch.tensor([5, 0])
    torch.testing.assert_close(rays[idx].near, rays.near[idx])
    both = Rays.cat([rays[:2], rays[2:]])
    assert len(both) == 6
    for name in ("origins", "directions", "near", "far", "viewdirs"):
        torch.testing.assert_close(getattr(both, name), getattr(rays, name))
    timed = Rays(rays.origins, d, rays.near, rays.far, time=torch.linspace(0, 1, 6))
    torch.testing.assert_close(Rays.cat([timed[3:], timed[:3]]).time[:3], timed.time[3:])


def test_ndc_ray_box_holds_every_ray_and_is_tight():
    # a forward-facing rig: cameras shifted and turned a little from the reference pose
    poses = []
    for k, (dx, dy, yaw) in enumerate([(0.0, 0.0, 0.0), (0.3, -0.1, 0.08), (-0.25, 0.2, -0.1)]):
        m = torch.eye(4, dtype=F64)
        m[:3, :3] = rotation([0.0, 1.0, 0.0], yaw) @ rotation([1.0, 0.0, 0.0], 0.03 * k)
        m[:3, 3] = torch.tensor([dx, dy, 0.1 * k], dtype=F64)
        poses.append(m)
    cams = make_cameras(torch.stack(poses).float(), w=40, h=30, fx=35.0, fy=35.0)
    box = torch.tensor(ndc_ray_box(cams))
    lo, hi = torch.full((3,), math.inf), torch.full((3,), -math.inf)
    for k in range(len(cams)):  # every pixel's ray, at many points along it
        r = cams.image_rays(k, 0.0, 1.0, ndc=True)
        for t in torch.linspace(0.0, 1.0, 11):
            p = r.origins + t * r.directions
            lo, hi = torch.minimum(lo, p.min(0).values), torch.maximum(hi, p.max(0).values)
    torch.testing.assert_close(box[0], lo, atol=1e-5, rtol=0)
    torch.testing.assert_close(box[1], hi, atol=1e-5, rtol=0)
    # beyond the reference frustum [-1, 1] in x and y, depth exactly [-1, 1]
    assert box[0, 0] < -1.0 and box[1, 0] > 1.0
    torch.testing.assert_close(box[:, 2], torch.tensor([-1.0, 1.0]), atol=1e-5, rtol=0)
