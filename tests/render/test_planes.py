"""Factorised plane fields: the C++ and grid_sample lookups against the explicit bilinear
reference (values and both gradients), HexPlane products and ambient features against their
definitions, and the regularisers on planes with known differences."""

from __future__ import annotations

import pytest
import torch

from nerfkit.render.grid import load_kernel, trilinear, trilinear_reference
from nerfkit.render.planes import (
    HEX_PAIRS,
    ambient_features,
    hexplane_features,
    plane_smoothness,
    plane_tv,
    sample_planes,
    sample_planes_reference,
)

KERNELS = ["torch"] + (["auto"] if load_kernel() is not None else [])


@pytest.mark.parametrize("kernel", KERNELS)
def test_sample_planes_matches_the_reference_and_its_gradients(kernel: str) -> None:
    g = torch.Generator().manual_seed(0)
    planes = torch.rand(3, 9, 7, 5, generator=g).requires_grad_()
    # points inside and (clamped) outside [-1, 1]
    uv = (torch.rand(3, 60, 2, generator=g) * 2.4 - 1.2).requires_grad_()
    out = sample_planes(planes, uv, kernel=kernel)
    ref = sample_planes_reference(planes, uv)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    grad = torch.randn(out.shape, generator=g)
    got = torch.autograd.grad(out, [planes, uv], grad)
    want = torch.autograd.grad(ref, [planes, uv], grad)
    torch.testing.assert_close(got[0], want[0], atol=1e-5, rtol=1e-5)
    inside = (uv.detach().abs() < 1).all(-1, keepdim=True).expand_as(uv)
    torch.testing.assert_close(got[1][inside], want[1][inside], atol=1e-4, rtol=1e-4)


def test_sample_planes_hits_texel_centres_exactly() -> None:
    planes = torch.arange(2 * 3 * 4 * 1, dtype=torch.float32).reshape(2, 3, 4, 1)
    # u = -1 .. 1 over W = 4 texels: u = -1/3 is texel 1; v = 1 is the last row
    uv = torch.tensor([[[-1 / 3, 1.0]], [[1.0, -1.0]]])
    for kernel in KERNELS:
        out = sample_planes(planes, uv, kernel=kernel)[:, 0, 0]
        torch.testing.assert_close(out, torch.tensor([planes[0, 2, 1, 0], planes[1, 0, 3, 0]]))


@pytest.mark.skipif(load_kernel() is None, reason="the fused C++ kernel could not be built here")
def test_trilinear_gradient_with_respect_to_coordinates() -> None:
    g = torch.Generator().manual_seed(1)
    grid = torch.rand(6, 5, 7, 4, generator=g).requires_grad_()
    coords = torch.rand(80, 3, generator=g) * torch.tensor([4.9, 3.9, 5.9]) + 0.05
    coords.requires_grad_()
    out, ref = trilinear(grid, coords), trilinear_reference(grid, coords)
    torch.testing.assert_close(out, ref)
    grad = torch.randn(out.shape, generator=g)
    got = torch.autograd.grad(out, [grid, coords], grad)
    want = torch.autograd.grad(ref, [grid, coords], grad)
    torch.testing.assert_close(got[0], want[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1], want[1], atol=1e-5, rtol=1e-5)


def test_hexplane_features_are_products_of_complementary_planes() -> None:
    g = torch.Generator().manual_seed(2)
    space = torch.rand(3, 5, 6, 2, generator=g)
    spacetime = torch.rand(3, 4, 6, 2, generator=g)
    xyzt = torch.rand(10, 4, generator=g) * 2 - 1
    out = hexplane_features(space, spacetime, xyzt)
    assert out.shape == (10, 6)
    for i, (a, b) in enumerate(HEX_PAIRS):
        fa = sample_planes_reference(space[i : i + 1], xyzt[None, :, list(a)])[0]
        fb = sample_planes_reference(spacetime[i : i + 1], xyzt[None, :, list(b)])[0]
        torch.testing.assert_close(out[:, 2 * i : 2 * i + 2], fa * fb, atol=1e-6, rtol=1e-5)


def test_ambient_features_sum_rank_c_products_over_ambient_dims() -> None:
    g = torch.Generator().manual_seed(3)
    m, c = 2, 3
    planes = torch.rand(3 * m, 4, 5, c, generator=g)
    xyz = torch.rand(7, 3, generator=g) * 2 - 1
    w = torch.rand(7, m, generator=g) * 2 - 1
    want = torch.zeros(7, c)
    for j in range(m):
        prod = torch.ones(7, c)
        for a in range(3):
            uv = torch.stack([xyz[:, a], w[:, j]], -1)[None]
            prod = prod * sample_planes_reference(planes[3 * j + a : 3 * j + a + 1], uv)[0]
        want += prod
    torch.testing.assert_close(ambient_features(planes, xyz, w), want, atol=1e-6, rtol=1e-5)


def test_regularisers_vanish_on_flat_and_linear_planes() -> None:
    ramp = torch.linspace(0, 1, 6)[None, :, None, None].expand(2, 6, 4, 3)
    assert float(plane_smoothness(ramp, axis=1)) == pytest.approx(0.0, abs=1e-12)
    assert float(plane_tv(torch.ones(2, 6, 4, 3))) == 0.0
    # squared steps of 0.2 along H, none along W: mean over the H differences
    assert float(plane_tv(ramp)) == pytest.approx(0.2**2)
    kink = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])[None, :, None, None]
    # second differences 1, -2, 1 -> mean of squares 2
    assert float(plane_smoothness(kink, axis=1)) == pytest.approx(2.0)
