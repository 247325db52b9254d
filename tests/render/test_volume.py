"""Volume rendering against closed forms (a constant-density slab) and a slow loop reference;
packed (ragged) rendering against the dense one."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.render.volume import (
    INFINITE_DELTA,
    composite,
    distortion_loss_packed,
    render_along_rays,
    render_packed,
    render_weights,
    render_weights_packed,
    sample_deltas,
)


def loop_weights(sigma: torch.Tensor, deltas: torch.Tensor):
    """Slow reference: T_i = prod_{j<i} (1 - alpha_j), one ray and one sample at a time."""
    w = torch.zeros_like(sigma)
    trans = torch.zeros_like(sigma)
    alpha = torch.zeros_like(sigma)
    for r in range(sigma.shape[0]):
        t_i = 1.0
        for i in range(sigma.shape[1]):
            a = 1.0 - math.exp(-sigma[r, i].item() * deltas[r, i].item())
            alpha[r, i], trans[r, i], w[r, i] = a, t_i, t_i * a
            t_i *= 1.0 - a
    return w, trans, alpha


# --- a constant-density slab: sigma on [a, b], zero elsewhere ------------------------------------

A, B, SIGMA, FAR = 1.0, 2.5, 2.0, 4.0


def slab(h: float, dtype=torch.float64):
    """Samples t_i = i h on [0, FAR), interval i = [t_i, t_i + h]; the slab fills whole ones."""
    n = round(FAR / h)
    t = torch.arange(n, dtype=dtype)[None] * h
    sigma = torch.zeros_like(t)
    sigma[:, round(A / h) : round(B / h)] = SIGMA
    return t, sigma


def continuous_expected_depth(a: float, b: float, sigma: float) -> float:
    """E[t | hit] for density sigma on [a, b]: a + 1/sigma - L e^{-sigma L} / (1 - e^{-sigma L})."""
    length = b - a
    return a + 1.0 / sigma - length * math.exp(-sigma * length) / (1.0 - math.exp(-sigma * length))


def discrete_expected_depth(a: float, b: float, sigma: float, h: float) -> float:
    """sum w_i t_i / sum w_i with t_i = a + i h the interval starts, i < n = (b - a) / h.

    w_i = q^i (1 - q) with q = e^{-sigma h}, which sums to
    a + h (q / (1 - q) - n q^n / (1 - q^n)) = continuous - h/2 + O(sigma h^2).
    """
    q, n = math.exp(-sigma * h), round((b - a) / h)
    return a + h * (q / (1.0 - q) - n * q**n / (1.0 - q**n))


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("h", [0.1, 0.01])
def test_slab_opacity_is_exact(h, dtype, tol):
    t, sigma = slab(h, dtype)
    out = render_along_rays(sigma, torch.rand(*t.shape, 3, dtype=dtype), t, sample_deltas(t))
    assert out["acc"].item() == pytest.approx(1.0 - math.exp(-SIGMA * (B - A)), abs=tol)
    # transmittance after the slab is e^{-sigma L}, before it 1
    assert out["trans"][0, -1].item() == pytest.approx(math.exp(-SIGMA * (B - A)), abs=tol)
    assert out["trans"][0, round(A / h)].item() == 1.0


def test_slab_reaching_far_with_finite_last_interval():
    # slab [A, FAR] with the last interval ending at far: still exactly 1 - e^{-sigma (FAR - A)}
    h = 0.05
    t = torch.arange(round(FAR / h), dtype=torch.float64)[None] * h
    sigma = torch.where(t >= A - 1e-9, SIGMA, 0.0)
    deltas = sample_deltas(t, last=torch.tensor([FAR]) - t[:, -1])
    acc = render_weights(sigma, deltas)[0].sum().item()
    assert acc == pytest.approx(1.0 - math.exp(-SIGMA * (FAR - A)), abs=1e-12)


@pytest.mark.parametrize("h", [0.05, 0.01, 0.002])
def test_slab_expected_depth(h):
    t, sigma = slab(h)
    deltas = sample_deltas(t)
    rgb = torch.zeros(*t.shape, 3, dtype=t.dtype)
    exact = continuous_expected_depth(A, B, SIGMA)

    # with t at the interval starts, the code computes the discrete closed form exactly ...
    depth_starts = render_along_rays(sigma, rgb, t, deltas)["depth"].item()
    assert depth_starts == pytest.approx(discrete_expected_depth(A, B, SIGMA, h), abs=1e-10)
    # ... which is the continuous E[t | hit] biased by half a sample spacing
    assert depth_starts - exact == pytest.approx(-h / 2, abs=SIGMA * h**2)
    # with t at the interval midpoints the bias is second order in the spacing
    depth_mids = render_along_rays(sigma, rgb, t + h / 2, deltas)["depth"].item()
    assert depth_mids == pytest.approx(exact, abs=SIGMA * h**2)


def test_depth_is_zero_where_nothing_is_hit():
    t = torch.linspace(2.0, 6.0, 16)[None].repeat(2, 1)
    sigma = torch.zeros_like(t)
    out = render_along_rays(sigma, torch.rand(2, 16, 3), t, sample_deltas(t))
    assert torch.equal(out["depth"], torch.zeros(2))
    assert torch.equal(out["acc"], torch.zeros(2))


# --- weights against the loop reference ----------------------------------------------------------


@pytest.mark.parametrize("last", [INFINITE_DELTA, 0.3])
def test_weights_match_loop_reference(last):
    g = torch.Generator().manual_seed(0)
    t = torch.sort(torch.rand(6, 24, generator=g, dtype=torch.float64) * 4 + 2, dim=-1).values
    sigma = torch.rand(6, 24, generator=g, dtype=torch.float64) * 3
    sigma[0] = 0.0  # an empty ray
    sigma[1, 5] = 1e4  # an opaque sample half way
    deltas = sample_deltas(t, last)
    w, trans, alpha = render_weights(sigma, deltas)
    w_ref, trans_ref, alpha_ref = loop_weights(sigma, deltas)
    torch.testing.assert_close(w, w_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(trans, trans_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(alpha, alpha_ref, rtol=1e-12, atol=1e-12)
    assert torch.all(w.sum(-1) <= 1.0 + 1e-12)
    assert torch.all(w[1, 6:] < 1e-12)  # nothing is seen behind the opaque sample


def test_float32_weights_with_infinite_last_interval():
    # Regression: the exclusive cumsum used to be cumsum(tau) - tau, which cancels to 0 in float32
    # once tau_S ~ 1e10 is added, giving T_S = 1 and weights that sum to more than 1.
    t = torch.linspace(2.0, 6.0, 64)[None]
    sigma = torch.full_like(t, 0.05)
    w, trans, _ = render_weights(sigma, sample_deltas(t))
    expected_last_t = math.exp(-0.05 * 4.0)
    assert trans[0, -1].item() == pytest.approx(expected_last_t, rel=1e-5)
    assert w.sum().item() == pytest.approx(1.0, abs=1e-6)  # the infinite tail absorbs the rest
    w_ref, trans_ref, _ = loop_weights(sigma.double(), sample_deltas(t.double()))
    torch.testing.assert_close(w.double(), w_ref, rtol=1e-5, atol=1e-6)


def test_render_weights_gradcheck():
    g = torch.Generator().manual_seed(1)
    sigma = (torch.rand(3, 7, generator=g, dtype=torch.float64) * 2).requires_grad_()
    deltas = (torch.rand(3, 7, generator=g, dtype=torch.float64) * 0.5 + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(lambda s, d: render_weights(s, d), (sigma, deltas))


def test_gradients_reach_sigma_and_rgb():
    t = torch.linspace(2.0, 6.0, 8)[None]
    sigma = torch.full((1, 8), 0.5, requires_grad=True)
    rgb = torch.full((1, 8, 3), 0.5, requires_grad=True)
    out = render_along_rays(sigma, rgb, t, sample_deltas(t), background=torch.ones(3))
    (out["rgb"].sum() + out["depth"].sum()).backward()
    assert torch.isfinite(sigma.grad).all() and sigma.grad.abs().sum() > 0
    assert torch.isfinite(rgb.grad).all() and rgb.grad.abs().sum() > 0


# --- compositing ---------------------------------------------------------------------------------


def test_background_compositing():
    t = torch.linspace(2.0, 6.0, 32)[None].repeat(3, 1)
    sigma = torch.zeros(3, 32)
    sigma[1, 10:] = 1e5  # opaque from sample 10 on
    sigma[2, 10:12] = 0.5  # semi-transparent
    obj = torch.tensor([0.2, 0.4, 0.6])
    rgb = obj.expand(3, 32, 3)
    bg = torch.tensor([1.0, 0.5, 0.0])
    out = render_along_rays(sigma, rgb, t, sample_deltas(t), background=bg)
    torch.testing.assert_close(out["rgb"][0], bg)  # no density: the background
    torch.testing.assert_close(out["rgb"][1], obj)  # opaque: the object
    a = out["acc"][2]
    torch.testing.assert_close(out["rgb"][2], a * obj + (1 - a) * bg)
    assert out["depth"][1].item() == pytest.approx(t[1, 10].item(), abs=1e-5)
    # no background means black
    black = render_along_rays(sigma, rgb, t, sample_deltas(t))["rgb"]
    torch.testing.assert_close(black[0], torch.zeros(3))


def test_composite_is_weighted_sum():
    w = torch.rand(4, 5)
    v = torch.rand(4, 5, 2)
    ref = torch.stack([sum(w[r, s] * v[r, s] for s in range(5)) for r in range(4)])
    torch.testing.assert_close(composite(w, v), ref)


# --- sample_deltas -------------------------------------------------------------------------------


def test_sample_deltas_scalar_and_tensor_last():
    t = torch.tensor([[0.0, 0.5, 1.5, 3.0], [1.0, 2.0, 2.5, 2.75]])
    d = sample_deltas(t)
    torch.testing.assert_close(d[:, :3], torch.tensor([[0.5, 1.0, 1.5], [1.0, 0.5, 0.25]]))
    assert torch.all(d[:, -1] == INFINITE_DELTA)
    assert torch.all(sample_deltas(t, 0.125)[:, -1] == 0.125)
    far = torch.tensor([4.0, 3.0])
    torch.testing.assert_close(sample_deltas(t, far - t[:, -1])[:, -1], torch.tensor([1.0, 0.25]))
    # batched leading dimensions and dtype are kept
    t3 = t.double()[None].repeat(2, 1, 1)
    last = torch.ones(2, 2, dtype=torch.float32)
    d3 = sample_deltas(t3, last)
    assert d3.shape == (2, 2, 4) and d3.dtype == torch.float64
    assert torch.all(d3[..., -1] == 1.0)


# --- packed volume rendering -------------------------------------------------------------------


def _ragged(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor([0, 1, 5, 17, 0, 3, 64, 2])
    r = len(counts)
    s = int(counts.max())
    sigma = torch.rand(r, s, generator=g) * 5
    sigma[:, ::3] = 0.0
    sigma[3, 4] = 1e6  # an opaque sample mid-ray
    deltas = torch.rand(r, s, generator=g) * 0.2 + 0.01
    t = torch.cumsum(deltas, -1)
    rgb = torch.rand(r, s, 3, generator=g)
    valid = torch.arange(s)[None] < counts[:, None]
    return counts, sigma, deltas, t, rgb, valid


def test_packed_weights_match_dense():
    counts, sigma, deltas, t, rgb, valid = _ragged()
    ray_idx = torch.repeat_interleave(torch.arange(len(counts)), counts)
    w, tr, al = render_weights_packed(sigma[valid], deltas[valid], ray_idx)
    # dense reference: padded samples have zero density and so do not change the earlier ones
    wd, trd, ald = render_weights(torch.where(valid, sigma, 0.0), deltas)
    torch.testing.assert_close(w, wd[valid])
    torch.testing.assert_close(tr, trd[valid])
    torch.testing.assert_close(al, ald[valid])


def test_packed_render_matches_dense_and_gradients():
    counts, sigma, deltas, t, rgb, valid = _ragged(1)
    sigma = sigma.clamp(max=50).double()
    ray_idx = torch.repeat_interleave(torch.arange(len(counts)), counts)
    bg = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    sp = sigma[valid].clone().requires_grad_(True)
    out = render_packed(
        sp, rgb[valid].double(), t[valid].double(), deltas[valid].double(), ray_idx, len(counts), bg
    )
    sd = torch.where(valid, sigma, 0.0).requires_grad_(True)
    ref = render_along_rays(sd, rgb.double(), t.double(), deltas.double(), bg)
    for k in ("rgb", "acc", "depth"):
        torch.testing.assert_close(out[k], ref[k])
    (out["rgb"].sum() + out["acc"].sum()).backward()
    (ref["rgb"].sum() + ref["acc"].sum()).backward()
    torch.testing.assert_close(sp.grad, sd.grad[valid])


def test_packed_transmittance_exact_after_many_opaque_rays():
    # float32 sums over many earlier (opaque) rays must not disturb a later ray's transmittance
    n = 2000
    counts = torch.full((n,), 4)
    sigma = torch.full((n, 4), 1e4)
    sigma[-1] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    deltas = torch.full((n, 4), 0.5)
    ray_idx = torch.repeat_interleave(torch.arange(n), counts)
    w, tr, _ = render_weights_packed(sigma.reshape(-1), deltas.reshape(-1), ray_idx)
    wd, trd, _ = render_weights(sigma[-1:], deltas[-1:])
    torch.testing.assert_close(tr[-4:], trd[0])
    torch.testing.assert_close(w[-4:], wd[0])


def test_distortion_loss_packed_matches_the_double_sum_loop():
    g = torch.Generator().manual_seed(3)
    counts = [5, 0, 1, 9, 3]  # a ray without samples and a ray with one
    ray_idx = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    p = len(ray_idx)
    w = torch.rand(p, generator=g, dtype=torch.float64) * 0.3
    deltas = torch.rand(p, generator=g, dtype=torch.float64) * 0.1
    s = torch.empty(p, dtype=torch.float64)
    for r in range(len(counts)):  # sorted positions along each ray
        sel = ray_idx == r
        s[sel] = torch.sort(torch.rand(int(sel.sum()), generator=g, dtype=torch.float64))[0]
    got = distortion_loss_packed(w, s, deltas, ray_idx, len(counts))
    for r in range(len(counts)):
        sel = (ray_idx == r).nonzero().squeeze(-1)
        want = 0.0
        for i in sel:
            for j in sel:
                want += float(w[i] * w[j] * (s[i] - s[j]).abs())
            want += float(w[i] ** 2 * deltas[i]) / 3.0
        assert float(got[r]) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_distortion_loss_is_smaller_for_one_compact_surface():
    ray_idx = torch.zeros(10, dtype=torch.long)
    s = (torch.arange(10, dtype=torch.float64) + 0.5) / 10
    deltas = torch.full((10,), 0.1, dtype=torch.float64)
    spread = torch.full((10,), 0.1, dtype=torch.float64)
    compact = torch.zeros(10, dtype=torch.float64)
    compact[4] = 1.0
    l_spread = distortion_loss_packed(spread, s, deltas, ray_idx, 1)
    l_compact = distortion_loss_packed(compact, s, deltas, ray_idx, 1)
    assert float(l_compact) == pytest.approx(0.1 / 3.0)  # only the self term of one interval
    assert float(l_compact) < float(l_spread)
    # the gradient flows to the weights
    w = spread.clone().requires_grad_(True)
    distortion_loss_packed(w, s, deltas, ray_idx, 1).sum().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
