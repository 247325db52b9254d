"""Dense-grid maths (nerfkit.render.grid): interpolation against the trilinear formula, the fused
C++ kernels against the pure-PyTorch reference, marching, resampling and the slab test."""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from pathlib import Path

import pytest
import torch

import nerfkit.render.grid as grid_mod
from nerfkit.render.grid import (
    CompositeParams,
    MarchParams,
    _TrilinearFn,
    kernel_name,
    load_kernel,
    march,
    march_composite,
    march_reference,
    ray_aabb,
    resample_grid,
    trilinear,
    trilinear_grid_sample,
    trilinear_reference,
)


def direct_trilinear(grid: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The textbook formula, one point at a time, in float64."""
    x, y, z = p.tolist()
    gx, gy, gz = grid.shape[:3]
    x, y, z = min(max(x, 0), gx - 1), min(max(y, 0), gy - 1), min(max(z, 0), gz - 1)
    i, j, k = (
        min(int(math.floor(x)), gx - 2),
        min(int(math.floor(y)), gy - 2),
        min(int(math.floor(z)), gz - 2),
    )
    out = torch.zeros(grid.shape[3], dtype=torch.float64)
    for a, b, c in itertools.product((0, 1), repeat=3):
        w = (1 - abs(x - (i + a))) * (1 - abs(y - (j + b))) * (1 - abs(z - (k + c)))
        out += w * grid[i + a, j + b, k + c].double()
    return out


def test_reference_matches_trilinear_formula():
    g = torch.Generator().manual_seed(0)
    grid = torch.randn(5, 4, 3, 2, generator=g)
    # inside, on vertices and faces, and outside (clamped to the border)
    pts = torch.cat(
        [
            torch.rand(40, 3, generator=g) * torch.tensor([4.0, 3.0, 2.0]),
            torch.tensor([[0.0, 0.0, 0.0], [4.0, 3.0, 2.0], [2.0, 1.0, 1.0], [4.0, 0.5, 2.0]]),
            torch.tensor([[-1.0, 5.0, 0.5], [9.0, -2.0, 7.0]]),
        ]
    )
    out = trilinear_reference(grid, pts)
    ref = torch.stack([direct_trilinear(grid, p) for p in pts])
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_reference_reproduces_a_linear_function_exactly():
    # trilinear interpolation is exact for f(x, y, z) = a x + b y + c z + d
    ax = [torch.arange(n, dtype=torch.float64) for n in (6, 7, 8)]
    v = torch.stack(torch.meshgrid(*ax, indexing="ij"), -1)
    f = (v * torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)).sum(-1, keepdim=True) + 0.7
    p = torch.rand(100, 3, dtype=torch.float64) * torch.tensor([5.0, 6.0, 7.0], dtype=torch.float64)
    want = (p * torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)).sum(-1, keepdim=True) + 0.7
    torch.testing.assert_close(trilinear_reference(f, p), want)


needs_kernel = pytest.mark.skipif(
    load_kernel() is None, reason="the fused C++ kernel could not be built here"
)


@needs_kernel
@pytest.mark.parametrize("shape", [(9, 7, 5, 12), (2, 2, 2, 1), (3, 6, 2, 3)])
def test_fused_kernel_matches_reference(shape):
    g = torch.Generator().manual_seed(1)
    grid = torch.randn(*shape, generator=g)
    lim = torch.tensor(shape[:3], dtype=torch.float32)
    pts = torch.rand(5000, 3, generator=g) * (lim + 1.0) - 0.5  # some outside: clamped
    g1 = grid.clone().requires_grad_(True)
    g2 = grid.clone().requires_grad_(True)
    a = _TrilinearFn.apply(g1, pts)
    b = trilinear_reference(g2, pts)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    up = torch.randn(a.shape, generator=g)
    (a * up).sum().backward()
    (b * up).sum().backward()
    torch.testing.assert_close(g1.grad, g2.grad, atol=1e-4, rtol=1e-4)


@needs_kernel
@pytest.mark.parametrize("use_mask", [False, True])
def test_fused_march_matches_reference(use_mask):
    p = _random_march(use_mask, seed=2)
    a = march(p)
    b = march(p, kernel="torch")
    assert a[0].numel() > 0
    assert torch.equal(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    torch.testing.assert_close(a[2], b[2])


def test_march_reference_samples():
    # one ray along +x through [-1, 1]^3 from t=1 to t=3, step 0.5, jitter 0.4: samples at
    # x = -0.8, -0.3, 0.2, 0.7, i.e. vertex coordinates 0.4, 1.4, 2.4, 3.4 (5 vertices)
    o, d = torch.tensor([[-2.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    lo, hi = -torch.ones(3), torch.ones(3)
    occ = torch.ones(5, 5, 5, dtype=torch.bool)
    occ[2:] = False  # vertices x >= 0 are empty: the last two samples go
    one = torch.ones(1)
    p = MarchParams(
        origins=o,
        directions=d,
        t_min=one,
        t_max=3 * one,
        step=0.5 * one,
        jitter=0.4 * one,
        occupancy=occ,
        use_mask=True,
        lo=lo,
        hi=hi,
        max_samples=100,
    )
    ri, t, c = march_reference(p)
    torch.testing.assert_close(t, torch.tensor([1.2, 1.7]))
    torch.testing.assert_close(c[:, 0], torch.tensor([0.4, 1.4]))
    assert ri.tolist() == [0, 0]


@pytest.mark.parametrize("shape", [(9, 7, 5, 12), (2, 2, 2, 1), (3, 6, 2, 3)])
def test_grid_sample_path_matches_reference_values_and_both_gradients(shape):
    """The CUDA path (`trilinear_grid_sample`) against the reference, in float64 so that any
    difference is a different formula, not rounding: values, the grid's gradient, and the
    coordinates' gradient (0 along a clamped axis), with points inside and outside."""
    g = torch.Generator().manual_seed(4)
    grid = torch.randn(*shape, generator=g, dtype=torch.float64)
    lim = torch.tensor(shape[:3], dtype=torch.float64)
    pts = torch.rand(3000, 3, generator=g, dtype=torch.float64) * (lim + 1.0) - 1.0
    outs, grads = [], []
    for fn in (trilinear_reference, trilinear_grid_sample):
        gr, pt = grid.clone().requires_grad_(True), pts.clone().requires_grad_(True)
        out = fn(gr, pt)
        up = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=out.dtype)
        outs.append(out)
        grads.append(torch.autograd.grad((out * up).sum(), [gr, pt]))
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert trilinear(grid, pts, "grid_sample").shape == (3000, shape[3])


def test_torch_path_is_used_when_asked():
    grid = torch.randn(3, 3, 3, 2)
    pts = torch.rand(10, 3) * 2
    torch.testing.assert_close(trilinear(grid, pts, "torch"), trilinear_reference(grid, pts))


def test_resample_grid_identity_and_linear():
    ax = [torch.linspace(-1, 1, n) for n in (5, 6, 7)]
    v = torch.stack(torch.meshgrid(*ax, indexing="ij"), -1)
    f = (v * torch.tensor([1.0, 2.0, -3.0])).sum(-1, keepdim=True)
    lo, hi = -torch.ones(3), torch.ones(3)
    torch.testing.assert_close(resample_grid(f, lo, hi, lo, hi, (5, 6, 7)), f)
    # a linear field resampled onto a sub-box at another resolution stays exact
    nlo, nhi = torch.tensor([-0.5, 0.0, -0.2]), torch.tensor([0.5, 0.9, 0.8])
    out = resample_grid(f, lo, hi, nlo, nhi, (4, 9, 3))
    ax2 = [torch.linspace(float(nlo[k]), float(nhi[k]), n) for k, n in enumerate((4, 9, 3))]
    v2 = torch.stack(torch.meshgrid(*ax2, indexing="ij"), -1)
    want = (v2 * torch.tensor([1.0, 2.0, -3.0])).sum(-1, keepdim=True)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)


def test_ray_aabb():
    o = torch.tensor([[-5.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-5.0, 3.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    t0, t1 = ray_aabb(o, d, -torch.ones(3), torch.ones(3))
    torch.testing.assert_close(t0[:2], torch.tensor([4.0, -1.0]))
    torch.testing.assert_close(t1[:2], torch.tensor([6.0, 1.0]))
    assert t1[2] <= t0[2]  # misses


def _random_march(use_mask: bool, dtype: torch.dtype = torch.float32, seed: int = 4) -> MarchParams:
    """300 rays through a box with a random occupancy mask, random steps and jitter."""
    g = torch.Generator().manual_seed(seed)
    r = 300
    o = torch.randn(r, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 4.0])
    d = torch.randn(r, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, -1.0])
    d = d / d.norm(dim=-1, keepdim=True)
    lo, hi = torch.tensor([-1.5, -1.0, -1.2]), torch.tensor([1.5, 1.2, 1.0])
    t0, t1 = ray_aabb(o, d, lo, hi)
    f = {"dtype": dtype}
    return MarchParams(
        origins=o.to(**f),
        directions=d.to(**f),
        t_min=t0.clamp(min=2.0).to(**f),
        t_max=t1.to(**f),
        step=(torch.rand(r, generator=g) * 0.05 + 0.01).to(**f),
        jitter=torch.rand(r, generator=g).to(**f),
        occupancy=torch.rand(20, 17, 15, generator=g) > 0.6,
        use_mask=use_mask,
        lo=lo.to(**f),
        hi=hi.to(**f),
        max_samples=64,
    )


def test_march_reference_without_mask_is_an_all_true_mask():
    p = _random_march(use_mask=False)
    full = dataclasses.replace(p, occupancy=torch.ones_like(p.occupancy), use_mask=True)
    a, b = march_reference(p), march_reference(full)
    assert a[0].numel() > 0
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    masked = march_reference(dataclasses.replace(p, use_mask=True))
    assert 0 < masked[0].numel() < a[0].numel()


def test_kernel_name_follows_content_and_flags():
    src = {"a.cpp": b"int f() { return 1; }", "a.h": b"#pragma once"}
    name = kernel_name(src, ("-O3",))
    assert name.startswith("nerfkit_grid_") and name.isidentifier()
    assert kernel_name(dict(reversed(src.items())), ("-O3",)) == name  # order of files: none
    assert kernel_name({**src, "a.cpp": b"int f() { return 2; }"}, ("-O3",)) != name
    assert kernel_name({**src, "b.h": b""}, ("-O3",)) != name
    assert kernel_name(src, ("-O2",)) != name
    # names and contents cannot trade bytes
    assert kernel_name({"ab": b"c"}, ()) != kernel_name({"a": b"bc"}, ())


def test_kernel_sources_are_in_the_package():
    names = {p.name for p in grid_mod._kernel_files()}
    assert {"grid_kernels.h", "trilinear.cpp", "march.cpp", "bindings.cpp"} <= names


@needs_kernel
def test_kernel_is_built_under_its_content_name():
    files = grid_mod._kernel_files()
    name = grid_mod._kernel_build_name(files)
    assert load_kernel().__name__ == name
    built = Path(load_kernel().__file__).resolve()
    assert built.parent == (grid_mod._extensions_root() / name).resolve()


def test_staged_sources_are_shared_by_checkouts(tmp_path):
    """Two checkouts with the same sources stage them to the same paths (one build for both);
    unchanged files are not rewritten, changed ones are."""
    checkouts = [tmp_path / "a" / "csrc", tmp_path / "b" / "csrc"]
    for c in checkouts:
        c.mkdir(parents=True)
        (c / "k.cpp").write_text('#include "k.h"\nint f() { return 1; }\n')
        (c / "k.h").write_text("int f();\n")
    build = tmp_path / "ext" / "nerfkit_grid_x"
    first = grid_mod.stage_sources(sorted(checkouts[0].iterdir()), build)
    stamp = [p.stat().st_mtime_ns for p in first]
    second = grid_mod.stage_sources(sorted(checkouts[1].iterdir()), build)
    assert first == second == [build / "src" / "k.cpp", build / "src" / "k.h"]
    assert [p.stat().st_mtime_ns for p in second] == stamp
    assert (build / "src" / "k.cpp").read_text() == (checkouts[1] / "k.cpp").read_text()
    (checkouts[1] / "k.h").write_text("int f(void);\n")
    grid_mod.stage_sources(sorted(checkouts[1].iterdir()), build)
    assert (build / "src" / "k.h").read_text() == "int f(void);\n"
    assert sorted(p.name for p in (build / "src").iterdir()) == ["k.cpp", "k.h"]  # no temp files


@needs_kernel
def test_fused_march_composite_matches_march_and_reference_weights():
    p = _random_march(use_mask=True)
    density = torch.randn(*p.occupancy.shape, 1, generator=torch.Generator().manual_seed(5))
    comp = CompositeParams(
        density=density,
        shift=-1.0,
        sigma_scale=3.0,
        delta=0.02,
        weight_threshold=0.0,
        stop_transmittance=0.0,
    )
    acc, wt, ri, coords, w, evals, t_end = march_composite(p, comp)
    r_ref, t_ref, c_ref = march_reference(p)
    assert int(evals) == r_ref.numel()
    assert torch.equal(ri, r_ref)
    torch.testing.assert_close(coords, c_ref)
    sigma = torch.nn.functional.softplus(trilinear_reference(density, c_ref)[:, 0] - 1.0) * 3.0
    tau = sigma * 0.02
    before = torch.zeros_like(tau)  # sum of tau of the earlier samples of the same ray
    for r in r_ref.unique():
        sel = (r_ref == r).nonzero().squeeze(-1)
        before[sel] = torch.cumsum(tau[sel], 0) - tau[sel]
    w_ref = torch.exp(-before) * (1.0 - torch.exp(-tau))
    torch.testing.assert_close(w, w_ref, atol=1e-6, rtol=1e-5)
    acc_ref = torch.zeros(p.origins.shape[0]).index_add_(0, r_ref, w_ref)
    wt_ref = torch.zeros(p.origins.shape[0]).index_add_(0, r_ref, w_ref * t_ref)
    torch.testing.assert_close(acc, acc_ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(wt, wt_ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(t_end, p.t_max)  # stop_transmittance 0: no ray stops early


@needs_kernel
def test_march_composite_t_end_is_where_transmittance_falls_below_the_stop():
    p = _random_march(use_mask=False)
    density = torch.randn(*p.occupancy.shape, 1, generator=torch.Generator().manual_seed(6))
    stop = 0.05
    comp = CompositeParams(density, 2.0, 3.0, 0.05, 0.0, stop)
    *_, t_end = march_composite(p, comp)
    r_ref, t_ref, c_ref = march_reference(p)
    tau = torch.nn.functional.softplus(trilinear_reference(density, c_ref)[:, 0] + 2.0) * 3.0 * 0.05
    for r in range(p.origins.shape[0]):  # slow loop reference
        sel = (r_ref == r).nonzero().squeeze(-1)
        trans = torch.exp(-torch.cumsum(tau[sel].double(), 0))
        below = (trans < stop).nonzero()
        want = t_ref[sel][below[0, 0]] if len(below) else p.t_max[r]
        assert t_end[r] == want, r
    assert (t_end < p.t_max).any() and (t_end == p.t_max).any()  # both cases occur


def test_march_composite_needs_cpu_float32():
    p = _random_march(use_mask=True, dtype=torch.float64)
    comp = CompositeParams(torch.zeros(*p.occupancy.shape, 1, dtype=torch.float64), 0, 1, 1, 0, 0)
    assert march_composite(p, comp) is None


def _without_kernel(monkeypatch, build) -> None:
    """Forget the loaded kernel (restored after the test) and build it with `build`."""
    monkeypatch.setattr(grid_mod, "_kernel_module", None)
    monkeypatch.setattr(grid_mod, "_kernel_failed", False)
    monkeypatch.setattr(grid_mod, "_build_kernel", build)


def test_failed_build_warns_once_and_falls_back_to_torch(monkeypatch):
    def fail():
        raise OSError("no compiler\ng++: not found")

    monkeypatch.delenv("NERFKIT_NO_KERNEL", raising=False)
    _without_kernel(monkeypatch, fail)
    with pytest.warns(RuntimeWarning, match="could not build .*OSError: g\\+\\+: not found"):
        assert load_kernel() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_kernel() is None  # no second warning, no second build
        p = _random_march(use_mask=True)
        for x, y in zip(march(p), march_reference(p)):
            assert torch.equal(x, y)
        comp = CompositeParams(torch.zeros(*p.occupancy.shape, 1), 0.0, 1.0, 1.0, 0.0, 0.0)
        assert march_composite(p, comp) is None
        grid = torch.randn(4, 5, 6, 3)
        pts = torch.rand(50, 3) * 4
        # without the C++ kernel, auto falls back to grid_sample (the same values)
        torch.testing.assert_close(trilinear(grid, pts), trilinear_reference(grid, pts))


def test_no_kernel_env_skips_the_build(monkeypatch):
    def build():
        raise AssertionError("NERFKIT_NO_KERNEL=1 must not build")

    monkeypatch.setenv("NERFKIT_NO_KERNEL", "1")
    _without_kernel(monkeypatch, build)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_kernel() is None
