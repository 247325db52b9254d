"""render/warp.py: the rigid-body exponentials against the matrix exponential, the annealing
window and schedules at known steps, the robust regularisers against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.render import warp as W
from nerfkit.render.encoding import positional_encoding


def _twist(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The 4x4 twist matrix [[skew(w), v], [0, 0]] of a batch [N, 3], [N, 3]."""
    m = torch.zeros(len(w), 4, 4, dtype=w.dtype)
    m[:, :3, :3] = W.skew(w)
    m[:, :3, 3] = v
    return m


def _unit(n: int, gen: torch.Generator) -> torch.Tensor:
    a = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return a / a.norm(dim=-1, keepdim=True)


def test_skew_is_the_cross_product() -> None:
    gen = torch.Generator().manual_seed(0)
    w, v = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    torch.testing.assert_close((W.skew(w) @ v[..., None])[..., 0], torch.linalg.cross(w, v))


@pytest.mark.parametrize("theta", [1e-6, 0.1, 1.0, 2.5, math.pi, 5.0])
def test_exp_so3_and_exp_se3_match_the_matrix_exponential(theta: float) -> None:
    gen = torch.Generator().manual_seed(1)
    w, v = _unit(8, gen), torch.randn(8, 3, generator=gen, dtype=torch.float64)
    th = torch.full((8,), theta, dtype=torch.float64)
    want = torch.linalg.matrix_exp(theta * _twist(w, v))
    got = W.exp_se3(torch.cat([w, v], -1), th)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(W.exp_so3(w, th), want[:, :3, :3], atol=1e-10, rtol=1e-10)
    # a rotation: orthonormal with determinant 1
    rot = got[:, :3, :3]
    torch.testing.assert_close(
        rot @ rot.transpose(-1, -2), torch.eye(3, dtype=rot.dtype).expand(8, 3, 3)
    )
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(8, dtype=rot.dtype))


@pytest.mark.parametrize("scale", [0.0, 1e-9, 1e-3, 0.5, 2.0])
def test_screw_warp_is_the_exponential_of_the_log_space_twist(scale: float) -> None:
    """The released SE3Field's map: x' = exp([[skew(w), v], [0, 0]]) x for unnormalised (w, v),
    down to w = 0 (then x' = x + v) and w = v = 0 (the identity)."""
    gen = torch.Generator().manual_seed(2)
    w = scale * torch.randn(6, 3, generator=gen, dtype=torch.float64)
    v = scale * torch.randn(6, 3, generator=gen, dtype=torch.float64)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    want = W.from_homogeneous(
        (torch.linalg.matrix_exp(_twist(w, v)) @ W.to_homogeneous(x)[..., None])[..., 0]
    )
    got = W.screw_warp(w, v, x)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)
    if scale == 0.0:
        assert torch.equal(got, x)


def test_homogeneous_round_trip() -> None:
    x = torch.tensor([[1.0, -2.0, 3.0]])
    assert torch.equal(W.to_homogeneous(x), torch.tensor([[1.0, -2.0, 3.0, 1.0]]))
    assert torch.equal(
        W.from_homogeneous(torch.tensor([[2.0, 4.0, 6.0, 2.0]])), torch.tensor([[1.0, 2.0, 3.0]])
    )


@pytest.mark.parametrize(
    ("alpha", "want"),
    [
        (0.0, [0.0, 0.0, 0.0, 0.0]),
        (0.5, [0.5, 0.0, 0.0, 0.0]),
        (1.5, [1.0, 0.5, 0.0, 0.0]),
        (2.25, [1.0, 1.0, 0.5 * (1 - math.cos(0.25 * math.pi)), 0.0]),
        (4.0, [1.0, 1.0, 1.0, 1.0]),
        (9.0, [1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_posenc_window_at_known_alphas(alpha: float, want: list[float]) -> None:
    torch.testing.assert_close(W.posenc_window(alpha, 4), torch.tensor(want), atol=1e-7, rtol=0)


def test_windowed_encoding_scales_each_band_and_never_the_identity() -> None:
    x = torch.randn(7, 3)
    full = positional_encoding(x, 4)
    torch.testing.assert_close(W.windowed_positional_encoding(x, 4, 4.0), full)
    assert torch.equal(W.windowed_positional_encoding(x, 4, None), full)
    half = W.windowed_positional_encoding(x, 4, 1.5)  # band 0 whole, band 1 half, rest off
    torch.testing.assert_close(half[:, :3], x)
    torch.testing.assert_close(half[:, 3:9], full[:, 3:9])
    torch.testing.assert_close(half[:, 9:15], 0.5 * full[:, 9:15])
    assert torch.all(half[:, 15:] == 0)
    off = W.windowed_positional_encoding(x, 4, 0.0, include_input=False)
    assert off.shape == (7, 24) and torch.all(off == 0)


def test_schedules_at_known_steps() -> None:
    # warp: linear 0 -> L over 80000 steps (the vrig configs' L = 6)
    assert [W.warp_alpha(s) for s in (0, 20000, 40000, 80000, 10**6)] == [0.0, 1.5, 3.0, 6.0, 6.0]
    assert W.warp_alpha(100, num_freqs=8, num_steps=200) == 4.0
    # hyper: 0 for 1000 steps, then 0 -> 1 over 10000
    got = [W.hyper_alpha(s) for s in (0, 999, 1000, 6000, 11000, 50000)]
    assert got == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    assert W.linear_schedule(5, 2.0, 7.0, 0) == 7.0


def test_geman_mcclure_is_barrons_loss_at_alpha_minus_two() -> None:
    x = torch.tensor([0.0, 1e-4, 0.01, 0.03, 0.1, 10.0], dtype=torch.float64)
    c, a = 0.03, -2.0
    b = abs(a - 2.0)
    barron = b / a * (((x / c) ** 2 / b + 1.0) ** (a / 2.0) - 1.0)
    torch.testing.assert_close(W.geman_mcclure(x**2, c), c * barron)
    # quadratic bowl x^2 / (2c) near zero, saturating at 2c
    torch.testing.assert_close(
        W.geman_mcclure(x[1:2] ** 2, c), x[1:2] ** 2 / (2 * c), rtol=1e-4, atol=0
    )
    assert abs(float(W.geman_mcclure(torch.tensor(1e6, dtype=torch.float64), c)) - 2 * c) < 1e-9


def test_elastic_loss_against_closed_form() -> None:
    """J = R1 diag(s) R2: the residual is sum(log(s)^2) whatever the rotations."""
    gen = torch.Generator().manual_seed(3)
    s = torch.tensor([[1.0, 1.0, 1.0], [2.0, 1.0, 0.5], [1.1, 0.9, 1.3]], dtype=torch.float64)
    r1 = W.exp_so3(_unit(3, gen), torch.rand(3, generator=gen, dtype=torch.float64) * 3)
    r2 = W.exp_so3(_unit(3, gen), torch.rand(3, generator=gen, dtype=torch.float64) * 3)
    jac = r1 @ torch.diag_embed(s) @ r2
    loss, residual = W.elastic_loss(jac)
    sq = torch.log(s).square().sum(-1)
    torch.testing.assert_close(residual, sq.sqrt())
    torch.testing.assert_close(loss, 0.03 * 2 * (sq / 0.03**2) / (sq / 0.03**2 + 4))
    assert loss[0] < 1e-12  # a pure rotation is not penalised
    # the gradient pushes the singular values of a scaling back towards 1
    scaling = torch.diag(torch.tensor([1.2, 1.0, 1.0], dtype=torch.float64)).requires_grad_()
    W.elastic_loss(scaling)[0].backward()
    assert scaling.grad[0, 0] > 0 and torch.isfinite(scaling.grad).all()


def test_background_loss() -> None:
    pts = torch.randn(10, 3)
    assert torch.equal(W.background_loss(pts, pts), torch.zeros(10))
    d = torch.tensor([0.002, 0.0, 0.0])
    want = torch.full((10,), 0.001 * 2 * 4.0 / (4.0 + 4.0))  # |d|^2 / c^2 = 4
    torch.testing.assert_close(W.background_loss(pts + d, pts), want)
