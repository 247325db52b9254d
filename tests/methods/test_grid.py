"""The `grid` method: the fused render path against the unfused reference, occupancy skipping
against dense sampling, weight pruning, checkpoints of grown grids, box fitting, and a short
training run against the paper's model."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta
from nerfkit.methods.grid import GridConfig, GridMethod
from nerfkit.render.grid import load_kernel

needs_kernel = pytest.mark.skipif(
    load_kernel() is None, reason="the fused C++ kernel could not be built here"
)


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
    assert sparse.num_samples < 0.6 * dense.num_samples
    torch.testing.assert_close(sparse.rgb, dense.rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(sparse.acc, dense.acc, atol=1e-6, rtol=0)
    torch.testing.assert_close(sparse.depth, dense.depth, atol=1e-5, rtol=1e-5)


@needs_kernel
@pytest.mark.parametrize("opaque", [False, True])
def test_fused_render_matches_the_reference_path(opaque):
    m = _small_method()
    _ball_density(m)
    if opaque:  # a solid ball: rays terminate early inside it
        with torch.no_grad():
            m.density.add_(torch.where(m.density > -50, 10.0, 0.0))
    m.update_occupancy(m.config.occ_threshold)
    m.eval()
    rays = _camera_rays(300)
    with torch.no_grad():
        fused = m(rays)
        m.config.kernel = "torch"  # the unfused pure-PyTorch path
        ref = m(rays)
    hit = ref.acc > (0.5 if opaque else 1e-3)
    assert int(hit.sum()) > 50
    # the samples skipped by early termination weigh < stop_transmittance (1e-4) in total
    tol = 2e-4 if opaque else 1e-5
    torch.testing.assert_close(fused.rgb, ref.rgb, atol=tol, rtol=0)
    torch.testing.assert_close(fused.acc, ref.acc, atol=tol, rtol=0)
    torch.testing.assert_close(fused.depth[hit], ref.depth[hit], atol=1e-3, rtol=0)
    if opaque:
        assert fused.num_samples < 0.7 * ref.num_samples
    else:
        assert fused.num_samples == ref.num_samples


def test_weight_pruning_changes_little():
    m = _small_method(weight_threshold=0.0)
    _ball_density(m)
    m.eval()
    rays = _camera_rays()
    with torch.no_grad():
        full = m(rays)
        m.config.weight_threshold = 1e-4
        pruned = m(rays)
    assert pruned.num_colour_samples < full.num_colour_samples
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
    from nerfkit.methods.nerf import NeRFConfig
    from nerfkit.metrics import image_metrics
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
            out = tr.method.render_image(test.cameras, k, scene.meta.near, scene.meta.far)
            vals.append(image_metrics(out.rgb, test.images[k])["psnr"])
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


def test_ndc_grids_resolve_the_image_plane_more_finely_than_depth():
    meta = SceneMeta(
        near=0.0, far=1.0, background=[0.0, 0.0, 0.0], ndc=True, aabb=[[-1.0] * 3, [1.0] * 3]
    )
    cfg = GridConfig(num_voxels_final_ndc=64 * 64 * 32, upsample_steps=(), fit_box_step=-1)
    x, y, z = GridMethod(cfg, meta).grid_shape
    assert (x, y) == (65, 65) and z == 33  # vertices = voxels + 1, x : y : z = 2 : 2 : 1
    iso = GridMethod(GridConfig(num_voxels_final=32**3, upsample_steps=()), _meta()).grid_shape
    assert max(iso) - min(iso) <= 1


def _ndc_method(**kw) -> GridMethod:
    meta = SceneMeta(
        near=0.0,
        far=1.0,
        background=[0.0, 0.0, 0.0],
        ndc=True,
        aabb=[[-1.5] * 2 + [-1.0], [1.5] * 2 + [1.0]],
    )
    cfg = GridConfig(
        num_voxels_final_ndc=48 * 48 * 24, upsample_steps=(), fit_box_step=-1, mlp_start=0, **kw
    )
    torch.manual_seed(0)
    return GridMethod(cfg, meta)


def _ndc_rays(n: int = 64) -> Rays:
    """NDC rays from the near plane (z = -1, t = 0) to infinity (z = +1, t = 1), tilted."""
    g = torch.Generator().manual_seed(1)
    o = torch.cat([(torch.rand(n, 2, generator=g) - 0.5), -torch.ones(n, 1)], -1)
    d = torch.cat([(torch.rand(n, 2, generator=g) - 0.5) * 0.6, 2.0 * torch.ones(n, 1)], -1)
    return Rays(o, d, torch.zeros(n), torch.ones(n), viewdirs=d / d.norm(dim=-1, keepdim=True))


def test_ndc_start_makes_every_depth_equally_likely():
    # T(u) = 1 - u over the box depth u: each ray's expected stopping depth is uniform, so its
    # weight is spread evenly over NDC depth (the DVGO forward-facing start)
    m = _ndc_method(kernel="torch")
    m.train()
    s = m.sample_rays(_ndc_rays(), perturb=False)
    sigma = m.sigma_from_raw(m.density_at(s["coords"]))
    from nerfkit.render.volume import render_weights_packed

    _, trans, _ = render_weights_packed(sigma, s["deltas"], s["ray_indices"])
    u = (s["t"] * 2.0 - 1.0 + 1.0) / 2.0  # NDC z = -1 + 2t -> depth fraction in the box
    torch.testing.assert_close(trans, (1.0 - u).clamp(min=0), atol=0.03, rtol=0)
    # samples are spaced by NDC depth planes: step_ratio layers of the grid per sample
    z_step = 2.0 * (s["t_steps"])
    layer = 2.0 / (m.grid_shape[2] - 1)
    torch.testing.assert_close(z_step, torch.full_like(z_step, m.config.step_ratio * layer))


def test_ndc_start_can_be_switched_off():
    m = _ndc_method(ndc_uniform_init=False, ndc_plane_steps=False)
    assert float(m.density.detach().abs().max()) == 0.0  # the plain nearly-empty start


@needs_kernel
def test_training_stops_marching_where_rays_are_opaque():
    full = _small_method(train_stop_transmittance=0.0)
    early = _small_method(train_stop_transmittance=1e-3)
    for m in (full, early):
        _ball_density(m)
        with torch.no_grad():  # a solid ball: rays become opaque inside it
            m.density.add_(torch.where(m.density > -50, 10.0, 0.0))
        m.update_occupancy(m.config.occ_threshold)
        m.train()
    torch.manual_seed(5)
    a = full(_camera_rays())
    torch.manual_seed(5)  # the same jitter
    b = early(_camera_rays())
    assert float(b.num_samples) < 0.8 * float(a.num_samples)
    # what is cut lies behind T < 1e-3: colours and opacity agree to that
    torch.testing.assert_close(b.rgb, a.rgb, atol=2e-3, rtol=0)
    torch.testing.assert_close(b.acc, a.acc, atol=2e-3, rtol=0)
    # and the gradient still reaches the density grid
    b.rgb.sum().backward()
    assert early.density.grad.abs().sum() > 0


# --- unbounded scenes: contracted grids --------------------------------------------------------


def _ring_c2w(n: int = 12, radius: float = 3.0, look_at=(0.2, -0.1, 0.3)) -> list:
    from nerfkit.poses import look_at as look

    target = torch.tensor(look_at)
    out = []
    for k in range(n):
        a = 2 * math.pi * k / n
        eye = target + torch.tensor([radius * math.cos(a), radius * math.sin(a), 0.8])
        out.append(look(eye, target, torch.tensor([0.0, 0.0, 1.0])).tolist())
    return out


def _unbounded_method(**kw) -> GridMethod:
    meta = SceneMeta(near=0.05, far=4.0, background=[1.0, 1.0, 1.0], unbounded=True)
    meta.train_c2w = _ring_c2w()
    cfg = GridConfig(
        num_voxels_final_unbounded=32**3, upsample_steps=(), mlp_start=0, inner_scale=0.5, **kw
    )
    torch.manual_seed(0)
    return GridMethod(cfg, meta)


def test_unbounded_scenes_get_a_contracted_grid_around_what_the_cameras_look_at():
    m = _unbounded_method()
    assert m.contracted and bool(m.box_fitted)  # no box fitting: the grid holds all of space
    torch.testing.assert_close(m.inner_center, torch.tensor([0.2, -0.1, 0.3]), atol=1e-4, rtol=0)
    dist = (3.0**2 + 0.8**2) ** 0.5
    assert float(m.inner_radius) == pytest.approx(0.5 * dist, rel=1e-5)
    half = (1 + m.config.bg_len) * float(m.inner_radius)
    torch.testing.assert_close(m.hi - m.lo, torch.full((3,), 2 * half))
    assert m.entropy_weight == 0.0 and m.tv_weight > 0 and m.distortion_weight > 0
    # switched off: the loader's box, as for any bounded scene
    off = _unbounded_method(contract=False)
    assert not off.contracted and off.entropy_weight == 0.01
    torch.testing.assert_close(off.lo, torch.full((3,), -1.5))


def test_inner_cube_of_outward_looking_cameras_is_around_the_cameras():
    from nerfkit.methods.grid import inner_cube

    c2w = torch.tensor(_ring_c2w(radius=1.0, look_at=(0.0, 0.0, 0.0)))
    c2w[:, :3, :2] *= -1  # turn every camera around (x and z flipped): they look outward
    c2w[:, :3, 2] *= -1
    center, radius = inner_cube(c2w.tolist(), 0.5)
    torch.testing.assert_close(center, c2w[:, :3, 3].mean(0))


def _far_shell_and_ball(m: GridMethod) -> None:
    """Density: a ball of radius 0.3 at the inner centre and everything beyond 20 inner radii
    (a far wall in contracted space); random features."""
    from nerfkit.render.contraction import uncontract

    shape = m.grid_shape
    ax = [torch.linspace(float(m.lo[k]), float(m.hi[k]), shape[k]) for k in range(3)]
    v = torch.stack(torch.meshgrid(*ax, indexing="ij"), -1)
    r = float(m.inner_radius)
    world = uncontract(v.clamp(m.lo + 1e-4, m.hi - 1e-4), m.inner_center, r, m.config.bg_len)
    dist = (world - m.inner_center).norm(dim=-1)
    solid = (dist < 0.3) | (dist > 20 * r)
    g = torch.Generator().manual_seed(3)
    raw = torch.where(solid, torch.randn(shape, generator=g) + 12, torch.full(shape, -100.0))
    with torch.no_grad():
        m.density.copy_(raw[..., None])
        m.features.copy_(torch.randn(m.features.shape, generator=g))


@needs_kernel
def test_contracted_fused_render_matches_the_reference_path():
    m = _unbounded_method()
    _far_shell_and_ball(m)
    m.update_occupancy(m.config.occ_threshold)
    m.eval()
    c2w = torch.tensor(m.meta.train_c2w[0])
    g = torch.Generator().manual_seed(1)
    d = torch.nn.functional.normalize(-c2w[:3, 2] + 0.6 * torch.randn(300, 3, generator=g), dim=-1)
    o = c2w[:3, 3].expand(300, 3).contiguous()
    rays = Rays(o, d, torch.full((300,), 0.05), torch.full((300,), 4.0))
    with torch.no_grad():
        fused = m(rays)
        m.config.kernel = "torch"
        ref = m(rays)
    # rays end on the ball or on the far wall, way beyond `far` (which the march ignores)
    assert float(ref.acc.median()) > 0.8
    assert float(ref.depth.max()) > 10 * float(m.inner_radius)
    torch.testing.assert_close(fused.rgb, ref.rgb, atol=3e-4, rtol=0)
    torch.testing.assert_close(fused.acc, ref.acc, atol=3e-4, rtol=0)
    torch.testing.assert_close(fused.depth, ref.depth, rtol=2e-3, atol=1e-3)


def test_contracted_training_composites_onto_a_random_background():
    m = _unbounded_method(far_wall_init=False)  # nearly empty: the background shows
    rays = _camera_rays(64)
    m.train()
    a, b = m(rays), m(rays)
    assert float((a.rgb - b.rgb).abs().max()) > 0.1  # nearly empty space: the background shows
    m.eval()
    with torch.no_grad():
        out = m(rays)
    assert float((out.rgb - 1.0).abs().max()) < 0.05  # evaluation: the scene's background
    loss = m.loss(a, torch.rand(64, 3))
    assert "entropy" not in loss and "distortion" in loss


@pytest.mark.parametrize("kernel", ["auto", "torch"])
def test_contracted_scenes_start_with_an_opaque_backdrop_at_infinity(kernel):
    rays = _camera_rays(100)
    with_wall = _unbounded_method(kernel=kernel)
    with_wall.eval()
    with torch.no_grad():
        out = with_wall(rays)
    # every ray ends on the far wall, beyond 10 inner radii; nothing in front of it yet
    assert float(out.acc.min()) > 0.99
    assert float(out.depth.min()) > 10 * float(with_wall.inner_radius)
    without = _unbounded_method(kernel=kernel, far_wall_init=False)
    without.eval()
    with torch.no_grad():
        assert float(without(rays).acc.max()) < 0.5


def test_total_variation_against_a_loop_over_the_sampled_voxels():
    m = _small_method()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        m.density.copy_(torch.randn(m.density.shape, generator=g))
        m.features.copy_(torch.randn(m.features.shape, generator=g))
    x, y, z = m.grid_shape
    torch.manual_seed(11)
    tv_d, tv_f = m.total_variation(50)
    torch.manual_seed(11)  # the same voxels, drawn as total_variation draws them
    i = torch.randint(0, x - 1, (50,))
    j = torch.randint(0, y - 1, (50,))
    k = torch.randint(0, z - 1, (50,))
    ref_d = ref_f = 0.0
    for a, b, c in zip(i.tolist(), j.tolist(), k.tolist()):
        for grid, acc in ((m.density, "d"), (m.features, "f")):
            v = grid[a, b, c]
            diff = (
                (grid[a + 1, b, c] - v) ** 2
                + (grid[a, b + 1, c] - v) ** 2
                + (grid[a, b, c + 1] - v) ** 2
            ).mean()
            if acc == "d":
                ref_d += float(diff) / 50
            else:
                ref_f += float(diff) / 50
    assert float(tv_d) == pytest.approx(ref_d, rel=1e-5)
    assert float(tv_f) == pytest.approx(ref_f, rel=1e-5)
    # a linear field has the same squared differences everywhere: the estimate is exact
    ax = [torch.arange(s, dtype=torch.float32) for s in (x, y, z)]
    gx, gy, gz = torch.meshgrid(*ax, indexing="ij")
    with torch.no_grad():
        m.density.copy_((0.3 * gx - 0.2 * gy + 0.5 * gz)[..., None])
    assert float(m.total_variation(20)[0]) == pytest.approx(0.09 + 0.04 + 0.25, rel=1e-5)
