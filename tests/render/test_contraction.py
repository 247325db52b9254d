"""Scene contraction: the map, its inverse, the speed along a ray against finite differences,
and the contracted march (C++ against the reference, samples equally spaced in contracted length,
rays reaching far out in few samples)."""

from __future__ import annotations

import pytest
import torch

from nerfkit.render.contraction import contract, contracted_speed, uncontract
from nerfkit.render.grid import MarchParams, load_kernel, march, march_reference

C = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
R, B = 0.7, 0.5


def _points(n: int = 2000, seed: int = 0) -> torch.Tensor:
    """Points at distances from 1e-3 to 1e4 inner radii in random directions."""
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    dist = 10.0 ** (torch.rand(n, 1, generator=g, dtype=torch.float64) * 7 - 3)
    return C + R * dist * d


def test_identity_inside_the_inner_cube():
    x = C + R * (torch.rand(500, 3, dtype=torch.float64) * 2 - 1)
    torch.testing.assert_close(contract(x, C, R, B), x)


def test_everything_lands_in_the_cube_and_far_points_near_its_face():
    x = _points()
    y = (contract(x, C, R, B) - C) / R
    n = y.abs().amax(-1)
    assert float(n.max()) < 1.0 + B
    far = ((x - C) / R).abs().amax(-1) > 1e3
    assert bool(far.any()) and float(n[far].min()) > 1.0 + B - B * 1.01e-3
    # outside the inner cube a point keeps its direction from the centre
    out = ((x - C) / R).abs().amax(-1) > 1
    cos = torch.nn.functional.cosine_similarity(y[out], (x - C)[out], dim=-1)
    torch.testing.assert_close(cos, torch.ones_like(cos))


def test_continuous_at_the_inner_face():
    d = torch.nn.functional.normalize(torch.randn(100, 3, dtype=torch.float64), dim=-1)
    face = C + R * d / d.abs().amax(-1, keepdim=True)  # on the cube's surface
    for eps in (1e-9, -1e-9):
        torch.testing.assert_close(contract(face * (1 + eps), C, R, B), face, atol=1e-7, rtol=0)


def test_uncontract_inverts_contract():
    x = _points()
    back = uncontract(contract(x, C, R, B), C, R, B)
    torch.testing.assert_close(back, x, rtol=1e-6, atol=1e-9)
    # and the other way round on the open cube
    z = C + R * (1 + B) * (torch.rand(1000, 3, dtype=torch.float64) * 2 - 1) * 0.999
    torch.testing.assert_close(contract(uncontract(z, C, R, B), C, R, B), z)


@pytest.mark.parametrize("b", [0.2, 0.5, 1.0])
def test_speed_is_the_derivative_along_the_ray(b):
    x = _points(500, seed=1)
    x = x[((x - C) / R).abs().amax(-1) < 200]  # finite differences stay accurate
    d = torch.nn.functional.normalize(torch.randn_like(x), dim=-1) * 1.7
    h = 1e-6 * (1 + (x - C).norm(dim=-1, keepdim=True))
    fd = (contract(x + h * d, C, R, b) - contract(x - h * d, C, R, b)).norm(dim=-1) / (2 * h[:, 0])
    # the inf-norm switches axis on the cube's diagonal planes: skip points next to them
    a = ((x - C) / R).abs().sort(-1).values
    clean = (a[:, 2] - a[:, 1]) > 1e-3
    torch.testing.assert_close(contracted_speed(x, d, C, R, b)[clean], fd[clean], rtol=1e-4, atol=0)


def _contracted_params(use_mask: bool, n: int = 200, step: float = 0.02) -> MarchParams:
    g = torch.Generator().manual_seed(0)
    c = C.float()
    o = c + torch.randn(n, 3, generator=g) * 1.5
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    half = (1 + B) * R
    occ = torch.rand(30, 30, 30, generator=g) > 0.3
    return MarchParams(
        origins=o,
        directions=d,
        t_min=torch.full((n,), 0.05),
        t_max=torch.full((n,), 1000.0 * R),
        step=torch.full((n,), step),
        jitter=torch.rand(n, generator=g),
        occupancy=occ,
        use_mask=use_mask,
        lo=c - half,
        hi=c + half,
        max_samples=4096,
        contract=True,
        center=c,
        radius=R,
        bg_len=B,
    )


def test_contracted_samples_are_equally_spaced_in_contracted_length():
    p = _contracted_params(False)
    ray_idx, t, coords = march_reference(p)
    size = torch.tensor(p.occupancy.shape) - 1
    pts = p.lo + coords / size * (p.hi - p.lo)  # contracted points
    same = ray_idx[1:] == ray_idx[:-1]
    gaps = (pts[1:] - pts[:-1]).norm(dim=-1)[same]
    # an Euler step of the contracted length: chords close to the step (shorter where the
    # path bends); a step from the shell into the inner cube is up to 1 / bg_len longer (the
    # contraction's derivative jumps from bg_len to 1 at the face)
    assert float(gaps.median()) == pytest.approx(0.02, rel=0.05)
    assert float(torch.quantile(gaps, 0.99)) < 0.02 * 1.05
    assert float(gaps.max()) < 0.02 / B * 1.05
    # the rays reach ~1000 inner radii out with a bounded number of samples
    counts = torch.bincount(ray_idx, minlength=200)
    assert int(counts.max()) < 2 * (2 * (1 + B) * R * 3**0.5) / 0.02
    last = torch.zeros(200).scatter_reduce(0, ray_idx, t, "amax")
    assert float(last.min()) > 100 * R


@pytest.mark.skipif(load_kernel() is None, reason="the fused C++ kernel could not be built here")
@pytest.mark.parametrize("use_mask", [False, True])
def test_fused_contracted_march_matches_reference(use_mask):
    p = _contracted_params(use_mask)
    a, b = march(p), march(p, kernel="torch")
    assert a[0].shape == b[0].shape and bool((a[0] == b[0]).all())
    # float32 steps accumulate rounding: the same samples to a relative 1e-4
    torch.testing.assert_close(a[1], b[1], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(a[2], b[2], rtol=1e-4, atol=1e-4)
