"""The procedural dynamic scenes: SDFs against closed forms, exact traced depth, both layouts
loading with times, splits, depths and matching poses, caching."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nerfkit.data import load_scene
from nerfkit.data.synthetic import MARKER, _camera
from nerfkit.data.synthetic_dynamic import (
    BALL_RADIUS,
    MOUTH_INSIDE,
    MOUTH_MAX_ANGLE,
    MOUTH_RADIUS,
    RING_MAJOR,
    RING_MINOR,
    RINGS,
    SPLIT_AMPLITUDE,
    SPLIT_BLEND,
    SPLIT_RADIUS,
    ball_centre,
    event_interval,
    generate_dynamic_scene,
    mouth_angle,
    render_dynamic_view,
    scene_albedo,
    scene_sdf,
    static_points,
    torus_sdf,
    trace_sdf,
)
from nerfkit.errors import DataError
from nerfkit.poses import look_at

SIZE = (16, 12)


def _p(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def _x_axis(n: int = 601) -> torch.Tensor:
    x = torch.linspace(-1.5, 1.5, n, dtype=torch.float64)
    return torch.stack([x, 0 * x, 0 * x], -1)


def _components_along_x(scene: str, t: float) -> int:
    """Number of runs of inside points (sdf < 0) along the x axis."""
    inside = (scene_sdf(scene, _x_axis(), t) < 0).int()
    return int(inside[0]) + int((inside[1:] - inside[:-1] == 1).sum())


def test_torus_and_ring_sdf_closed_forms():
    d = torus_sdf(_p([0, 0, 0], [0, RING_MAJOR, 0], [0.5, 0, RING_MAJOR], [0, 0, 2]), 0.6, 0.12)
    want = [0.6 - 0.12, -0.12, 0.5 - 0.12, 2 - 0.6 - 0.12]
    np.testing.assert_allclose(d.numpy(), want, atol=1e-12)
    t = 0.2
    c = torch.tensor(ball_centre(t), dtype=torch.float64)
    np.testing.assert_allclose(scene_sdf("ring", c[None], t).numpy(), [-BALL_RADIUS])
    assert ball_centre(0.0)[0] < 0 < ball_centre(1.0)[0]
    assert _components_along_x("ring", 0.0) == 1  # the axis passes through the ring's hole


@pytest.mark.parametrize("scene", ["ring", "wide_ring"])
def test_ring_scenes_clearance_is_the_closest_approach(scene):
    """The ball passes through the hole, closest to the tube (by `clearance`) at t = 0.5: the
    smallest ring SDF over the ball's surface, from a dense sphere of directions."""
    g = RINGS[scene]
    v = torch.randn(20000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    v = g.ball_radius * v / v.norm(dim=-1, keepdim=True)
    gaps = []
    for t in np.linspace(0.0, 1.0, 41):
        on_ball = torch.tensor(ball_centre(float(t)), dtype=torch.float64) + v
        gaps.append(float(torus_sdf(on_ball, g.major, g.minor).min()))
    assert min(gaps) == pytest.approx(g.clearance, abs=2e-3)
    c = torch.tensor(ball_centre(0.1), dtype=torch.float64)
    on_tube = _p([g.minor, 0, g.major], [0, -g.major - g.minor, 0])
    d = scene_sdf(scene, torch.cat([c[None], on_tube]), 0.1).numpy()
    np.testing.assert_allclose(d, [-g.ball_radius, 0, 0], atol=1e-12)
    assert int(np.argmin(gaps)) == 20  # t = 0.5
    assert _components_along_x(scene, 0.0) == 1  # the axis passes through the hole
    assert 0 < event_interval(scene)[0] < 0.5
    assert RINGS["wide_ring"].clearance > 2 * RINGS["ring"].clearance
    pts = torch.tensor(static_points(scene), dtype=torch.float64)
    assert float(torus_sdf(pts, g.major, g.minor).abs().max()) < 1e-9


def test_split_is_one_sphere_at_t0_and_two_blobs_in_the_middle():
    p = torch.randn(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r0 = SPLIT_RADIUS + SPLIT_BLEND / 4  # smooth min of two equal distances: d - k / 4
    np.testing.assert_allclose(scene_sdf("split", p, 0.0).numpy(), (p.norm(dim=-1) - r0).numpy())
    gap = SPLIT_AMPLITUDE - r0  # the origin lies midway between the blobs at t = 0.5
    assert float(scene_sdf("split", _p([0, 0, 0]), 0.5)) == pytest.approx(gap)
    assert _components_along_x("split", 0.0) == 1
    assert _components_along_x("split", 0.5) == 2
    t0, t1 = event_interval("split")
    assert 0.2 < t0 < 1 / 3 and t1 == pytest.approx(1 - t0)  # apart in the middle third
    assert _components_along_x("split", t0 - 0.01) == 1
    assert _components_along_x("split", t0 + 0.01) == 2
    assert _components_along_x("split", t1 + 0.01) == 1


def test_mouth_closed_at_t0_and_open_at_the_analytic_angle():
    inside_cut = _p([0.3, 0, 0], [0.3, 0, 0.01], [0.3, 0, -0.01])
    d0 = scene_sdf("mouth", inside_cut, 0.0).numpy()
    assert d0[0] == 0.0 and d0[1] < 0 and d0[2] < 0  # a cut of zero thickness in a ball
    np.testing.assert_allclose(
        scene_sdf("mouth", _p([0, 0, 0.7], [-0.1, 0.2, -0.9]), 0.0).numpy(),
        [0.7 - MOUTH_RADIUS, math.sqrt(0.86) - MOUTH_RADIUS],
    )
    t0, t1 = event_interval("mouth")
    assert mouth_angle(t0) == 0.0 == mouth_angle(1.0) and mouth_angle(t0 + 0.02) > 0
    half = 0.5 * mouth_angle(0.5)
    assert 2 * half == pytest.approx(MOUTH_MAX_ANGLE)
    # the point on the bisector at 0.8 from the hinge is now outside, 0.8 sin(half) from both
    # faces; the faces themselves lie at +-half about the hinge
    assert float(scene_sdf("mouth", _p([0.3, 0, 0]), 0.5)) == pytest.approx(0.8 * math.sin(half))
    rho = torch.linspace(0.1, 0.9, 9, dtype=torch.float64)[:, None]
    for phi, on in ((half, True), (-half, True), (0.5 * half, False), (1.5 * half, False)):
        pts = _p([-MOUTH_RADIUS, 0, 0]) + rho * _p([math.cos(phi), 0, math.sin(phi)])
        d = scene_sdf("mouth", pts, 0.5).abs()
        assert bool((d < 1e-12).all()) == on
    # the inner faces are dark red, the outside is not
    face = _p([-MOUTH_RADIUS, 0, 0]) + 0.5 * _p([math.cos(half), 0, math.sin(half)])
    colour = scene_albedo("mouth", face, 0.5)[0]
    lo, hi = torch.tensor(MOUTH_INSIDE, dtype=torch.float64)
    assert bool(((colour >= lo - 1e-9) & (colour <= hi + 1e-9)).all())


def test_textures_move_with_their_part():
    v = _p([0.1, 0.5, 0.8], [-0.2, -0.6, 0.4])
    v = BALL_RADIUS * v / v.norm(dim=-1, keepdim=True)  # points on the ball's surface
    c0, c1 = (torch.tensor(ball_centre(t), dtype=torch.float64) for t in (0.05, 0.95))
    a0, a1 = scene_albedo("ring", c0 + v, 0.05), scene_albedo("ring", c1 + v, 0.95)
    torch.testing.assert_close(a0, a1)
    assert not torch.allclose(a0[0], a0[1])  # a texture, not one colour


def _torus_hit(o: np.ndarray, d: np.ndarray) -> float:
    """Smallest positive root of the torus (about x) quartic along o + t d, inf if none."""
    from numpy.polynomial import polynomial as P

    lines = [np.array([o[i], d[i]]) for i in range(3)]  # coefficient arrays in t
    sq = P.polyadd(P.polyadd(P.polymul(lines[0], lines[0]), P.polymul(lines[1], lines[1])),
                   P.polymul(lines[2], lines[2]))  # fmt: skip
    s = P.polyadd(sq, [RING_MAJOR**2 - RING_MINOR**2])
    rho2 = P.polyadd(P.polymul(lines[1], lines[1]), P.polymul(lines[2], lines[2]))
    roots = P.polyroots(P.polysub(P.polymul(s, s), 4 * RING_MAJOR**2 * rho2))
    real = roots.real[(abs(roots.imag) < 1e-7) & (roots.real > 0)]
    return float(real.min()) if len(real) else math.inf


def _sphere_hit(o: np.ndarray, d: np.ndarray, c, r: float) -> float:
    oc = o - np.asarray(c)
    b = oc @ d
    disc = b * b - (oc @ oc - r * r)
    return -b - math.sqrt(disc) if disc >= 0 and -b - math.sqrt(disc) > 0 else math.inf


@pytest.mark.parametrize("t", [0.3, 0.5])
def test_traced_depth_matches_analytic_ring_and_ball(t):
    c2w = look_at(_p([2.5, 2.0, 2.2])[0], _p([0.2, 0, 0])[0], _p([0, 0, 1])[0])
    rgba, depth = render_dynamic_view("ring", t, c2w, 33, 25, 70.0, supersample=1)
    rays = _camera(c2w, 33, 25, 70.0).image_rays(0, 2.0, 6.0)
    o, d = rays.origins.numpy(), rays.directions.numpy()
    want = np.array(
        [
            min(_torus_hit(o[i], d[i]), _sphere_hit(o[i], d[i], ball_centre(t), BALL_RADIUS))
            for i in range(len(o))
        ]
    )
    got = depth.reshape(-1).double().numpy()
    assert np.isfinite(want).sum() > 100  # the view sees both
    assert (np.isfinite(got) != np.isfinite(want)).sum() <= 2  # at most grazing silhouettes
    both = np.isfinite(got) & np.isfinite(want)
    assert np.abs(got[both] - want[both]).max() < 1e-5  # float32 depth maps
    alpha = rgba[..., 3].reshape(-1).numpy()
    np.testing.assert_array_equal(alpha > 0, np.isfinite(got))  # one ray per pixel


def test_trace_sdf_hits_a_sphere_exactly_and_misses():
    o = _p([0, 0, 4], [0, 0, 4], [3, 0, 4])
    d = _p([0, 0, -1], [0.6, 0, -0.8], [0, 0, -1])

    def sdf(p):
        return p.norm(dim=-1) - 0.5

    t = trace_sdf(sdf, o, d, 2.0, 6.0)
    assert float(t[0]) == pytest.approx(3.5, abs=1e-9)
    assert math.isinf(float(t[1])) and math.isinf(float(t[2]))  # pass 2.4 and 5 from the centre


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("dyn")
    kw = dict(scene="split", size=SIZE, n_train=4, n_test=2, seed=3, rig="vrig", supersample=1)
    return (
        generate_dynamic_scene(root / "b", layout="blender", **kw),
        generate_dynamic_scene(root / "n", layout="nerfies", **kw),
    )


def _project(cams, k: int, x: torch.Tensor) -> torch.Tensor:
    """Pixel (u, v) of a scene point x [3] in pinhole camera k."""
    m = torch.linalg.inv(cams.c2w[k].double())
    p = m[:3, :3] @ x + m[:3, 3]
    return torch.stack(
        [cams.cx[k] + cams.fx[k] * p[0] / -p[2], cams.cy[k] - cams.fy[k] * p[1] / -p[2]]
    ).double()


def test_both_layouts_load_with_times_splits_and_matching_poses(both_layouts):
    bdir, ndir = both_layouts
    b, n = load_scene(bdir), load_scene(ndir)
    assert (b.meta.format, n.meta.format) == ("blender", "nerfies")
    for s in (b, n):
        assert s.split("train").times.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
        assert s.split("test").times.tolist() == pytest.approx([0, 1])  # vrig: same instants
        assert s.meta.train_times == pytest.approx([0, 1 / 3, 2 / 3, 1])
        assert s.split("train").images.shape == (4, SIZE[1], SIZE[0], 3)
        assert len(s.split("val")) == 2
    assert n.split("train").names == [f"left_{i:06d}" for i in range(4)]
    assert n.split("test").names == ["right_000000", "right_000003"]
    depths = b.split("train").depths
    assert depths is not None and depths.shape == (4, SIZE[1], SIZE[0])
    assert n.split("train").depths is None
    x = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)
    for split in ("train", "test"):
        cb, cn = b.split(split).cameras, n.split(split).cameras
        for k in range(len(cb)):
            torch.testing.assert_close(_project(cb, k, x), _project(cn, k, x), atol=1e-3, rtol=0)
    # the same pixels: the Blender RGBA composited at load, the Nerfies RGB before 8 bits
    diff = (b.split("train").images - n.split("train").images).abs().max()
    assert float(diff) <= 1.5 / 255
    assert not n.meta.unbounded and n.meta.background == [1.0, 1.0, 1.0]
    box = np.asarray(n.meta.aabb)
    assert (box[0] < [-1.2, -0.5, -0.5]).all() and (box[1] > [1.2, 0.5, 0.5]).all()
    for root in both_layouts:
        events = json.loads((root / "events.json").read_text())
        assert events["scene"] == "split"
        assert events["event"] == pytest.approx(list(event_interval("split")))


def test_depth_is_where_the_blobs_are(both_layouts):
    scene = load_scene(both_layouts[0])
    sp = scene.split("train")
    for k in range(len(sp)):
        rays = sp.cameras.image_rays(k, 2.0, 6.0)
        d = sp.depths[k].reshape(-1)
        hit = torch.isfinite(d)
        assert hit.any() and not hit.all()
        p = rays.origins[hit].double() + d[hit, None].double() * rays.directions[hit].double()
        sdf = scene_sdf("split", p, float(sp.times[k]))
        assert float(sdf.abs().max()) < 1e-5  # float32 depth on the surface
        rgb = sp.images[k].reshape(-1, 3)
        assert bool((rgb[~hit] == 1.0).all())  # white background off the object


def test_ring_points_are_static_surface_points(tmp_path):
    root = generate_dynamic_scene(
        tmp_path / "r", scene="ring", layout="nerfies", size=(8, 6), n_train=3, n_test=2,
        rig="interp", supersample=1,
    )  # fmt: skip
    scene = load_scene(root)
    want = torch.tensor(static_points("ring"), dtype=torch.float32)
    torch.testing.assert_close(scene.points, want, atol=1e-5, rtol=0)
    for t in (0.0, 0.5, 1.0):
        assert float(scene_sdf("ring", want.double(), t).abs().max()) < 1e-5
    assert len(static_points("split")) == 0 and len(static_points("mouth")) == 0
    assert scene.split("train").times.tolist() == pytest.approx([0, 0.5, 1])
    assert scene.split("test").times.tolist() == pytest.approx([0.25, 0.75])  # interp


def test_second_call_is_a_no_op_and_other_params_regenerate(both_layouts, tmp_path):
    bdir, _ = both_layouts
    files = sorted(p for p in bdir.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    kw = dict(scene="split", size=SIZE, n_train=4, n_test=2, seed=3, rig="vrig", supersample=1)
    assert generate_dynamic_scene(bdir, layout="blender", **kw) == bdir
    assert {p: p.stat().st_mtime_ns for p in files} == before
    out = tmp_path / "s"
    generate_dynamic_scene(out, scene="mouth", size=(8, 6), n_train=3, n_test=1, supersample=1)
    generate_dynamic_scene(out, scene="mouth", size=(8, 6), n_train=4, n_test=1, supersample=1)
    assert json.loads((out / MARKER).read_text())["params"]["n_train"] == 4
    assert len(load_scene(out).split("train")) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temp folders left
    for bad, match in (
        (dict(scene="blob"), "unknown scene 'blob'"),
        (dict(layout="llff"), "unknown layout"),
        (dict(rig="orbit"), "unknown rig"),
        (dict(n_train=1), "n_train"),
        (dict(n_train=3, n_test=3), "n_test must be <= n_train - 1"),
    ):
        with pytest.raises(DataError, match=match):
            generate_dynamic_scene(tmp_path / "x", size=(8, 6), **bad)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        generate_dynamic_scene(tmp_path / "mine", size=(8, 6), n_train=2, n_test=1)
