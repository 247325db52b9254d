"""The procedural scene: files in Blender format, exact depth, view-dependent shading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nerfkit.data.blender import load_blender
from nerfkit.data.io import read_image
from nerfkit.data.synthetic import (
    AABB,
    CAMERA_ANGLE_X,
    LIGHT_DIR,
    MARKER,
    PLATFORM,
    RED_SPHERE,
    camera_poses,
    generate_scene,
    render_ground_truth,
)
from nerfkit.errors import DataError
from nerfkit.poses import look_at

RES = 32
COUNTS = {"train": 3, "val": 2, "test": 2}


def _f64(v) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def _centre_pixel(eye, target, size: int = 33, focal: float = 40.0):
    """Render a small odd-sized view looking at `target`; its centre pixel's ray hits it."""
    c2w = look_at(_f64(eye), _f64(target), _f64([0.0, 0.0, 1.0]))
    rgba, depth = render_ground_truth(c2w, size, size, focal)
    return rgba[size // 2, size // 2], float(depth[size // 2, size // 2])


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "scene"
    return generate_scene(out, resolution=RES, n_train=3, n_val=2, n_test=2, seed=0, supersample=1)


def test_loads_with_blender_loader(scene_dir):
    scene = load_blender(scene_dir)
    for name, n in COUNTS.items():
        sp = scene.split(name)
        assert sp.images.shape == (n, RES, RES, 3)
        assert sp.depths is not None and sp.depths.shape == (n, RES, RES)
        assert sp.names == [f"r_{i}" for i in range(n)]
        assert sp.cameras.width == sp.cameras.height == RES
    assert (scene.meta.near, scene.meta.far) == (2.0, 6.0)
    assert scene.meta.aabb == AABB
    meta = json.loads((scene_dir / "transforms_train.json").read_text())
    assert meta["frames"][0]["file_path"] == "./train/r_0"
    assert meta["frames"][0]["depth_file_path"] == "train/r_0_depth.npy"
    assert np.load(scene_dir / "train/r_0_depth.npy").dtype == np.float32


def test_background_composites_to_white(scene_dir):
    scene = load_blender(scene_dir)
    for i in range(COUNTS["train"]):
        alpha = read_image(scene_dir / f"train/r_{i}.png")[..., 3]
        img = scene.split("train").images[i].numpy()
        assert np.all(img[alpha == 0] == 1.0)
        assert np.all(img[0, :] == 1.0) and np.all(img[-1, :] == 1.0)  # framed: white borders
        fg = (alpha > 0).mean()
        assert 0.15 < fg < 0.8
        # colourful: some strongly saturated foreground pixels
        sat = img.max(-1) - img.min(-1)
        assert (sat[alpha > 0] > 0.4).mean() > 0.1


def test_depth_finite_exactly_where_alpha(scene_dir):
    scene = load_blender(scene_dir)
    for name, n in COUNTS.items():
        sp = scene.split(name)
        for i in range(n):
            alpha = read_image(scene_dir / f"{name}/r_{i}.png")[..., 3]
            depth = sp.depths[i].numpy()
            assert np.array_equal(np.isfinite(depth), alpha > 0)
            assert np.all(np.isinf(depth[alpha == 0]))
            assert depth[alpha > 0].min() > 2.0 and depth[alpha > 0].max() < 6.0


def test_surface_points_inside_aabb(scene_dir):
    sp = load_blender(scene_dir).split("train")
    for k in range(len(sp)):
        rays = sp.cameras.image_rays(k, 2.0, 6.0)
        t = sp.depths[k].reshape(-1)
        ok = torch.isfinite(t)
        pts = rays.origins[ok] + t[ok, None] * rays.directions[ok]
        assert pts.abs().max() < 1.3  # comfortably inside [-1.5, 1.5]^3


def test_cameras_look_at_origin(scene_dir):
    scene = load_blender(scene_dir)
    train_eyes = scene.split("train").cameras.c2w[:, :3, 3]
    for name in COUNTS:
        cams = scene.split(name).cameras
        k = torch.arange(len(cams))
        rays = cams.rays(k, cams.cx, cams.cy, 2.0, 6.0)  # through the principal point
        miss = torch.linalg.cross(rays.origins, rays.directions).norm(dim=-1)
        assert miss.max() < 1e-5
        eyes = cams.c2w[:, :3, 3]
        assert torch.allclose(eyes.norm(dim=-1), torch.tensor(4.0), atol=1e-5)
        assert (eyes[:, 2] > 0.5).all()  # upper hemisphere, world +z up
        if name != "train":  # novel views
            assert torch.cdist(eyes, train_eyes).min() > 0.1


def test_depth_matches_analytic_sphere():
    c = np.array(RED_SPHERE.centre)
    u = np.array([-1.0, -1.0, 1.0]) / math.sqrt(3.0)  # from the open side, above the platform
    rgba, depth = _centre_pixel(c + 3.0 * u, c)
    assert depth == pytest.approx(3.0 - RED_SPHERE.radius, abs=1e-5)
    assert rgba[3] == 1.0
    assert rgba[0] > 0.5 and rgba[0] > 2 * rgba[2]  # red


def test_depth_matches_analytic_platform():
    target = np.array([-0.7, 0.6, PLATFORM.z_top])  # a bare spot of the checkerboard
    _, depth = _centre_pixel(target + np.array([0.0, 0.0, 3.5]), target)
    assert depth == pytest.approx(3.5, abs=1e-5)


def test_specular_is_view_dependent():
    light = np.array(LIGHT_DIR) / np.linalg.norm(LIGHT_DIR)
    n = light + np.array([0.0, 0.0, 1.0])
    n /= np.linalg.norm(n)
    p = np.array(RED_SPHERE.centre) + RED_SPHERE.radius * n
    mirror = 2 * (n @ light) * n - light  # half vector = normal: the highlight's peak
    rgba1, d1 = _centre_pixel(p + 2.0 * mirror, p)
    rgba2, d2 = _centre_pixel(p + 2.0 * light, p)
    assert d1 == pytest.approx(2.0, abs=1e-5) and d2 == pytest.approx(2.0, abs=1e-5)  # same point
    assert rgba1[3] == rgba2[3] == 1.0
    assert (rgba1[:3] - rgba2[:3]).abs().max() > 0.3
    assert rgba1[1] > rgba2[1] + 0.3  # the highlight whitens the red


def test_supersampling_antialiases_edges():
    c2w = camera_poses(1, 0, 0)["train"][0]
    focal = 0.5 * RES / math.tan(0.5 * CAMERA_ANGLE_X)
    rgba1, depth1 = render_ground_truth(c2w, RES, RES, focal, supersample=1)
    rgba3, depth3 = render_ground_truth(c2w, RES, RES, focal, supersample=3)
    assert set(np.unique(rgba1[..., 3].numpy())) == {0.0, 1.0}
    a = rgba3[..., 3]
    assert ((a > 0) & (a < 1)).any()
    assert torch.equal(depth1, depth3)  # depth is always at the pixel centre
    assert (rgba3[..., :3] - rgba1[..., :3])[a == 1].abs().median() < 0.02


def test_second_call_is_a_no_op(scene_dir):
    files = sorted(p for p in scene_dir.rglob("*") if p.is_file())
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    assert (
        generate_scene(
            scene_dir, resolution=RES, n_train=3, n_val=2, n_test=2, seed=0, supersample=1
        )
        == scene_dir
    )
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    assert before == after
    assert sorted(p for p in scene_dir.rglob("*") if p.is_file()) == files
    assert [p.name for p in scene_dir.parent.iterdir()] == ["scene"]  # no temp folders left


def test_other_params_regenerate_and_seed_is_deterministic(tmp_path):
    out = tmp_path / "s"
    generate_scene(out, resolution=16, n_train=2, n_val=1, n_test=0, seed=1, supersample=1)
    first = (out / "train/r_0.png").read_bytes()
    assert not (out / "transforms_test.json").exists()
    generate_scene(out, resolution=16, n_train=2, n_val=1, n_test=1, seed=1, supersample=1)
    assert (out / "transforms_test.json").exists()
    assert json.loads((out / MARKER).read_text())["params"]["n_test"] == 1
    assert (out / "train/r_0.png").read_bytes() == first  # same seed, same views
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    a, b = camera_poses(4, 2, 2, seed=0), camera_poses(4, 2, 2, seed=1)
    assert not torch.allclose(a["train"], b["train"])
    assert torch.equal(a["test"], b["test"]) and torch.equal(a["val"], b["val"])


def test_refuses_foreign_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        generate_scene(out, resolution=8, n_train=1, n_val=0, n_test=0)
    assert (out / "notes.txt").read_text() == "keep me"
    with pytest.raises(DataError, match="n_train"):
        generate_scene(tmp_path / "x", resolution=8, n_train=0)
