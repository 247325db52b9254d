"""Stratified and inverse-CDF sampling against their definitions and a slow loop reference."""

from __future__ import annotations

import pytest
import torch

from nerfkit.render.sampling import merge_samples, sample_pdf, stratified_samples

EPS = 1e-5  # sample_pdf's default eps


def bin_bounds(near, far, num_samples, lindisp=False):
    """The evenly spaced points and the bins between their midpoints (half bins at the ends)."""
    u = torch.linspace(0.0, 1.0, num_samples, dtype=torch.float64)
    n, f = near.double()[:, None], far.double()[:, None]
    pts = 1.0 / ((1.0 - u) / n + u / f) if lindisp else n + (f - n) * u
    mids = 0.5 * (pts[:, 1:] + pts[:, :-1])
    return pts, torch.cat([n, mids], -1), torch.cat([mids, f], -1)


def rays_bounds():
    return torch.tensor([2.0, 0.5, 0.1, 3.0]), torch.tensor([6.0, 1.0, 100.0, 3.5])


# --- stratified ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lindisp", [False, True])
def test_stratified_without_perturb_is_evenly_spaced(lindisp):
    near, far = rays_bounds()
    t = stratified_samples(near, far, 9, perturb=False, lindisp=lindisp)
    assert t.shape == (4, 9)
    pts, _, _ = bin_bounds(near, far, 9, lindisp)
    torch.testing.assert_close(t.double(), pts, rtol=1e-6, atol=1e-6)
    if lindisp:  # evenly spaced in disparity 1/t
        disp = 1.0 / t.double()
        steps = disp[:, 1:] - disp[:, :-1]
        torch.testing.assert_close(steps, steps[:, :1].expand_as(steps), rtol=1e-5, atol=1e-7)
    else:
        expected = torch.stack([torch.linspace(n, f, 9) for n, f in zip(near, far)])
        torch.testing.assert_close(t, expected)


@pytest.mark.parametrize("lindisp", [False, True])
def test_stratified_perturbed_each_sample_in_its_own_bin(lindisp):
    near, far = rays_bounds()
    g = torch.Generator().manual_seed(0)
    _, lower, upper = bin_bounds(near, far, 16, lindisp)
    for _ in range(20):
        t = stratified_samples(near, far, 16, perturb=True, lindisp=lindisp, generator=g).double()
        assert torch.all(t[:, 1:] >= t[:, :-1])  # sorted
        assert torch.all(t >= near[:, None] - 1e-5) and torch.all(t <= far[:, None] + 1e-5)
        assert torch.all(t >= lower - 1e-5) and torch.all(t <= upper + 1e-5)


def test_stratified_perturbed_is_uniform_within_bins():
    # mean of many draws in each bin is the bin centre; the draws fill the bin
    near, far = torch.full((4000,), 2.0), torch.full((4000,), 6.0)
    g = torch.Generator().manual_seed(1)
    t = stratified_samples(near, far, 5, generator=g).double()
    _, lower, upper = bin_bounds(near[:1], far[:1], 5)
    width = upper - lower
    frac = (t - lower) / width  # uniform [0, 1] in each bin
    assert torch.all((frac.mean(0) - 0.5).abs() < 0.02)
    assert torch.all((frac.var(0) - 1 / 12).abs() < 0.01)
    assert frac.min() < 0.01 and frac.max() > 0.99


def test_stratified_seeded_generator_is_reproducible():
    near, far = rays_bounds()
    a = stratified_samples(near, far, 8, generator=torch.Generator().manual_seed(3))
    b = stratified_samples(near, far, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# --- inverse-CDF (hierarchical) sampling ---------------------------------------------------------


def loop_sample_pdf(bins: torch.Tensor, weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Slow reference: per ray and per u, scan the CDF for the bin holding u, then interpolate."""
    out = torch.zeros(u.shape, dtype=torch.float64)
    num_bins = weights.shape[1]
    for r in range(bins.shape[0]):
        w = [float(x) + EPS for x in weights[r]]
        total = sum(w)
        cdf = [0.0]
        for x in w:
            cdf.append(cdf[-1] + x / total)
        cdf[-1] = 1.0
        for j in range(u.shape[1]):
            uj = float(u[r, j])
            k = 0
            while k < num_bins - 1 and cdf[k + 1] <= uj:
                k += 1
            frac = (uj - cdf[k]) / (cdf[k + 1] - cdf[k])
            lo, hi = float(bins[r, k]), float(bins[r, k + 1])
            out[r, j] = lo + frac * (hi - lo)
    return out


def pdf_problem(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.sort(torch.rand(5, 17, generator=g, dtype=dtype) * 4 + 2, dim=-1).values
    # every bin holds well over eps of the mass (sample_pdf treats bins below eps as degenerate)
    w = torch.rand(5, 16, generator=g, dtype=dtype) + 0.05
    w[1] *= 100.0  # unnormalised weights are fine
    w[2, 4] = 20.0  # one dominant bin
    return t, w


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sample_pdf_deterministic_matches_loop_reference(dtype):
    bins, w = pdf_problem(dtype)
    s = sample_pdf(bins, w, 33, deterministic=True)
    u = torch.linspace(0.0, 1.0, 33, dtype=torch.float64).expand(5, 33)
    ref = loop_sample_pdf(bins.double(), w.double(), u)
    torch.testing.assert_close(s.double(), ref, atol=1e-5, rtol=0)
    assert torch.all(s[:, 1:] >= s[:, :-1])  # sorted
    torch.testing.assert_close(s[:, 0], bins[:, 0])  # u = 0 and u = 1 hit the ends
    torch.testing.assert_close(s[:, -1], bins[:, -1])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sample_pdf_random_matches_loop_reference(dtype):
    bins, w = pdf_problem(dtype, seed=1)
    s = sample_pdf(bins, w, 40, generator=torch.Generator().manual_seed(7))
    # the same generator state reproduces the u that sample_pdf drew
    u = torch.rand(5, 40, dtype=dtype, generator=torch.Generator().manual_seed(7))
    ref = loop_sample_pdf(bins.double(), w.double(), u.double())
    torch.testing.assert_close(s.double(), ref, atol=1e-5, rtol=0)
    assert torch.all(s >= bins[:, :1]) and torch.all(s <= bins[:, -1:])


def test_sample_pdf_follows_the_pdf():
    # one ray over [0, 1] with 8 equal bins; histogram 4 cells per bin (32 cells): bin masses and
    # uniformity inside each bin. Chi-square over the 24 non-empty cells (dof 23):
    # P(X > 55) ~ 2e-4 for a correct sampler; the seed is fixed, so the test is deterministic.
    w = torch.tensor([[1.0, 0.0, 3.0, 0.5, 2.0, 0.0, 1.0, 0.5]], dtype=torch.float64)
    bins = torch.linspace(0.0, 1.0, 9, dtype=torch.float64)[None]
    n = 100_000
    s = sample_pdf(bins, w, n, generator=torch.Generator().manual_seed(0))[0]
    counts = torch.histc(s, bins=32, min=0.0, max=1.0)
    p = (w[0] + EPS) / (w[0] + EPS).sum()
    expected = (p / 4).repeat_interleave(4) * n
    full = expected > 5
    chi2 = (((counts - expected) ** 2) / expected)[full].sum().item()
    assert chi2 < 55.0, chi2
    assert counts[~full].sum() <= 5  # the empty bins get (almost) nothing


@pytest.mark.parametrize("weights_value", [1.0, 0.0])
def test_sample_pdf_uniform_weights_give_uniform_samples(weights_value):
    # equal weights (and all-zero weights, through eps): the uniform distribution over [near, far]
    bins = torch.linspace(2.0, 6.0, 11, dtype=torch.float64)[None].repeat(3, 1)
    w = torch.full((3, 10), weights_value, dtype=torch.float64)
    s = sample_pdf(bins, w, 21, deterministic=True)
    torch.testing.assert_close(s, torch.linspace(2.0, 6.0, 21, dtype=torch.float64).expand(3, 21))
    r = sample_pdf(bins, w, 20_000, generator=torch.Generator().manual_seed(2))
    frac = (r - 2.0) / 4.0
    assert abs(frac.mean().item() - 0.5) < 0.01 and abs(frac.var().item() - 1 / 12) < 0.005


def test_sample_pdf_is_detached():
    bins = torch.linspace(0.0, 1.0, 5)[None].requires_grad_()
    w = torch.rand(1, 4, requires_grad=True)
    assert not sample_pdf(bins, w, 8).requires_grad


# --- merging -------------------------------------------------------------------------------------


def test_merge_samples_sorted_and_contains_both():
    g = torch.Generator().manual_seed(4)
    a = torch.sort(torch.rand(3, 8, generator=g), -1).values
    b = torch.rand(3, 5, generator=g)  # need not be sorted
    m = merge_samples(a, b)
    assert m.shape == (3, 13)
    assert torch.all(m[:, 1:] >= m[:, :-1])
    for r in range(3):
        assert sorted(m[r].tolist()) == sorted(a[r].tolist() + b[r].tolist())
