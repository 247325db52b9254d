"""`dgrid`: the deformation is the identity at the start, a known deformation moves the canonical
density exactly, gradients reach the deformation through the canonical grids, and the occupancy
mask is the union over time of where the content is."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta
from nerfkit.methods.dgrid import DGridConfig, DynamicGridMethod


def _method(m: int = 2, **kw) -> DynamicGridMethod:
    meta = SceneMeta(near=0.5, far=6.0, background=[1.0, 1.0, 1.0], train_times=[0.0, 0.5, 1.0])
    cfg = DGridConfig(
        num_voxels_final=24**3,
        upsample_steps=(),
        mlp_start=0,
        ambient_dims=m,
        deform_res=8,
        ambient_res=8,
        ambient_w_res=4,
        **{"deform_start": 0, "fit_box_step": -1, **kw},
    )
    torch.manual_seed(0)
    return DynamicGridMethod(cfg, meta)


def _ball(method: DynamicGridMethod, centre: tuple[float, float, float], radius: float) -> None:
    """Canonical density: a ball (raw 5 inside, -100 outside), random features."""
    shape = method.grid_shape
    ax = [torch.linspace(float(method.lo[k]), float(method.hi[k]), shape[k]) for k in range(3)]
    v = torch.stack(torch.meshgrid(*ax, indexing="ij"), -1)
    inside = (v - torch.tensor(centre)).norm(dim=-1) < radius
    with torch.no_grad():
        method.density.copy_(torch.where(inside, 5.0, -100.0)[..., None])
        method.features.copy_(torch.randn(method.features.shape))


def _patch_deform(method: DynamicGridMethod, fn) -> None:  # noqa: ANN001
    """Replace the deformation by fn(pts [P, 3], time [P]) -> (dx, w), at points (`deform`)
    and on lattices (`lattice_deform`)."""

    def lattice(axes: list[torch.Tensor], time: float) -> tuple:
        pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        return fn(pts, torch.full_like(pts[:, 0], time))

    method.deform = fn  # type: ignore[method-assign]
    method.lattice_deform = lattice  # type: ignore[method-assign]


def _rays(n: int = 64, time: float = 0.3) -> Rays:
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(n, 3, generator=g) - 0.5) * 1.5
    o = torch.tensor([0.2, -0.1, 4.0]).expand(n, 3).contiguous()
    d = target - o
    d = d / d.norm(dim=-1, keepdim=True)
    return Rays(o, d, torch.full((n,), 0.5), torch.full((n,), 6.0), time=torch.full((n,), time))


@pytest.mark.parametrize("m", [0, 2])
def test_the_deformation_starts_as_the_identity(m: int) -> None:
    method = _method(m)
    _ball(method, (0.1, 0.0, 0.0), 0.6)
    pts = torch.rand(500, 3) * 3 - 1.5
    for t in (0.0, 0.7):
        dx, w = method.deform(pts, torch.full((500,), t))
        assert float(dx.abs().max()) == 0.0
        assert (w is None) == (m == 0) and (w is None or float(w.abs().max()) == 0.0)
        static = method.sigma_from_raw(method.density_at(method.to_grid(pts)))
        torch.testing.assert_close(method.field_density(pts, torch.full((500,), t)), static)
    method.eval()
    out = method(_rays())
    assert float(out.displacement.abs().max()) == 0.0
    assert (out.ambient is None) == (m == 0)


def test_deformation_levels_fade_in_coarse_to_fine() -> None:
    method = _method(0, deform_levels=3, deform_anneal_steps=200, deform_start=10)
    assert [p.shape[1] for p in (method.space_planes, *method.coarse_space)] == [8, 4, 2]
    want = {10: [0.0, 0.0, 1.0], 60: [0.0, 0.5, 1.0], 110: [0.0, 1.0, 1.0], 160: [0.5, 1.0, 1.0]}
    for step, weights in want.items():
        method.step_callback(step)
        assert method.level_weights() == pytest.approx(weights, abs=1e-6)
    method.step_callback(5000)
    assert method.level_weights() == [1.0, 1.0, 1.0]
    # a level with weight 0 gets no gradient; the head sees all levels' features
    method.step_callback(10)
    with torch.no_grad():
        method.deform_head[-1].weight.normal_()
    pts = torch.rand(300, 3) * 2 - 1
    dx, _ = method.deform(pts, torch.full((300,), 0.3))
    dx.square().sum().backward()
    assert method.space_planes.grad is None or float(method.space_planes.grad.abs().max()) == 0
    assert float(method.coarse_space[1].grad.abs().max()) > 0


def test_the_ambient_dimensions_wait_for_their_delay_then_fade_in() -> None:
    """HyperNeRF's delayed hyper_alpha applied to dgrid's ambient residual: weight 0 before the
    delay (no residual, no gradient to the ambient planes), (1 - cos(pi a)) / 2 during the
    anneal, 1 after; old checkpoints without the buffer load fully on."""
    # all deformation levels on: only the ambient weight changes between the steps below
    method = _method(2, ambient_delay=100, ambient_anneal_steps=200, deform_anneal_steps=0)
    want = {0: 0.0, 99: 0.0, 100: 0.0, 200: 0.5, 250: (1 - math.cos(math.pi * 0.75)) / 2, 300: 1.0}
    for step, weight in want.items():
        method.step_callback(step)
        assert float(method.ambient_weight) == pytest.approx(weight, abs=1e-6)
    _ball(method, (0.0, 0.0, 0.0), 0.6)
    with torch.no_grad():
        method.ambient_out.weight.normal_()
        method.ambient_out.bias.fill_(1.0)
        method.deform_head[-1].weight.normal_()
    pts = torch.rand(300, 3) * 2 - 1
    times = torch.full((300,), 0.4)
    method.step_callback(50)  # before the delay: exactly the deformation-only density
    dx, _ = method.deform(pts, times)
    static = method.sigma_from_raw(method.density_at(method.to_grid(pts + dx)))
    got = method.field_density(pts, times)
    torch.testing.assert_close(got, static)
    got.sum().backward()
    assert method.ambient_planes.grad is None
    method.step_callback(200)  # half way: half the residual
    raw_half = method._deformed_raw(pts, times)[0]
    method.step_callback(400)
    raw_full = method._deformed_raw(pts, times)[0]
    raw_none = method.density_at(method.to_grid(pts + dx))
    torch.testing.assert_close(raw_half - raw_none, (raw_full - raw_none) / 2)
    state = {k: v for k, v in method.state_dict().items() if k != "ambient_weight"}
    fresh = _method(2, ambient_delay=100)
    fresh.load_state_dict(state)
    assert float(fresh.ambient_weight) == 1.0


def test_the_ambient_gain_scales_the_heads_output_inside_tanh() -> None:
    """w = tanh(gain x out): with the same parameters, gain 10's w is tanh(10 atanh(gain 1's))."""
    one, ten = _method(2, ambient_gain=1.0), _method(2, ambient_gain=10.0)
    with torch.no_grad():
        one.deform_head[-1].weight.normal_(std=0.01)
    ten.load_state_dict(one.state_dict())
    pts, times = torch.rand(200, 3) * 2 - 1, torch.rand(200)
    with torch.no_grad():
        (dx1, w1), (dx10, w10) = one.deform(pts, times), ten.deform(pts, times)
    torch.testing.assert_close(dx10, dx1)
    torch.testing.assert_close(w10, torch.tanh(10 * torch.atanh(w1)), atol=1e-5, rtol=1e-4)
    assert float(w10.abs().max()) > 3 * float(w1.abs().max())


def test_the_time_curriculum_ends_by_its_steps_or_share_of_the_run() -> None:
    from nerfkit.methods.dgrid import CURRICULUM_SHARE

    method = _method(0, time_curriculum_steps=100, time_curriculum_start=0.2)
    assert method.max_train_time(0) == pytest.approx(0.2)
    assert method.max_train_time(50) == pytest.approx(0.6)
    assert method.max_train_time(100) is None
    # a short run: the run's progress ends it first
    assert method.max_train_time(10, progress=CURRICULUM_SHARE / 2) == pytest.approx(0.6)
    assert method.max_train_time(10, progress=CURRICULUM_SHARE) is None
    assert _method(0, time_curriculum_steps=0).max_train_time(0) is None


def test_the_box_waits_for_the_time_curriculum_to_end_and_settle() -> None:
    """Until a while after the curriculum the model knows the moving parts only where they
    have been so far: a box fitted to it would cut off where they go later."""
    method = _method(0, fit_box_step=0, time_curriculum_steps=100, box_settle_steps=20)
    _ball(method, (0.1, 0.0, 0.0), 0.5)
    box = (method.lo.clone(), method.hi.clone())
    for step in (0, 1, 50, 99, 100, 119):
        assert (method.max_train_time(step) is None) == (step >= 100)
        method.step_callback(step)
        assert not bool(method.box_fitted)
        assert torch.equal(method.lo, box[0]) and torch.equal(method.hi, box[1])
    method.max_train_time(120)
    method.step_callback(120)
    assert bool(method.box_fitted)
    assert bool(((method.hi - method.lo) < (box[1] - box[0])).all())
    # without a curriculum the box is fitted on schedule
    static = _method(0, fit_box_step=0, time_curriculum_steps=0)
    _ball(static, (0.1, 0.0, 0.0), 0.5)
    static.max_train_time(0)
    static.step_callback(0)
    assert bool(static.box_fitted)


def test_a_resumed_run_keeps_where_its_time_curriculum_ended() -> None:
    """The curriculum's end is in the checkpoint: a run resumed after it fits the box
    `box_settle_steps` after the end, not after the resume; a run saved before it was kept
    finds the end again."""
    kw = dict(fit_box_step=0, time_curriculum_steps=100, box_settle_steps=20)
    method = _method(0, **kw)
    _ball(method, (0.1, 0.0, 0.0), 0.5)
    for step in (0, 100, 110):
        method.max_train_time(step)
        method.step_callback(step)
    assert method.curriculum_end == 100 and not bool(method.box_fitted)
    resumed = _method(0, **kw)
    resumed.load_state_dict(method.state_dict())
    assert resumed.curriculum_end == 100
    resumed.max_train_time(120)
    resumed.step_callback(120)
    assert bool(resumed.box_fitted)
    old = {k: v for k, v in method.state_dict().items() if not k.startswith("curriculum_end")}
    before = _method(0, **kw)
    before.load_state_dict(old)
    assert before.curriculum_end is None
    before.max_train_time(120)
    assert before.curriculum_end == 120


def test_a_short_run_fits_the_box_by_its_share_of_the_run_after_the_curriculum() -> None:
    """A time-budgeted run too short for `box_settle_steps` after its curriculum (a 3-minute
    demo: ~350 steps) still fits the box, `BOX_SETTLE_SHARE` of the run after it."""
    from nerfkit.methods.dgrid import BOX_SETTLE_SHARE, CURRICULUM_SHARE

    method = _method(0, fit_box_step=0, time_curriculum_steps=1000, box_settle_steps=1000)
    _ball(method, (0.1, 0.0, 0.0), 0.5)
    n = 100  # the run's length in steps (progress = step / n)
    fitted_at = None
    for step in range(n):
        method.step_callback(step)
        if fitted_at is None and bool(method.box_fitted):
            fitted_at = step
        method.max_train_time(step, progress=step / n)
    end = round(n * CURRICULUM_SHARE)
    assert method.curriculum_end == end
    assert fitted_at == end + round(n * BOX_SETTLE_SHARE) + 1  # seen the step after


@pytest.mark.parametrize("in_curriculum", [True, False])
def test_the_occupancy_mask_in_the_time_curriculum_is_an_option(in_curriculum: bool) -> None:
    method = _method(
        0, time_curriculum_steps=10, occ_start=0, occ_every=1, mask_in_curriculum=in_curriculum
    )
    _ball(method, (0.1, 0.0, 0.0), 0.5)
    for step in range(12):
        in_it = method.max_train_time(step) is not None
        method.step_callback(step)
        assert method.use_mask == (in_curriculum or not in_it)


def test_a_known_translation_moves_the_canonical_density() -> None:
    method = _method(0)
    _ball(method, (0.0, 0.0, 0.0), 0.6)
    with torch.no_grad():
        method.deform_head[-1].bias.copy_(torch.tensor([0.25, 0.0, 0.0]))
    pts = torch.rand(400, 3) * 2 - 1
    got = method.field_density(pts, torch.full((400,), 0.4))
    want = method.sigma_from_raw(
        method.density_at(method.to_grid(pts + torch.tensor([0.25, 0, 0])))
    )
    torch.testing.assert_close(got, want)
    method.eval()
    out = method(_rays())
    hit = out.acc > 0.5
    assert bool(hit.any())
    torch.testing.assert_close(
        out.displacement[hit], torch.tensor([0.25, 0.0, 0.0]).expand(int(hit.sum()), 3)
    )


def test_no_deformation_before_deform_start() -> None:
    method = _method(0, deform_start=5)
    with torch.no_grad():
        method.deform_head[-1].bias.copy_(torch.tensor([0.25, 0.0, 0.0]))
    pts = torch.rand(10, 3)
    assert float(method.deform(pts, torch.zeros(10))[0].abs().max()) == 0.0
    method.step_callback(5)
    torch.testing.assert_close(
        method.deform(pts, torch.zeros(10))[0][0], torch.tensor([0.25, 0, 0])
    )


def test_background_loss_holds_the_static_points_still() -> None:
    """Nerfies' background loss on dgrid's deformation: zero while the deformation is the
    identity, GM(3 * 0.01^2, 0.001) when every point moves by (0.01, 0.01, 0.01), only the
    points inside the scene box kept, and absent without points or before deform_start."""
    from nerfkit.render import warp as W

    method = _method(2, background_batch=64)
    method.train()
    rays = _rays(32)
    assert "background" not in method.loss(method(rays), torch.zeros(32, 3))
    pts = torch.cat([torch.rand(20, 3) - 0.5, torch.full((5, 3), 50.0)])  # 5 far outside
    method.use_points(pts)
    assert method.points is not None and len(method.points) == 20
    assert method.background_loss() == 0
    with torch.no_grad():
        method.deform_head[-1].bias[:3].fill_(0.01)
    want = W.geman_mcclure(torch.tensor(3e-4), 0.001)
    torch.testing.assert_close(method.background_loss(), want)
    losses = method.loss(method(rays), torch.zeros(32, 3))
    torch.testing.assert_close(losses["background"], want)
    losses["background"].backward()  # the loss pulls the deformation back towards zero
    assert float(method.deform_head[-1].bias.grad[:3].min()) > 0
    late = _method(0, deform_start=5)
    late.use_points(torch.rand(10, 3) - 0.5)
    assert "background" not in late.loss(late(rays), torch.zeros(32, 3))


def test_gradients_reach_the_deformation_and_ambient_planes() -> None:
    method = _method(2)
    _ball(method, (0.0, 0.0, 0.0), 0.6)
    method.train()
    rays = _rays(256)
    out = method(rays)
    losses = method.loss(out, torch.zeros(256, 3))
    losses["loss"].backward()
    # the head's last layer starts at zero: its gradient comes from the canonical grids'
    # spatial gradient (trilinear's gradient with respect to the coordinates)
    assert float(method.deform_head[-1].weight.grad[:3].abs().sum()) > 0
    assert float(method.ambient_out.weight.grad.abs().sum()) > 0
    assert {"plane_tv", "time_smooth"} <= set(losses)


@pytest.mark.parametrize("m", [0, 2])
def test_the_deformation_on_a_lattice_is_the_deformation_at_its_vertices(m: int) -> None:
    """`lattice_deform` (plane lookups along the lattice's lines, outer products) against
    `deform` at every vertex: random planes and head, three levels, the middle one fading in."""
    method = _method(m, deform_levels=3, deform_anneal_steps=100)
    with torch.no_grad():
        for p in method.parameters():
            p.uniform_(-0.5, 0.5)
    method.deform_step.fill_(25)  # a = 1.5: the middle level half on, the finest off
    assert 0 < method.level_weights()[1] < 1 and method.level_weights()[0] == 0
    axes = [
        torch.linspace(-1.2, 1.3, 7),
        torch.linspace(-0.8, 1.5, 5),
        torch.linspace(-1.5, 0.4, 6),
    ]
    pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    for time in (0.0, 0.37, 1.0):
        with torch.no_grad():
            dx, w = method.deform(pts, torch.full_like(pts[:, 0], time))
        dx_l, w_l = method.lattice_deform(axes, time)
        assert float(dx.abs().max()) > 0.1
        torch.testing.assert_close(dx_l, dx, atol=1e-5, rtol=1e-5)
        if m:
            torch.testing.assert_close(w_l, w, atol=1e-5, rtol=1e-5)
        else:
            assert w is None and w_l is None


def test_occupancy_is_the_union_over_time() -> None:
    method = _method(0, occ_max_res=24)
    _ball(method, (0.0, 0.0, 0.0), 0.3)

    def moving(pts: torch.Tensor, time: torch.Tensor) -> tuple[torch.Tensor, None]:
        # observed centre at x = -0.8 at t = 0 and +0.8 at t = 1 (canonical: the origin)
        shift = torch.stack([1.6 * time - 0.8, 0 * time, 0 * time], -1)
        return -shift, None

    _patch_deform(method, moving)
    method.occ_times = torch.tensor([0.0, 1.0])
    method.update_occupancy(1e-3)
    occ = method.occupancy
    shape = torch.tensor(occ.shape) - 1

    def at(x: float) -> bool:
        p = torch.tensor([x, 0.0, 0.0])
        lo, hi = method.march_box()
        v = ((p - lo) / (hi - lo) * shape).round().long()
        return bool(occ[v[0], v[1], v[2]])

    assert at(-0.8) and at(0.8)
    assert not at(0.0)  # no training time puts the ball there
    assert method.use_mask


def test_time_bins_are_bracketed_by_the_evaluated_times() -> None:
    from nerfkit.methods.dgrid import time_bin_members

    times = [0.0, 0.3, 0.5, 1.0]
    assert time_bin_members(times, 1) == [[0, 1, 2, 3]]
    # [0, .25]: 0 and 0.3 after it; [.25, .5]: 0, 0.3, 0.5; [.5, .75]: 0.5 .. 1; [.75, 1]: 0.5, 1
    assert time_bin_members(times, 4) == [[0, 1], [0, 1, 2], [2, 3], [2, 3]]
    assert time_bin_members([0.5], 3) == [[0], [0], [0]]


def _moving_ball(method: DynamicGridMethod) -> None:
    """Canonical ball at the origin, observed at x = 1.6 t - 0.8, evaluated at t = 0, 0.5, 1."""
    _ball(method, (0.0, 0.0, 0.0), 0.3)
    with torch.no_grad():  # opaque
        method.density.copy_(torch.where(method.density > 0, 40.0, method.density))

    def moving(pts: torch.Tensor, time: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -torch.stack([1.6 * time - 0.8, 0 * time, 0 * time], -1), None

    _patch_deform(method, moving)
    method.occ_times = torch.tensor([0.0, 0.5, 1.0])


def test_the_occupancy_of_a_time_bin_holds_only_what_its_times_see() -> None:
    method = _method(0, occ_max_res=24, occ_time_bins=4)
    _moving_ball(method)
    method.update_occupancy(1e-3)
    occ, occ_t = method.occupancy, method.occupancy_t
    assert occ_t.shape == (4, *occ.shape)
    shape = torch.tensor(occ.shape) - 1
    lo, hi = method.march_box()

    def vertex(x: float) -> torch.Tensor:
        return ((torch.tensor([x, 0.0, 0.0]) - lo) / (hi - lo) * shape).round().long()

    def at(mask: torch.Tensor, x: float) -> bool:
        v = vertex(x)
        return bool(mask[v[0], v[1], v[2]])

    # bins [0, .25] and [.25, .5] are bracketed by t = 0 and 0.5 (ball at -0.8 and 0), the
    # later two by 0.5 and 1 (0 and +0.8); the union holds all three places
    assert [at(occ_t[b], -0.8) for b in range(4)] == [True, True, False, False]
    assert [at(occ_t[b], 0.0) for b in range(4)] == [True, True, True, True]
    assert [at(occ_t[b], 0.8) for b in range(4)] == [False, False, True, True]
    assert at(occ, -0.8) and at(occ, 0.0) and at(occ, 0.8)
    assert torch.equal(occ, occ_t.any(0))


@pytest.mark.parametrize("time", [0.0, 0.2, 0.4, 0.7, 1.0])
def test_time_bins_drop_samples_but_not_what_the_render_sees(time: float) -> None:
    """Rays along x through all the ball's places: with time bins, fewer samples (not those
    where the ball is at other times) and the same colour, opacity and depth as with the union."""
    renders = {}
    for bins in (1, 4):
        method = _method(0, occ_max_res=24, occ_time_bins=bins)
        _moving_ball(method)
        method.update_occupancy(1e-3)
        method.eval()
        n = 48
        g = torch.Generator().manual_seed(2)
        o = torch.tensor([-3.0, 0.0, 0.0]) + torch.cat(
            [torch.zeros(n, 1), (torch.rand(n, 2, generator=g) - 0.5) * 0.2], -1
        )
        d = torch.tensor([1.0, 0.0, 0.0]).expand(n, 3)
        rays = Rays(o, d, torch.full((n,), 0.5), torch.full((n,), 6.0), time=torch.full((n,), time))
        with torch.no_grad():
            renders[bins] = method(rays), len(method.sample_rays(rays, perturb=False)["t"])
    (union, n_union), (binned, n_binned) = renders[1], renders[4]
    assert n_binned < 0.8 * n_union
    assert float(binned.acc.min()) > 0.9  # every ray meets the ball
    torch.testing.assert_close(binned.rgb, union.rgb, atol=1e-4, rtol=0)
    torch.testing.assert_close(binned.acc, union.acc, atol=1e-4, rtol=0)
    torch.testing.assert_close(binned.depth, union.depth, atol=1e-4, rtol=0)
    hit = 3.0 + 1.6 * time - 0.8 - (0.3**2 - (o[:, 1:] ** 2).sum(-1)).sqrt()  # first hit
    torch.testing.assert_close(binned.depth, hit, atol=0.15, rtol=0)


def test_the_box_is_fitted_in_canonical_space_and_rays_march_the_scene_box() -> None:
    """Observed at x = 0.8, canonically at the origin (dx = -0.8): `fit_box` fits the grid box
    to the deformed surface points (around the origin), and rays still reach the observed ball,
    which lies outside that box, because they march through the scene box."""
    method = _method(0)
    _ball(method, (0.0, 0.0, 0.0), 0.3)
    with torch.no_grad():  # opaque: every ray through it records a surface point
        method.density.copy_(torch.where(method.density > 0, 40.0, method.density))
        method.deform_head[-1].bias.copy_(torch.tensor([-0.8, 0.0, 0.0]))
    n = 384  # 64 rays from each of 6 sides, at the ball's middle
    g = torch.Generator().manual_seed(1)
    centre = torch.tensor([0.8, 0.0, 0.0])
    target = centre + (torch.rand(n, 3, generator=g) - 0.5) * 0.3
    sides = torch.cat([torch.eye(3), -torch.eye(3)]).repeat_interleave(n // 6, 0)
    o = centre + 3.0 * sides
    d = (target - o) / (target - o).norm(dim=-1, keepdim=True)
    rays = Rays(o, d, torch.full((n,), 0.5), torch.full((n,), 6.0), time=torch.full((n,), 0.5))
    method.train()
    for _ in range(4):
        method(rays)
    assert method.fit_box(1e-3)
    method.resample(method.lo, method.hi, method.grid_shape)
    assert float(method.hi[0]) < 0.6 and float(method.lo[0]) > -0.6  # around the origin
    lo, hi, _ = method.field_box()
    torch.testing.assert_close(lo, method.scene_lo)
    torch.testing.assert_close(hi, method.scene_hi)
    method.eval()
    with torch.no_grad():
        out = method(rays)
    assert float(out.acc.min()) > 0.9
    b = (d * (centre - o)).sum(-1)  # the first hit of the observed sphere along each ray
    hit = b - (b**2 - ((o - centre).norm(dim=-1) ** 2 - 0.3**2)).sqrt()
    torch.testing.assert_close(out.depth, hit, atol=0.2, rtol=0)  # 1.6 voxels of the ball


def test_dgrid_fits_a_moving_scene_that_a_static_grid_cannot(tmp_path) -> None:  # noqa: ANN001
    """At equal steps on the procedural split scene (tiny), dgrid's held-out PSNR is clearly
    above the static grid's: the static model can only average the frames."""
    from nerfkit.config import TrainConfig
    from nerfkit.data import load_scene
    from nerfkit.data.synthetic_dynamic import generate_dynamic_scene
    from nerfkit.methods.grid import GridConfig
    from nerfkit.metrics import image_metrics
    from nerfkit.perf import one_thread
    from nerfkit.train import Trainer

    data = generate_dynamic_scene(
        tmp_path / "split", scene="split", size=(40, 40), n_train=24, n_test=6, supersample=1
    )
    scene = load_scene(data)
    small = dict(num_voxels_final=32**3, upsample_steps=(), fit_box_step=-1, mlp_start=10**6,
                 occ_start=40, occ_every=40)  # fmt: skip
    psnr = {}
    for name, opts in [("grid", GridConfig(**small)),
                       ("dgrid", DGridConfig(**small, deform_start=40, deform_res=16,
                                             ambient_res=16, occ_max_res=24))]:  # fmt: skip
        cfg = TrainConfig(
            data=data, output=tmp_path / name, method=name, max_steps=300, batch_rays=1024,
            val_every=0, ckpt_every=10**6, progress=False, seed=0,
        )  # fmt: skip
        setattr(cfg, name, opts)
        with one_thread():
            trainer = Trainer(cfg, scene)
            trainer.fit()
            test, meta = scene.split("test"), scene.meta
            vals = []
            for k in range(len(test)):
                img = trainer.method.render_image(
                    test.cameras, k, meta.near, meta.far, time=float(test.times[k])
                )
                vals.append(image_metrics(img.rgb, test.images[k])["psnr"])
        psnr[name] = sum(vals) / len(vals)
    assert psnr["dgrid"] > psnr["grid"] + 1.0, psnr
