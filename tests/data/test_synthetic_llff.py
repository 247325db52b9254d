"""The procedural forward-facing scene: LLFF files, read by the LLFF loader, whose cameras (and
NDC rays) reproduce what the tracer saw; a short `grid` training run learns it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import check_generator_caching, split_views

from nerfkit.config import TrainConfig
from nerfkit.data.llff import load_llff
from nerfkit.data.synthetic import shade
from nerfkit.data.synthetic_llff import (
    FORWARD_OBJECTS,
    axial_depth,
    forward_camera_poses,
    forward_focal,
    generate_forward_scene,
    image_names,
    llff_rows,
)
from nerfkit.methods.grid import GridConfig
from nerfkit.metrics import image_metrics
from nerfkit.poses import umeyama
from nerfkit.train import Trainer

W, H, N = 64, 48, 12


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("forward") / "scene"
    return generate_forward_scene(out, size=(W, H), n_views=N, seed=0, supersample=1)


def _views(scene):
    """(split, index in split, index in the dataset) for every view of the loaded scene."""
    return split_views(scene, image_names(N))


def _to_generator_frame(scene):
    """The similarity (s, R, t) the loader applied (loaded = s R p + t), fitted from the camera
    centres; checks that the cameras' rotations agree with it."""
    gen = forward_camera_poses(N, seed=0).numpy()
    views = _views(scene)
    loaded = np.stack([sp.cameras.c2w[k].double().numpy() for sp, k, _ in views])
    src = gen[[i for _, _, i in views]]
    s, r, t = umeyama(src[:, :3, 3], loaded[:, :3, 3])
    np.testing.assert_allclose(r @ src[:, :3, :3], loaded[:, :3, :3], atol=1e-5)
    np.testing.assert_allclose(s * src[:, :3, 3] @ r.T + t, loaded[:, :3, 3], atol=1e-5)
    return s, r, t


def test_files_and_loader(scene_dir):
    rows = np.load(scene_dir / "poses_bounds.npy")
    depths = np.load(scene_dir / "depths.npy")
    assert rows.shape == (N, 17) and depths.shape == (N, H, W) and depths.dtype == np.float32
    assert np.isfinite(depths).all()  # every ray hits: opaque photos, as LLFF's are
    focal = forward_focal(W)
    np.testing.assert_allclose(rows[:, :15].reshape(N, 3, 5)[:, :, 4], [[H, W, focal]] * N)
    for i in range(N):  # bounds: the exact depth range along the viewing axis
        z = axial_depth(torch.from_numpy(depths[i]), focal)
        assert rows[i, 15:] == pytest.approx([float(z.min()), float(z.max())], rel=1e-6)
    assert 1.5 < rows[:, 15].min() and rows[:, 16].max() < 8.5  # content at a range of depths
    assert sorted(p.name for p in (scene_dir / "images").iterdir()) == image_names(N)

    scene = load_llff(scene_dir)
    tr, te = scene.split("train"), scene.split("test")
    assert te.names == ["image000", "image008"] and len(tr) == N - 2
    assert tr.images.shape == (N - 2, H, W, 3)
    assert (tr.cameras.width, tr.cameras.height) == (W, H)
    assert scene.meta.ndc and scene.meta.kind == "forward"
    assert scene.meta.focal == pytest.approx(focal)


def test_llff_rows_use_down_right_back():
    c2w = forward_camera_poses(3, seed=1).numpy()
    rows = llff_rows(c2w, np.ones((3, 2)), H, W, 50.0)
    m = rows[:, :15].reshape(3, 3, 5)
    np.testing.assert_allclose(m[:, :, 0], -c2w[:, :3, 1])  # down = -up
    np.testing.assert_allclose(m[:, :, 1], c2w[:, :3, 0])  # right
    np.testing.assert_allclose(m[:, :, 2], c2w[:, :3, 2])  # back
    np.testing.assert_allclose(m[:, :, 3], c2w[:, :3, 3])  # centre
    # all facing one way (+y), on a small grid
    assert (-c2w[:, 1, 2] > 0.98).all()  # within 11 degrees of +y
    assert np.abs(c2w[:, :3, 3]).max() < 0.6


def test_loaded_cameras_retrace_the_images(scene_dir):
    """Rays of the loaded cameras, mapped back to the generator's frame, hit the traced depths
    and shade to the saved pixels."""
    scene = load_llff(scene_dir)
    s, r, t = _to_generator_frame(scene)
    rt, tt = torch.from_numpy(r), torch.from_numpy(t)
    depths = np.load(scene_dir / "depths.npy")
    for sp, k, i in _views(scene):
        rays = sp.cameras.image_rays(k, 0.0, 1.0)
        o = ((rays.origins.double() - tt) @ rt) / s
        d = rays.directions.double() @ rt
        rgb, dist = shade(o, d, objects=FORWARD_OBJECTS)
        torch.testing.assert_close(
            dist.reshape(H, W).float(), torch.from_numpy(depths[i]), rtol=1e-4, atol=0
        )
        saved = torch.round(sp.images[k].reshape(-1, 3) * 255)
        same = (torch.round(rgb * 255) == saved).all(-1)
        assert same.float().mean() > 0.995, f"view {i}"  # the rest: edges hit within 1e-7


def test_loaded_ndc_rays_pass_through_the_traced_surfaces(scene_dir):
    """The exact depth, scaled into the loaded frame, gives an NDC depth t' in (0, 1) at which
    the loaded NDC ray is at the surface point; un-NDC'd, that point is the traced one."""
    scene = load_llff(scene_dir)
    s = _to_generator_frame(scene)[0]
    sc = 1.0 / (0.75 * np.load(scene_dir / "poses_bounds.npy")[:, 15].min())
    assert s == pytest.approx(sc, rel=1e-6)  # the loader's scale: nearest content at 1 / 0.75
    depths = torch.from_numpy(np.load(scene_dir / "depths.npy")).double()
    for sp, k, i in _views(scene):
        cams = sp.cameras
        world = cams.image_rays(k, 0.0, 1.0)
        ndc = cams.image_rays(k, 0.0, 1.0, ndc=True)
        q = world.origins.double() + s * depths[i].reshape(-1, 1) * world.directions.double()
        assert (q[:, 2] < -1.0 / 0.75 + 1e-4).all()  # beyond the NDC near plane (depth 1)
        t_ndc = 1.0 + 1.0 / q[:, 2]  # NDC depth of camera depth -z: 1 - 1 / z
        assert ((t_ndc > 0.2) & (t_ndc < 0.9)).all()
        p = ndc.origins.double() + t_ndc[:, None] * ndc.directions.double()
        # un-NDC (near plane 1): z = 2 / (p_z - 1), x = -p_x z (2 f / W)^-1, likewise y
        z = 2.0 / (p[:, 2] - 1.0)
        fx = float(cams.fx[0])
        x, y = -p[:, 0] * z * W / (2 * fx), -p[:, 1] * z * H / (2 * fx)
        torch.testing.assert_close(torch.stack([x, y, z], -1), q, rtol=0, atol=2e-4)


def test_second_call_is_a_no_op_and_other_params_regenerate(tmp_path):
    check_generator_caching(generate_forward_scene, tmp_path)


def _test_psnr(trainer: Trainer) -> float:
    sp, meta = trainer.scene.split("test"), trainer.scene.meta
    m = trainer.method
    with torch.no_grad():
        psnrs = [
            image_metrics(m.render_image(sp.cameras, k, meta.near, meta.far, ndc=True).rgb,
                          sp.images[k])["psnr"]
            for k in range(len(sp))
        ]  # fmt: skip
    return sum(psnrs) / len(psnrs)


def test_grid_learns_the_forward_scene(tmp_path):
    """300 steps of the default method (a small grid, no MLP) on 64x48 views: ~11 -> ~21 dB."""
    data = generate_forward_scene(tmp_path / "data", size=(W, H), n_views=20, supersample=1)
    grid = GridConfig(
        num_voxels_final_ndc=64 * 64 * 32, upsample_steps=(100, 200), fit_box_step=100,
        occ_start=50, occ_every=50, mlp_start=1000,
    )  # fmt: skip
    cfg = TrainConfig(
        data=data, output=tmp_path / "run", max_steps=300, batch_rays=1024, val_every=0,
        ckpt_every=10_000, log_every=100, progress=False, grid=grid, threads=1,
    )  # fmt: skip
    threads = torch.get_num_threads()  # one thread: robust to a busy machine
    try:
        trainer = Trainer(cfg)
        assert cfg.method == "grid"  # --method auto on a static scene
        before = _test_psnr(trainer)
        trainer.fit()
        after = _test_psnr(trainer)
    finally:
        torch.set_num_threads(threads)
    assert after > before + 6.0 and after > 18.0, (before, after)
