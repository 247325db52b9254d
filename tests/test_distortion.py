"""Lens distortion: inverse vs forward model, rays through distorted pixels, and COLMAP's maths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfkit.cameras import Cameras
from nerfkit.distortion import distort_points, undistort_points
from nerfkit.poses import look_at

F64 = torch.float64
# (k1, k2, k3, k4, p1, p2): a strong barrel lens with decentring, and a fisheye
OPENCV = [-0.28, 0.09, -0.012, 0.0, 0.0012, -0.0008]
FISHEYE = [0.04, -0.012, 0.003, -0.0005, 0.0, 0.0]


def opencv_project(p_cam: np.ndarray, k: list[float], model: str) -> np.ndarray:
    """OpenCV's forward model written out from its documentation (cv::projectPoints and
    cv::fisheye::projectPoints) for points [N, 3] in the OpenCV camera frame -> distorted
    normalised coordinates [N, 2]. Independent of nerfkit.distortion."""
    k1, k2, k3, k4, p1, p2 = k
    x, y = p_cam[:, 0] / p_cam[:, 2], p_cam[:, 1] / p_cam[:, 2]
    if model == "opencv":
        r2 = x**2 + y**2
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3 + k4 * r2**4
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x**2)
        yd = y * radial + p1 * (r2 + 2 * y**2) + 2 * p2 * x * y
        return np.stack([xd, yd], 1)
    r = np.hypot(x, y)
    th = np.arctan(r)
    thd = th * (1 + k1 * th**2 + k2 * th**4 + k3 * th**6 + k4 * th**8)
    return np.stack([x * thd / r, y * thd / r], 1)


def grid(n: int = 41, half: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    """Distorted normalised coordinates covering a wide field of view, centre included."""
    a = torch.linspace(-half, half, n, dtype=F64)
    y, x = torch.meshgrid(a * 0.75, a, indexing="ij")
    return x.reshape(-1), y.reshape(-1)


@pytest.mark.parametrize("model,k", [("opencv", OPENCV), ("opencv_fisheye", FISHEYE)])
def test_distort_of_undistort_is_identity(model, k):
    xd, yd = grid()
    dist = torch.tensor(k, dtype=F64).expand(len(xd), 6)
    xu, yu = undistort_points(xd, yd, dist, model)
    x2, y2 = distort_points(xu, yu, dist, model)
    torch.testing.assert_close(x2, xd, atol=1e-10, rtol=0)
    torch.testing.assert_close(y2, yd, atol=1e-10, rtol=0)
    # the lens really distorts: the undistorted points are elsewhere (except the centre)
    assert (torch.hypot(xu - xd, yu - yd)).max() > 0.05


@pytest.mark.parametrize("model,k", [("opencv", OPENCV), ("opencv_fisheye", FISHEYE)])
def test_forward_model_matches_opencv_formulas(model, k):
    xu, yu = grid(half=0.9)
    ref = opencv_project(np.stack([xu.numpy(), yu.numpy(), np.ones(len(xu))], 1), k, model)
    xd, yd = distort_points(xu, yu, torch.tensor(k, dtype=F64), model)
    np.testing.assert_allclose(np.stack([xd.numpy(), yd.numpy()], 1), ref, atol=1e-12)


def test_float32_input_keeps_dtype_and_precision():
    xd, yd = grid()
    dist = torch.tensor(OPENCV).expand(len(xd), 6)
    xu, yu = undistort_points(xd.float(), yd.float(), dist, "opencv")
    assert xu.dtype == torch.float32
    x2, y2 = distort_points(xu.double(), yu.double(), dist.double(), "opencv")
    assert (x2 - xd).abs().max() < 1e-6 and (y2 - yd).abs().max() < 1e-6


def test_pinhole_and_zero_coefficients_are_identity():
    xd, yd = grid(9)
    assert undistort_points(xd, yd, torch.zeros(6), "pinhole") == (xd, yd)
    zero = torch.zeros(len(xd), 6, dtype=F64)
    xu, yu = undistort_points(xd, yd, zero, "opencv")
    torch.testing.assert_close(xu, xd)
    torch.testing.assert_close(yu, yd)
    # a fisheye without coefficients is the equidistant model: angle = distorted radius
    xu, yu = undistort_points(xd, yd, zero, "opencv_fisheye")
    r = torch.hypot(xd, yd)
    torch.testing.assert_close(torch.atan(torch.hypot(xu, yu)), r)
    torch.testing.assert_close(torch.atan2(yu, xu)[r > 0], torch.atan2(yd, xd)[r > 0])


def test_fisheye_beyond_90_degrees_stays_finite():
    # theta_d = pi / 2 + 0.3 with zero coefficients: no pinhole direction exists; clamp
    xd = torch.tensor([math.pi / 2 + 0.3, 0.0], dtype=F64)
    yd = torch.tensor([0.0, 0.0], dtype=F64)
    xu, yu = undistort_points(xd, yd, torch.zeros(2, 6, dtype=F64), "opencv_fisheye")
    assert torch.isfinite(xu).all() and xu[0] > 100 and xu[1] == 0


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown camera model"):
        undistort_points(torch.zeros(1), torch.zeros(1), torch.zeros(6), "fov")


@pytest.mark.parametrize("model,k", [("opencv", OPENCV), ("opencv_fisheye", FISHEYE)])
def test_ray_through_distorted_pixel_hits_the_point(model, k):
    """Project 3D points with OpenCV's forward model onto pixels; the camera's rays through those
    pixels must pass through the points."""
    w, h, fx, fy, cx, cy = 160, 120, 95.0, 90.0, 83.0, 58.0
    eye = torch.tensor([2.0, -3.0, 1.0], dtype=F64)
    c2w = look_at(eye, torch.zeros(3, dtype=F64), torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    cams = Cameras(
        c2w=c2w[None],
        fx=torch.tensor([fx], dtype=F64),
        fy=torch.tensor([fy], dtype=F64),
        cx=torch.tensor([cx], dtype=F64),
        cy=torch.tensor([cy], dtype=F64),
        width=w,
        height=h,
        model=model,
        distortion=torch.tensor([k], dtype=F64),
    )
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(200, 3, generator=g, dtype=F64) - 0.5) * 2.0  # world points near the origin
    # world -> OpenCV camera frame (x right, y down, z forward)
    rot, t = c2w[:3, :3], c2w[:3, 3]
    p_gl = (pts - t) @ rot  # OpenGL camera frame
    p_cv = p_gl * torch.tensor([1.0, -1.0, -1.0], dtype=F64)
    nd = opencv_project(p_cv.numpy(), k, model)
    px = torch.from_numpy(fx * nd[:, 0] + cx)
    py = torch.from_numpy(fy * nd[:, 1] + cy)
    inside = (px > 0) & (px < w) & (py > 0) & (py < h)
    assert inside.sum() > 100
    rays = cams.rays(torch.zeros(len(px), dtype=torch.long), px, py, near=0.1, far=10.0)
    v = pts - rays.origins
    t_along = (v * rays.directions).sum(-1)
    miss = (v - t_along[:, None] * rays.directions).norm(dim=-1)
    assert (t_along > 0).all()
    assert miss[inside].max() < 1e-9
    # ignoring the distortion would miss by far more
    plain = Cameras(**{**cams.__dict__, "model": "pinhole", "distortion": None})
    r0 = plain.rays(torch.zeros(len(px), dtype=torch.long), px, py, near=0.1, far=10.0)
    v0 = pts - r0.origins
    miss0 = (v0 - (v0 * r0.directions).sum(-1, keepdim=True) * r0.directions).norm(dim=-1)
    assert miss0[inside].max() > 0.01


@pytest.mark.parametrize(
    "model,colmap_model,k,params",
    [
        ("opencv", "OPENCV", [-0.2, 0.05, 0, 0, 0.001, -0.002], [-0.2, 0.05, 0.001, -0.002]),
        ("opencv_fisheye", "OPENCV_FISHEYE", FISHEYE, FISHEYE[:4]),
    ],
)
def test_matches_colmap_camera_models(model, colmap_model, k, params):
    """pycolmap implements the same lens models; its unprojection must agree with ours."""
    pycolmap = pytest.importorskip("pycolmap")
    fx, fy, cx, cy = 100.0, 110.0, 50.0, 40.0
    cam = pycolmap.Camera(
        model=colmap_model, width=100, height=80, params=[fx, fy, cx, cy, *params]
    )
    xu, yu = grid(21, 0.7)
    pix = np.asarray(cam.img_from_cam(np.stack([xu.numpy(), yu.numpy(), np.ones(len(xu))], 1)))
    xd = torch.from_numpy((pix[:, 0] - cx) / fx)
    yd = torch.from_numpy((pix[:, 1] - cy) / fy)
    x2, y2 = distort_points(xu, yu, torch.tensor(k, dtype=F64), model)
    torch.testing.assert_close(x2, xd, atol=1e-10, rtol=0)
    torch.testing.assert_close(y2, yd, atol=1e-10, rtol=0)
    back = np.asarray(cam.cam_from_img(pix))
    xb, yb = undistort_points(xd, yd, torch.tensor(k, dtype=F64), model)
    np.testing.assert_allclose(np.stack([xb.numpy(), yb.numpy()], 1), back[:, :2], atol=1e-8)
