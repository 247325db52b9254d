"""Scene contraction for unbounded scenes: all of space mapped into a bounded cube.

After mip-NeRF 360 (Barron et al. 2022) and DVGO-v2 (Sun et al. 2022), with the L-infinity norm
(as DVGO-v2 and nerfacto use for grids), so that the contracted space is a cube a dense grid fills:
with y = (x - c) / r the point relative to the inner cube [c - r, c + r]^3 and n = max_k |y_k|,

    f(y) = y                            if n <= 1
    f(y) = (1 + b - b / n) y / n        otherwise

and the contracted point is x_c = c + r f(y), in world units: the inner cube keeps its size and
place (a grid there has the same resolution as an uncontracted one), and everything outside it,
out to infinity, is squeezed into a shell of thickness b r. f is continuous, maps the shell
n in (1, inf) onto (1, 1 + b) one to one, and so has an inverse (`uncontract`). Along a ray, a
step of length s in contracted space is a world step of s / |d x_c / dt| (`contracted_speed`),
which grows like the squared distance far away: samples uniform in contracted length are uniform
in disparity at infinity, as mip-NeRF 360's spacing.
"""

from __future__ import annotations

import torch
from torch import Tensor


def contract(x: Tensor, center: Tensor, radius: float, bg_len: float) -> Tensor:
    """Contracted points (module docstring).

    Args:
        x: [..., 3] world points; center: [3] centre c of the inner cube; radius: its half-width r;
        bg_len: thickness b of the shell (in units of r).
    Returns:
        [..., 3] in the cube c +- (1 + b) r; x itself inside the inner cube.
    """
    y = (x - center) / radius
    n = y.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(n <= 1.0, torch.ones_like(n), (1.0 + bg_len - bg_len / n) / n)
    return center + radius * (y * scale)


def uncontract(xc: Tensor, center: Tensor, radius: float, bg_len: float) -> Tensor:
    """Inverse of `contract` on the open cube c +- (1 + b) r.

    Args:
        xc: [..., 3] contracted points with max_k |xc_k - c_k| < (1 + b) r.
    Returns:
        [..., 3] world points x with contract(x) = xc.
    """
    z = (xc - center) / radius
    m = z.abs().amax(dim=-1, keepdim=True)  # = 1 + b - b / n outside the inner cube
    n = bg_len / (1.0 + bg_len - m).clamp(min=1e-12)
    scale = torch.where(m <= 1.0, torch.ones_like(m), n / m.clamp(min=1e-12))
    return center + radius * (z * scale)


def contracted_speed(x: Tensor, d: Tensor, center: Tensor, radius: float, bg_len: float) -> Tensor:
    """|d contract(x + t d) / dt| at t = 0: contracted length per unit of t along the ray.

    Args:
        x: [..., 3] points; d: [..., 3] ray directions at them; center, radius, bg_len: as
        `contract`.
    Returns:
        [...]: |d| inside the inner cube; outside, with y = (x - c) / r, n = |y_a| the largest
        coordinate, g(n) = (1 + b) / n - b / n^2: r |g(n) d / r + g'(n) (dn/dt) y| with
        dn/dt = sign(y_a) d_a / r (the derivative of f(y) = g(n) y).
    """
    y = (x - center) / radius
    ay = y.abs()
    n, a = ay.max(dim=-1, keepdim=True)
    b = bg_len
    g = (1.0 + b - b / n) / n
    gp = (2.0 * b / n - (1.0 + b)) / (n * n)
    dn = torch.sign(torch.gather(y, -1, a)) * torch.gather(d, -1, a) / radius
    v = g * (d / radius) + (gp * dn) * y
    out = torch.where(n <= 1.0, d.norm(dim=-1, keepdim=True), radius * v.norm(dim=-1, keepdim=True))
    return out[..., 0]
