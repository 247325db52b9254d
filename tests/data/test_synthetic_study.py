"""The ablation study scene: its materials against closed forms (mirror reflection, Snell's law at
a glass sphere's entry and exit, total internal reflection, Fresnel at normal incidence) and the
scene folder (Blender layout, masks that agree with the images, caching)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfkit.data import load_scene
from nerfkit.data.synthetic import Sphere
from nerfkit.data.synthetic_study import (
    CLASSES,
    GLASS,
    MIRROR,
    OFFSET,
    REGIONS,
    STUDY_OBJECTS,
    StudyObject,
    env_radiance,
    generate_study_scene,
    radiance,
    reflect,
    refract,
    region_masks,
    scatter,
    schlick,
)

UNIT = Sphere((0.0, 0.0, 0.0), 1.0, (1.0, 1.0, 1.0))
IOR = GLASS.ior


def _ray(o, d):
    o = torch.tensor([o], dtype=torch.float64)
    d = torch.tensor([d], dtype=torch.float64)
    return o, d / d.norm(dim=-1, keepdim=True)


def test_mirror_sphere_reflects_the_known_direction() -> None:
    scene = (StudyObject(UNIT, MIRROR),)
    o, d = _ray((0.6, 0.0, 5.0), (0.0, 0.0, -1.0))  # hits (0.6, 0, 0.8), normal (0.6, 0, 0.8)
    s = scatter(o, d, scene)
    assert s.t.item() == pytest.approx(4.2)
    assert s.parent.tolist() == [0]
    r = torch.tensor([[0.96, 0.0, 0.28]], dtype=torch.float64)  # d - 2 (d.n) n by hand
    torch.testing.assert_close(s.directions, r)
    hit = torch.tensor([[0.6, 0.0, 0.8]], dtype=torch.float64)
    torch.testing.assert_close(s.origins, hit * (1 + OFFSET))  # just off the surface
    tint = torch.tensor([MIRROR.tint], dtype=torch.float64)
    torch.testing.assert_close(s.weights, tint)
    assert s.direct.abs().max() == 0
    rgb, t, idx = radiance(o, d, scene)  # the reflected ray leaves: tint x environment along r
    torch.testing.assert_close(rgb, tint * env_radiance(r))
    assert idx.tolist() == [0]
    # a ray that misses is transparent (black, index -1), not the environment
    rgb, t, idx = radiance(*_ray((3.0, 0.0, 5.0), (0.0, 0.0, -1.0)), scene)
    assert idx.tolist() == [-1] and math.isinf(t.item()) and rgb.abs().max() == 0


def test_reflect_keeps_the_angle() -> None:
    g = torch.Generator().manual_seed(0)
    n = torch.nn.functional.normalize(torch.randn(50, 3, generator=g, dtype=torch.float64), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(50, 3, generator=g, dtype=torch.float64), dim=-1)
    r = reflect(d, n)
    torch.testing.assert_close((r * n).sum(-1), -(d * n).sum(-1))
    torch.testing.assert_close(r.norm(dim=-1), torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close(torch.cross(r, n, dim=-1), torch.cross(d, n, dim=-1))


def _sin_angle(a, n):
    return torch.cross(a, n, dim=-1).norm(dim=-1)


def test_glass_ray_through_the_centre_is_undeviated() -> None:
    scene = (StudyObject(UNIT, GLASS),)
    o, d = _ray((0.0, 0.0, 5.0), (0.0, 0.0, -1.0))
    s = scatter(o, d, scene)
    r0 = ((IOR - 1) / (IOR + 1)) ** 2  # 0.04 at normal incidence
    assert s.parent.tolist() == [0, 0]
    torch.testing.assert_close(s.directions[0], -d[0])  # reflected straight back
    torch.testing.assert_close(s.directions[1], d[0])  # refracted: not bent
    torch.testing.assert_close(s.weights[0], torch.full((3,), r0, dtype=torch.float64))
    tint = torch.tensor(GLASS.tint, dtype=torch.float64)
    torch.testing.assert_close(s.weights[1], (1 - r0) * tint)
    inside = scatter(s.origins[1:], s.directions[1:], scene)  # leaves at (0, 0, -1)
    assert inside.t.item() == pytest.approx(2.0, abs=1e-3)
    torch.testing.assert_close(inside.directions[1], d[0])
    torch.testing.assert_close(inside.weights[1], torch.full((3,), 1 - r0, dtype=torch.float64))


def test_glass_sphere_bends_an_off_axis_ray_by_snells_law() -> None:
    scene = (StudyObject(UNIT, GLASS),)
    b = 0.5  # impact parameter
    o, d = _ray((b, 0.0, 5.0), (0.0, 0.0, -1.0))
    s = scatter(o, d, scene)
    p1, t1 = s.origins[1:], s.directions[1:]
    n1 = p1 / p1.norm()  # outward normal at the entry point
    # Snell at entry: sin(theta_i) = n sin(theta_t), the refracted ray in the plane of incidence
    assert _sin_angle(d, n1).item() == pytest.approx(IOR * _sin_angle(t1, n1).item(), rel=1e-6)
    assert torch.det(torch.cat([d, n1, t1])).abs().item() < 1e-9
    assert (t1 * n1).sum().item() < 0  # into the sphere
    inside = scatter(p1, t1, scene)
    p2, t2 = inside.origins[1:], inside.directions[1:]
    n2 = p2 / p2.norm()
    assert IOR * _sin_angle(t1, n2).item() == pytest.approx(_sin_angle(t2, n2).item(), rel=1e-6)
    # closed form: deviation 2 (theta_i - theta_t) towards the axis, in the xz plane
    ti, tt = math.asin(b), math.asin(b / IOR)
    dev = 2 * (ti - tt)
    exit_dir = torch.tensor([[-math.sin(dev), 0.0, -math.cos(dev)]], dtype=torch.float64)
    # (the secondary rays start OFFSET off the surface, which moves the exit by ~OFFSET)
    torch.testing.assert_close(t2, exit_dir, atol=1e-4, rtol=0)
    assert (t2 - exit_dir).norm() < 0.01 * dev  # far finer than the bend itself
    # Fresnel weights: what is reflected and what is transmitted add up to the incoming ray
    ws = inside.weights.sum(0)
    torch.testing.assert_close(ws, torch.ones(3, dtype=torch.float64))


def test_total_internal_reflection_inside_glass() -> None:
    scene = (StudyObject(UNIT, GLASS),)
    # from inside, hitting (0.6, 0.8, 0) at cos_i = 0.6 (53 deg > critical asin(1/1.5) = 41.8 deg)
    o, d = _ray((0.0, 0.8, 0.0), (1.0, 0.0, 0.0))
    s = scatter(o, d, scene)
    assert s.parent.tolist() == [0]  # no transmitted ray
    torch.testing.assert_close(
        s.directions, torch.tensor([[0.28, -0.96, 0.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(s.weights, torch.ones(1, 3, dtype=torch.float64))
    # below the critical angle (cos_i = 0.8, 37 deg) both rays leave
    o, d = _ray((0.0, 0.6, 0.0), (1.0, 0.0, 0.0))
    assert scatter(o, d, scene).parent.tolist() == [0, 0]
    _, tir = refract(d, -torch.tensor([[0.8, 0.6, 0.0]], dtype=torch.float64), IOR)
    assert not bool(tir)


def test_schlick_reflectance() -> None:
    c = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)
    r = schlick(c, 1 / IOR)
    assert r[0].item() == pytest.approx(0.04) and r[1].item() == pytest.approx(1.0)
    assert r[2].item() == pytest.approx(0.04 + 0.96 * 0.5**5)
    inside = schlick(torch.tensor([1.0, 0.6], dtype=torch.float64), IOR)
    assert inside[0].item() == pytest.approx(0.04) and inside[1].item() == 1.0  # 0.6: TIR


def test_study_scene_folder_and_masks(tmp_path) -> None:
    out = tmp_path / "study"
    generate_study_scene(out, resolution=24, n_train=2, n_val=0, n_test=2, supersample=2)
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert generate_study_scene(out, resolution=24, n_train=2, n_val=0, n_test=2, supersample=2)
    assert {p: p.stat().st_mtime_ns for p in files} == files  # cached: nothing rewritten
    scene = load_scene(out)
    test = scene.split("test")
    assert test.images.shape == (2, 24, 24, 3) and test.depths is not None
    with np.load(out / "masks" / "test.npz") as z:
        cov, classes = z["coverage"].astype(int), list(z["classes"])
    assert classes == list(CLASSES) and cov.shape == (2, 24, 24, len(CLASSES))
    assert (np.abs(cov.sum(-1) - 255) <= len(CLASSES)).all()  # fractions of the sub-pixels
    from PIL import Image

    alpha = np.stack([np.asarray(Image.open(out / "test" / f"r_{i}.png"))[..., 3] for i in (0, 1)])
    assert (np.abs(255 - cov[..., 0] - alpha.astype(int)) <= 1).all()  # background = 1 - alpha
    depth = test.depths.numpy()
    centre_bg = np.isinf(depth)
    assert (cov[..., 0][centre_bg] > 0).all()  # a pixel-centre miss is (partly) background
    masks = region_masks(out, "test")
    assert set(masks) == set(REGIONS)
    for name, m in masks.items():
        assert m.shape == (2, 24, 24) and m.any(), name
        assert not (m & (alpha == 0)).any(), name  # a region is never empty background
    half = region_masks(out, "test", factor=2)
    assert half["thin"].shape == (2, 12, 12)
    assert (half["thin"] == masks["thin"].reshape(2, 12, 2, 12, 2).any((2, 4))).all()
    assert region_masks(out, "val") is None  # no val views written


def test_every_study_material_is_in_view() -> None:
    """At the default framing the test ring sees every class of pixel (so each region is
    scored), and colours stay in [0, 1]."""
    from nerfkit.data.synthetic import CAMERA_ANGLE_X, camera_poses
    from nerfkit.data.synthetic_study import render_study_view

    c2w = camera_poses(1, 0, 1)["test"][0]
    res = 32
    rgba, depth, cov = render_study_view(c2w, res, res, 0.5 * res / math.tan(CAMERA_ANGLE_X / 2))
    seen = {CLASSES[c] for c in range(len(CLASSES)) if cov[..., c].sum() > 0}
    assert seen == set(CLASSES)
    assert 0 <= rgba.min() and rgba.max() <= 1 and len(STUDY_OBJECTS) > 10
