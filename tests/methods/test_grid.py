"""The `grid` method: interpolation against the trilinear formula, the fused kernel against the
reference path, packed volume rendering against dense, occupancy skipping against dense sampling,
checkpoints of grown grids, and a short training run against the paper's model."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta
from nerfkit.methods.grid import GridConfig, GridMethod
from nerfkit.render.grid import (
    _TrilinearFn,
    load_kernel,
    march,
    march_reference,
    ray_aabb,
    resample_grid,
    trilinear,
    trilinear_reference,
)
from nerfkit.render.volume import (
    render_along_rays,
    render_packed,
    render_weights,
    render_weights_packed,
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
    g = torch.Generator().manual_seed(2)
    r = 300
    o = torch.randn(r, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 4.0])
    d = torch.randn(r, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, -1.0])
    d = d / d.norm(dim=-1, keepdim=True)
    lo, hi = torch.tensor([-1.5, -1.0, -1.2]), torch.tensor([1.5, 1.2, 1.0])
    t0, t1 = ray_aabb(o, d, lo, hi)
    t0 = t0.clamp(min=2.0)
    step = torch.rand(r, generator=g) * 0.05 + 0.01
    jitter = torch.rand(r, generator=g)
    occ = torch.rand(20, 17, 15, generator=g) > 0.6
    a = march(o, d, t0, t1, step, jitter, occ, use_mask, lo, hi, 64)
    b = march(o, d, t0, t1, step, jitter, occ, use_mask, lo, hi, 64, kernel="torch")
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
    ri, t, c = march_reference(o, d, one, 3 * one, 0.5 * one, 0.4 * one, occ, lo, hi, 100)
    torch.testing.assert_close(t, torch.tensor([1.2, 1.7]))
    torch.testing.assert_close(c[:, 0], torch.tensor([0.4, 1.4]))
    assert ri.tolist() == [0, 0]


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


# --- the method -------------------------------------------------------------------------------


def _meta() -> SceneMeta:
    return SceneMeta(near=0.5, far=6.0, background=[1.0, 1.0, 1.0])


def _small_method(**kw) -> GridMethod:
    cfg = GridConfig(num_voxels_final=24**3, upsample_steps=(), fit_box_step=-1, mlp_start=0, **kw)
    torch.manual_seed(0)
    m = GridMethod(cfg, _meta())
    return m


def _camera_rays(n: int = 200, seed: int = 0) -> Rays:
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, 3, generator=g) - 0.5) * 2.0
    o = torch.tensor([0.3, -0.2, 4.0]).expand(n, 3)
    d = target - o
    d = d / d.norm(dim=-1, keepdim=True)
    return Rays(o.contiguous(), d, torch.full((n,), 0.5), torch.full((n,), 6.0))


def _ball_density(m: GridMethod) -> None:
    """Density: a ball of radius 0.8 at the origin; exactly empty (raw -100) elsewhere."""
    shape = m.grid_shape
    ax = [torch.linspace(float(m.lo[k]), float(m.hi[k]), shape[k]) for k in range(3)]
    v = torch.stack(torch.meshgrid(*ax, indexing="ij"), -1)
    inside = v.norm(dim=-1) < 0.8
    g = torch.Generator().manual_seed(3)
    raw = torch.where(inside, torch.randn(shape, generator=g) * 2 + 2, torch.full(shape, -100.0))
    with torch.no_grad():
        m.density.copy_(raw[..., None])
        m.features.copy_(torch.randn(m.features.shape, generator=g))


@pytest.mark.parametrize("kernel", ["auto", "torch"])
def test_occupancy_skipping_gives_the_dense_image(kernel):
    m = _small_method(kernel=kernel, weight_threshold=0.0)
    _ball_density(m)
    m.eval()
    rays = _camera_rays()
    with torch.no_grad():
        dense = m(rays)
        m.update_occupancy(m.config.occ_threshold)
        assert not bool(m.occupancy.all()) and bool(m.occupancy.any())
        sparse = m(rays)
    assert sparse.extras["num_samples"] < 0.6 * dense.extras["num_samples"]
    torch.testing.assert_close(sparse.rgb, dense.rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(sparse.acc, dense.acc, atol=1e-6, rtol=0)
    torch.testing.assert_close(sparse.depth, dense.depth, atol=1e-5, rtol=1e-5)


def test_weight_pruning_changes_little():
    m = _small_method(weight_threshold=0.0)
    _ball_density(m)
    m.eval()
    rays = _camera_rays()
    with torch.no_grad():
        full = m(rays)
        m.config.weight_threshold = 1e-4
        pruned = m(rays)
    assert pruned.extras["num_colour_samples"] < full.extras["num_colour_samples"]
    # each dropped sample changes the colour by at most its weight (< 1e-4)
    assert (pruned.rgb - full.rgb).abs().max() < 1e-4 * m.config.max_samples_per_ray
    torch.testing.assert_close(pruned.acc, full.acc)


def test_empty_rays_see_the_background():
    m = _small_method()
    m.eval()
    o = torch.tensor([[5.0, 5.0, 5.0]])
    d = torch.tensor([[1.0, 0.0, 0.0]])  # points away from the box
    out = m(Rays(o, d, torch.tensor([0.5]), torch.tensor([6.0])))
    torch.testing.assert_close(out.rgb, torch.ones(1, 3))
    assert float(out.acc.detach()) == 0.0


def test_growth_fit_and_checkpoint_roundtrip():
    cfg = GridConfig(num_voxels_final=32**3, upsample_steps=(2, 4), fit_box_step=2, occ_start=1)
    torch.manual_seed(0)
    m = GridMethod(cfg, _meta())
    _ball_density(m)
    n0 = m.density.numel()
    assert m.step_callback(0) is False
    m.step_callback(1)  # occupancy from now on
    assert m.use_mask
    assert m.step_callback(2) is True  # box fitted to the ball, grown
    assert (m.hi - m.lo).max() < 2.2  # the ball (radius 0.8) plus a margin, not the 3-unit box
    assert m.step_callback(4) is True
    assert m.density.numel() > n0
    rays = _camera_rays(50)
    m.eval()
    with torch.no_grad():
        want = m(rays)
    fresh = GridMethod(cfg, _meta())
    fresh.load_state_dict(m.state_dict())
    fresh.eval()
    with torch.no_grad():
        got = fresh(rays)
    torch.testing.assert_close(got.rgb, want.rgb)
    assert fresh.step_callback(5) is False  # nothing left to grow


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda():
    m = _small_method().cuda()
    out = m(_camera_rays(64).to("cuda"))
    out.rgb.sum().backward()
    assert out.rgb.device.type == "cuda"


# --- training ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_short_training_beats_nerf_at_equal_steps(tmp_path):
    """A few dozen steps on the procedural scene: the grid beats the paper's model (demo size)
    by a wide margin at equal steps and equal rays (fixed seeds; steps, not seconds)."""
    from nerfkit.config import TrainConfig
    from nerfkit.data import load_scene
    from nerfkit.data.synthetic import generate_scene
    from nerfkit.evaluate import image_metrics, render_image
    from nerfkit.methods.nerf import NeRFConfig
    from nerfkit.train import Trainer

    data = generate_scene(tmp_path / "scene", resolution=32, n_train=30, n_val=0, n_test=2)
    scene = load_scene(data)
    test = scene.split("test")
    steps = 60
    grid = GridConfig(
        num_voxels_final=48**3,
        upsample_steps=(20, 40),
        fit_box_step=20,
        mlp_start=20,
        occ_start=10,
        occ_every=10,
    )
    small_nerf = NeRFConfig(width=64, depth=4, skip=2, n_coarse=32, n_fine=32, pos_freqs=8)
    psnr = {}
    for name in ("grid", "nerf"):
        cfg = TrainConfig(
            data=data,
            output=tmp_path / name,
            method=name,
            max_steps=steps,
            batch_rays=512,
            lr=1e-3 if name == "grid" else 1e-3,
            val_every=0,
            ckpt_every=0,
            progress=False,
            grid=grid,
            nerf=small_nerf,
        )
        tr = Trainer(cfg, scene)
        while not tr.done():
            tr.train_step()
        vals = []
        for k in range(len(test)):
            out = render_image(tr.method, test.cameras, k, scene.meta.near, scene.meta.far)
            vals.append(image_metrics(out["rgb"], test.images[k])["psnr"])
        psnr[name] = sum(vals) / len(vals)
    print(psnr)
    assert psnr["grid"] > psnr["nerf"] + 2.0, psnr
    assert psnr["grid"] > 18.0, psnr


def test_fit_box_from_ray_termination_points_ignores_rare_floaters():
    m = _small_method()
    g = torch.Generator().manual_seed(4)
    pts = (torch.rand(5000, 3, generator=g) - 0.5) * torch.tensor([0.6, 1.0, 0.4])
    pts[:3] = torch.tensor([1.4, 1.4, 1.4])  # a few floaters far out
    m._surface_pts = [pts]
    assert m.fit_box(1e-2)
    margin = 0.05 * 3.0
    assert torch.all(m.lo >= torch.tensor([-0.3, -0.5, -0.2]) - margin - 1e-3)
    assert torch.all(m.hi <= torch.tensor([0.3, 0.5, 0.2]) + margin + 1e-3)
    assert torch.all(m.lo <= torch.tensor([-0.29, -0.49, -0.19]))
