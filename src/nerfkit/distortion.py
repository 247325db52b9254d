"""Lens distortion: OpenCV radial-tangential and fisheye models, forward and inverse.

Coordinates here are *normalised image coordinates* in the OpenCV convention (x right, y down):
x = (px - cx) / fx, y = (py - cy) / fy. A pixel records the DISTORTED coordinates of the point it
sees; `undistort_points` recovers the undistorted (pinhole) coordinates, so the ray through the
pixel is (x_u, y_u, 1) in the OpenCV camera frame ((x_u, -y_u, -1) in the OpenGL frame).

Coefficients are stored per camera as [.., 6] = (k1, k2, k3, k4, p1, p2), as nerfstudio does:

- "opencv": r2 = x^2 + y^2, radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3 + k4 r2^4,
  x_d = x radial + 2 p1 x y + p2 (r2 + 2 x^2), y_d = y radial + p1 (r2 + 2 y^2) + 2 p2 x y.
  (OpenCV's polynomial model has k1..k3; k4 is an extra r^8 term, as in nerfstudio, 0 normally.)
- "opencv_fisheye": r = |(x, y)|, theta = atan(r),
  theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8), (x_d, y_d) = theta_d / r
  (x, y); p1, p2 are unused. Only angles below 90 degrees from the axis can be represented as
  (x, y, 1) directions: larger ones are clamped just below 90 degrees.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_MAX_THETA = math.pi / 2 - 1e-3  # fisheye: directions must stay in front of the camera


def _coeffs(dist: Tensor, like: Tensor) -> tuple[Tensor, ...]:
    d = dist.to(like.dtype)
    if d.shape[-1] != 6:
        raise ValueError(f"distortion must have 6 coefficients (k1,k2,k3,k4,p1,p2), got {d.shape}")
    return tuple(d[..., i] for i in range(6))


def distort_points(x: Tensor, y: Tensor, dist: Tensor, model: str) -> tuple[Tensor, Tensor]:
    """Apply lens distortion to undistorted normalised coordinates (the forward model).

    Args:
        x, y: [R] undistorted normalised coordinates (OpenCV frame, y down).
        dist: [R, 6] or [6] coefficients (k1, k2, k3, k4, p1, p2).
        model: "pinhole", "opencv" or "opencv_fisheye".
    Returns:
        (x_d, y_d), each [R]: where the point appears in the image (normalised).
    """
    if model == "pinhole":
        return x, y
    k1, k2, k3, k4, p1, p2 = _coeffs(dist, x)
    if model == "opencv":
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
        xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        return xd, yd
    if model == "opencv_fisheye":
        r = torch.sqrt(x * x + y * y)
        theta = torch.atan(r)
        t2 = theta * theta
        theta_d = theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
        # theta_d / r -> 1 as r -> 0
        scale = torch.where(r > 1e-12, theta_d / r.clamp_min(1e-12), torch.ones_like(r))
        return x * scale, y * scale
    raise ValueError(f"unknown camera model '{model}'")


def _undistort_opencv(
    xd: Tensor, yd: Tensor, dist: Tensor, iters: int, eps: float
) -> tuple[Tensor, Tensor]:
    """Newton's method on F(x, y) = distort(x, y) - (xd, yd) (as nerfstudio's
    `radial_and_tangential_undistort`), starting from the distorted point."""
    k1, k2, k3, k4, p1, p2 = _coeffs(dist, xd)
    x, y = xd.clone(), yd.clone()
    for _ in range(iters):
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
        # d radial / d r2
        d_radial = k1 + r2 * (2.0 * k2 + r2 * (3.0 * k3 + r2 * 4.0 * k4))
        fx = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x) - xd
        fy = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y - yd
        # Jacobian of F (d r2/dx = 2x, d r2/dy = 2y)
        fx_x = radial + 2.0 * x * x * d_radial + 2.0 * p1 * y + 6.0 * p2 * x
        fx_y = 2.0 * x * y * d_radial + 2.0 * p1 * x + 2.0 * p2 * y
        fy_x = 2.0 * x * y * d_radial + 2.0 * p1 * x + 2.0 * p2 * y
        fy_y = radial + 2.0 * y * y * d_radial + 6.0 * p1 * y + 2.0 * p2 * x
        det = fx_x * fy_y - fx_y * fy_x
        ok = det.abs() > eps
        det = torch.where(ok, det, torch.ones_like(det))
        step_x = torch.where(ok, (fx * fy_y - fy * fx_y) / det, torch.zeros_like(det))
        step_y = torch.where(ok, (fy * fx_x - fx * fy_x) / det, torch.zeros_like(det))
        x, y = x - step_x, y - step_y
    return x, y


def _undistort_fisheye(
    xd: Tensor, yd: Tensor, dist: Tensor, iters: int, eps: float
) -> tuple[Tensor, Tensor]:
    """Solve theta_d = theta (1 + k1 theta^2 + ... + k4 theta^8) for theta by Newton's method."""
    k1, k2, k3, k4, _, _ = _coeffs(dist, xd)
    theta_d = torch.sqrt(xd * xd + yd * yd)
    theta = theta_d.clone()
    for _ in range(iters):
        t2 = theta * theta
        f = theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - theta_d
        df = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + t2 * 9.0 * k4)))
        ok = df.abs() > eps
        theta = theta - torch.where(ok, f / torch.where(ok, df, torch.ones_like(df)), 0.0)
        theta = theta.clamp(0.0, _MAX_THETA)
    # undistorted radius r = tan(theta); scale = r / theta_d (-> 1 as theta_d -> 0)
    small = theta_d < 1e-12
    scale = torch.where(small, torch.ones_like(theta), torch.tan(theta) / theta_d.clamp_min(1e-12))
    return xd * scale, yd * scale


def undistort_points(
    x: Tensor, y: Tensor, dist: Tensor, model: str, iters: int = 10, eps: float = 1e-9
) -> tuple[Tensor, Tensor]:
    """Map distorted normalised image coordinates to undistorted ones (inverse of the lens model).

    Computed in float64 by Newton's method (10 iterations reach float32 precision for the
    distortions real lenses have); no gradient flows to `dist`.

    Args:
        x, y: [R] distorted normalised coordinates (OpenCV frame, y down), i.e. (px - cx) / fx and
            (py - cy) / fy of the pixel.
        dist: [R, 6] (or [6]) coefficients (k1, k2, k3, k4, p1, p2).
        model: "pinhole" (returns the input), "opencv" or "opencv_fisheye".
    Returns:
        (x_u, y_u), each [R] in the dtype of x: the pinhole coordinates of the ray's direction.
    """
    if model == "pinhole":
        return x, y
    with torch.no_grad():
        xd, yd, d = x.double(), y.double(), dist.detach().double()
        if model == "opencv":
            xu, yu = _undistort_opencv(xd, yd, d, iters, eps)
        elif model == "opencv_fisheye":
            xu, yu = _undistort_fisheye(xd, yd, d, iters, eps)
        else:
            raise ValueError(f"unknown camera model '{model}'")
    return xu.to(x.dtype), yu.to(y.dtype)
