"""Factorised (plane) fields: bilinear lookups in stacks of 2-D feature planes.

After K-Planes (Fridovich-Keil et al. 2023) and HexPlane (Cao and Johnson 2023): a function of
4 coordinates (x, y, z, t) is represented by 2-D planes over pairs of them; features from planes
that share no axis are multiplied, so every product is a rank-C factorisation of a 4-D function,
and the products of the three complementary pairs (xy with zt, xz with yt, yz with xt) are
concatenated. `nerfkit.methods.dgrid` builds its space-time deformation and its ambient
(hyper-space) template on these functions.

Conventions: planes are channels-last, [K, H, W, C] for a stack of K; plane coordinates are in
[-1, 1] (-1 and 1 are the centres of the first and last texel), clamped to the border outside;
(u, v) index a plane with u along W and v along H. The lookups run in the C++ kernel of
`nerfkit.render.grid` for CPU float32 tensors (forward and both gradients; 3-5x faster than
`grid_sample`), else through `torch.nn.functional.grid_sample`; tests compare both with
`sample_planes_reference`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfkit.render.grid import _cpu_kernel, load_kernel

HEX_PAIRS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((0, 1), (2, 3)),
    ((0, 2), (1, 3)),
    ((1, 2), (0, 3)),
)
"""The three complementary axis pairs of (x, y, z, t) = (0, 1, 2, 3): a spatial plane (u, v) and
the space-time plane (the remaining spatial axis, t) it is multiplied with."""


class _PlanesFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, planes: Tensor, uv: Tensor) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(planes, uv)
        return load_kernel().planes_forward(planes, uv)  # type: ignore[union-attr]

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, Tensor | None]:  # noqa: ANN001
        planes, uv = ctx.saved_tensors
        need_uv = bool(ctx.needs_input_grad[1])
        g_planes, g_uv = load_kernel().planes_backward(  # type: ignore[union-attr]
            grad_out.contiguous(), planes, uv, need_uv
        )
        return g_planes, (g_uv if need_uv else None)


def sample_planes(planes: Tensor, uv: Tensor, kernel: str = "auto") -> Tensor:
    """Bilinear lookup of K planes, each at its own P points.

    Args:
        planes: [K, H, W, C] features (H, W >= 2); uv: [K, P, 2] coordinates (u along W, v along
            H) in [-1, 1], clamped to the border outside.
        kernel: "auto": the C++ kernel for CPU float32 tensors when it builds; "torch": never.
    Returns:
        [K, P, C]. Differentiable with respect to `planes` and `uv` (0 where clamped).
    """
    h, w = planes.shape[1], planes.shape[2]
    if kernel == "auto" and _cpu_kernel(planes, uv) is not None:
        scale = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=uv.dtype, device=uv.device)
        texel = ((uv + 1) * scale).contiguous()
        return _PlanesFn.apply(planes.contiguous(), texel)
    out = F.grid_sample(
        planes.permute(0, 3, 1, 2),
        uv[:, :, None, :],
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )  # [K, C, P, 1]
    return out[..., 0].transpose(1, 2)


def sample_planes_reference(planes: Tensor, uv: Tensor) -> Tensor:
    """`sample_planes` by explicit bilinear weights (slow; the test reference).

    Args / Returns: as `sample_planes`.
    """
    k, h, w, c = planes.shape
    x = ((uv[..., 0].clamp(-1, 1) + 1) / 2 * (w - 1)).clamp(0, w - 1)  # [K, P]
    y = ((uv[..., 1].clamp(-1, 1) + 1) / 2 * (h - 1)).clamp(0, h - 1)
    x0 = x.floor().clamp(max=max(w - 2, 0)).long()
    y0 = y.floor().clamp(max=max(h - 2, 0)).long()
    fx, fy = x - x0, y - y0
    out = torch.zeros(k, uv.shape[1], c, dtype=planes.dtype, device=planes.device)
    for i in range(k):
        for dy in (0, 1):
            for dx in (0, 1):
                yy = (y0[i] + dy).clamp(max=h - 1)
                xx = (x0[i] + dx).clamp(max=w - 1)
                wgt = (fx[i] if dx else 1 - fx[i]) * (fy[i] if dy else 1 - fy[i])
                out[i] += planes[i][yy, xx] * wgt[:, None]
    return out


def hexplane_features(space: Tensor, spacetime: Tensor, xyzt: Tensor) -> Tensor:
    """HexPlane features of points in space-time: [P_xy * P_zt, P_xz * P_yt, P_yz * P_xt].

    Args:
        space: [3, H, W, C] planes over (x, y), (x, z), (y, z) (u the first axis, v the second).
        spacetime: [3, T, W, C] planes over (z, t), (y, t), (x, t) (u the spatial axis, v time),
            in the order of `HEX_PAIRS`.
        xyzt: [P, 4] points, every coordinate in [-1, 1].
    Returns:
        [P, 3 C] the three products, concatenated.
    """
    # one gather per stack (each column select would cost a full-size zero tensor in backward)
    idx_s = torch.tensor([a for a, _ in HEX_PAIRS], device=xyzt.device).reshape(-1)
    idx_t = torch.tensor([b for _, b in HEX_PAIRS], device=xyzt.device).reshape(-1)
    uv_s = xyzt[:, idx_s].reshape(-1, 3, 2).transpose(0, 1)  # [3, P, 2]
    uv_t = xyzt[:, idx_t].reshape(-1, 3, 2).transpose(0, 1)
    f = sample_planes(space, uv_s) * sample_planes(spacetime, uv_t)  # [3, P, C]
    return f.transpose(0, 1).reshape(xyzt.shape[0], 3 * space.shape[3])


def ambient_features(planes: Tensor, xyz: Tensor, w: Tensor) -> Tensor:
    """Features of points in a hyper-space (x, y, z, w_1 .. w_m): for each ambient coordinate
    w_j the product P_xj(x, w_j) P_yj(y, w_j) P_zj(z, w_j) (a rank-C factorisation of a function
    of (x, y, z, w_j)), summed over j.

    Args:
        planes: [3 m, A, W, C] planes, (axis a, ambient j) at index 3 j + a; u the spatial axis,
            v the ambient one. xyz: [P, 3] and w: [P, m], all in [-1, 1].
    Returns:
        [P, C].
    """
    m = w.shape[1]
    p = xyz.shape[0]
    # uv[3 j + a] = (xyz[:, a], w[:, j]), gathered at once
    u = xyz.T[None].expand(m, 3, p)
    v = w.T[:, None].expand(m, 3, p)
    uv = torch.stack([u, v], -1).reshape(3 * m, p, 2)
    f = sample_planes(planes, uv)  # [3 m, P, C]
    # unbind, not f[:, a]: each indexing's backward would fill a zero tensor the size of f
    fx, fy, fz = f.reshape(m, 3, *f.shape[1:]).unbind(1)
    return (fx * fy * fz).sum(0)


def plane_smoothness(planes: Tensor, axis: int) -> Tensor:
    """Mean squared second difference of planes [K, H, W, C] along `axis` (1: H, 2: W):
    K-Planes' time-smoothness regulariser (a 1-D Laplacian), 0 for planes linear along it."""
    n = planes.shape[axis]
    if n < 3:
        return planes.new_zeros(())
    a = planes.narrow(axis, 0, n - 2)
    b = planes.narrow(axis, 1, n - 2)
    c = planes.narrow(axis, 2, n - 2)
    return ((a - 2 * b + c) ** 2).mean()


def plane_tv(planes: Tensor) -> Tensor:
    """Mean squared first difference of planes [K, H, W, C] along both plane axes (total
    variation, squared as in K-Planes)."""
    dh = (planes[:, 1:] - planes[:, :-1]) ** 2
    dw = (planes[:, :, 1:] - planes[:, :, :-1]) ** 2
    return dh.mean() + dw.mean()
