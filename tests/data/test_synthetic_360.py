"""The procedural unbounded 360° scene: a transforms.json folder, read by the generic loader,
whose cameras (mapped back through the loader's normalisation) reproduce what the tracer saw."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import check_generator_caching, split_views

from nerfkit.data import load_scene
from nerfkit.data.synthetic import render_ground_truth, shade, trace
from nerfkit.data.synthetic_360 import (
    ENV_RADIUS,
    ENVIRONMENT,
    UNBOUNDED_OBJECTS,
    environment_mask,
    generate_unbounded_scene,
    unbounded_camera_poses,
)
from nerfkit.data.synthetic_llff import forward_focal, image_names

W, H, N = 32, 24, 10


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("unbounded") / "scene"
    return generate_unbounded_scene(out, size=(W, H), n_views=N, seed=0, supersample=1)


def _views(scene):
    """(split, index in split, index in the dataset) for every view of the loaded scene."""
    return split_views(scene, image_names(N))


def _file_rays(scene, sp, k):
    """Pixel-centre rays [H W, 3] of loaded view k of split sp, mapped back through
    SceneMeta.data_transform (scene = T @ file) to the file's frame."""
    t = torch.tensor(scene.meta.data_transform, dtype=torch.float64)
    s = float(torch.linalg.det(t[:3, :3]) ** (1 / 3))
    rot, shift = t[:3, :3] / s, t[:3, 3]
    rays = sp.cameras.image_rays(k, 0.0, 1.0)
    return ((rays.origins.double() - shift) @ rot) / s, rays.directions.double() @ rot


def test_files_and_loader(scene_dir):
    depths = np.load(scene_dir / "depths.npy")
    mask = np.load(scene_dir / "env_mask.npy")
    assert depths.shape == (N, H, W) and depths.dtype == np.float32
    assert mask.shape == (N, H, W) and mask.dtype == np.bool_
    assert np.isfinite(depths).all()  # every ray hits: opaque photos
    meta = json.loads((scene_dir / "transforms.json").read_text())
    assert meta["fl_x"] == meta["fl_y"] == pytest.approx(forward_focal(W))
    assert (meta["w"], meta["h"], meta["cx"], meta["cy"]) == (W, H, W / 2, H / 2)
    assert [f["file_path"] for f in meta["frames"]] == [f"images/{n}" for n in image_names(N)]
    np.testing.assert_allclose(
        [f["transform_matrix"] for f in meta["frames"]], unbounded_camera_poses(N, 0).numpy()
    )

    scene = load_scene(scene_dir)
    assert scene.meta.format == "transforms_json"
    assert scene.meta.kind == "object" and not scene.meta.ndc
    tr, te = scene.split("train"), scene.split("test")
    assert te.names == ["image000", "image008"] and len(tr) == N - 2
    assert tr.images.shape == (N - 2, H, W, 3)
    assert (tr.cameras.width, tr.cameras.height) == (W, H)


def test_cameras_walk_around_the_objects():
    c2w = unbounded_camera_poses(16, seed=3).numpy()
    centres = c2w[:, :3, 3]
    r = np.linalg.norm(centres, axis=1)
    assert ((r > 3.2 - 1e-9) & (r < 3.8 + 1e-9)).all()
    elev = np.degrees(np.arcsin(centres[:, 2] / r))
    assert ((elev > 5 - 1e-9) & (elev < 35 + 1e-9)).all()
    forward = -c2w[:, :3, 2]  # each camera looks at the origin
    np.testing.assert_allclose(forward, -centres / r[:, None], atol=1e-9)
    az = np.sort(np.arctan2(centres[:, 1], centres[:, 0]))
    gaps = np.diff(np.concatenate([az, az[:1] + 2 * np.pi]))
    assert gaps.max() < 2 * np.pi / 16 * 1.7  # all the way round


def test_loaded_cameras_retrace_the_images(scene_dir):
    """Rays of the loaded cameras, mapped back through SceneMeta.data_transform to the file's
    frame, hit the saved depths and shade to the saved pixels."""
    scene = load_scene(scene_dir)
    depths = np.load(scene_dir / "depths.npy")
    for sp, k, i in _views(scene):
        o, d = _file_rays(scene, sp, k)
        rgb, dist = shade(o, d, objects=UNBOUNDED_OBJECTS)
        torch.testing.assert_close(
            dist.reshape(H, W).float(), torch.from_numpy(depths[i]), rtol=1e-4, atol=0
        )
        saved = torch.round(sp.images[k].reshape(-1, 3) * 255)
        same = (torch.round(rgb * 255) == saved).all(-1)
        assert same.float().mean() > 0.99, f"view {i}"  # the rest: edges hit within 1e-7


def test_environment_mask_matches_depths_and_hits(scene_dir):
    depths = np.load(scene_dir / "depths.npy")
    mask = np.load(scene_dir / "env_mask.npy")
    assert (depths[mask] > ENV_RADIUS - 3.8 - 1e-3).all()  # the environment is far ...
    assert (depths[~mask] < 10.0).all()  # ... everything else near
    assert mask.any(axis=(1, 2)).all() and (~mask).any(axis=(1, 2)).all()  # both in every view
    np.testing.assert_array_equal(environment_mask(torch.from_numpy(depths)).numpy(), mask)
    scene = load_scene(scene_dir)
    env = UNBOUNDED_OBJECTS.index(ENVIRONMENT)
    for sp, k, i in _views(scene):  # the mask: exactly where the first hit is ENVIRONMENT
        idx = trace(*_file_rays(scene, sp, k), UNBOUNDED_OBJECTS)[2].reshape(H, W)
        np.testing.assert_array_equal((idx == env).numpy(), mask[i])


def test_environment_is_self_lit_and_casts_no_shadow():
    """Without the environment, the other surfaces shade exactly as with it; the environment's
    colour is its texture, not lit (the same on its sunny and shadowed sides)."""
    c2w = unbounded_camera_poses(4, seed=1)
    rest = tuple(o for o in UNBOUNDED_OBJECTS if o is not ENVIRONMENT)
    for m in c2w:
        full, depth = render_ground_truth(m, W, H, 30.0, objects=UNBOUNDED_OBJECTS)
        part, depth_rest = render_ground_truth(m, W, H, 30.0, objects=rest)
        near = torch.isfinite(depth_rest)
        assert (full[..., 3] == 1).all() and (~near).any()
        torch.testing.assert_close(full[near], part[near], rtol=0, atol=0)
        torch.testing.assert_close(depth[near], depth_rest[near], rtol=0, atol=0)
    d = torch.nn.functional.normalize(torch.randn(256, 3, dtype=torch.float64), dim=-1)
    o = torch.zeros_like(d)
    rgb, t = shade(o, d, objects=(ENVIRONMENT,))
    torch.testing.assert_close(t, torch.full_like(t, ENV_RADIUS))
    torch.testing.assert_close(rgb, ENVIRONMENT.albedo(o + t[:, None] * d, -d).clamp(0, 1))


def test_environment_has_detail_at_several_scales():
    """Neighbouring directions 0.01 rad apart differ (fine detail), and so do directions far
    apart, by more (coarse blobs)."""
    d = torch.nn.functional.normalize(torch.randn(2000, 3, dtype=torch.float64), dim=-1)
    jitter = torch.nn.functional.normalize(d + 0.01 * torch.randn_like(d), dim=-1)
    colour = [ENVIRONMENT.albedo(ENV_RADIUS * v, -v) for v in (d, jitter, d.roll(1, 0))]
    fine = (colour[0] - colour[1]).abs().mean()
    far = (colour[0] - colour[2]).abs().mean()
    assert 0.003 < fine < far and far > 0.1


def test_second_call_is_a_no_op_and_other_params_regenerate(tmp_path):
    out = check_generator_caching(generate_unbounded_scene, tmp_path)
    assert np.load(out / "env_mask.npy").shape == (4, 6, 8)
    assert len(json.loads((out / "transforms.json").read_text())["frames"]) == 4
