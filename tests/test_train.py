"""A short training run on the procedural scene clearly improves test PSNR; repeatability;
what the metrics log holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nerfkit.config import TrainConfig
from nerfkit.data import load_scene
from nerfkit.data.synthetic import generate_scene
from nerfkit.methods import Method
from nerfkit.methods.grid import GridConfig
from nerfkit.methods.nerf import NeRFConfig
from nerfkit.metrics import image_metrics
from nerfkit.run import METRICS_FILE
from nerfkit.train import RayBatcher, Trainer


def _test_psnr(method: Method, scene) -> float:
    sp = scene.split("test")
    vals = [
        image_metrics(method.render_image(sp.cameras, k, 2.0, 6.0).rgb, sp.images[k])["psnr"]
        for k in range(len(sp))
    ]
    return sum(vals) / len(vals)


def _cfg(root: Path, out: Path, steps: int) -> TrainConfig:
    return TrainConfig(
        data=root, output=out, method="nerf", max_steps=steps, batch_rays=256, lr=2e-3,
        lr_final=2e-4, val_every=0, ckpt_every=0, progress=False, seed=0,
        nerf=NeRFConfig(width=64, depth=3, skip=1, n_coarse=16, n_fine=16, pos_freqs=6),
    )  # fmt: skip


def test_short_nerf_training_improves_test_psnr(tmp_path: Path) -> None:
    root = tmp_path / "scene"
    generate_scene(root, resolution=32, n_train=20, n_val=1, n_test=3, supersample=1)
    scene = load_scene(root)
    trainer = Trainer(_cfg(root, tmp_path / "run", 150), scene)
    before = _test_psnr(trainer.method, scene)
    result = trainer.fit()
    after = _test_psnr(trainer.method, scene)
    assert result.step == 150
    assert after > before + 4.0, (before, after)


def test_ray_batches_match_image_pixels(tmp_path: Path) -> None:
    root = tmp_path / "scene"
    generate_scene(root, resolution=16, n_train=3, n_val=0, n_test=1, supersample=1)
    sp = load_scene(root).split("train")
    batcher = RayBatcher(sp, 2.0, 6.0, ndc=False, seed=0)
    rays, rgb = batcher.sample(50)
    # each drawn colour is the pixel that the drawn ray goes through
    for r in range(50):
        hits = [
            (k, i)
            for k in range(len(sp))
            for i, d in enumerate(sp.cameras.image_rays(k, 2.0, 6.0).directions)
            if torch.allclose(d, rays.directions[r], atol=1e-6)
        ]
        assert len(hits) == 1
        k, i = hits[0]
        torch.testing.assert_close(sp.images[k].reshape(-1, 3)[i], rgb[r])
    # the centre crop keeps rays within the central half of each image
    rays_c, _ = batcher.sample(200, crop_frac=0.5)
    assert rays_c.directions.shape == (200, 3)


def _coded_split(tmp_path: Path) -> tuple:
    """A 5-image 8x8 training split whose pixel "colours" name their image and pixel (image,
    row, column), at times 0.5, 0, 1, 0.25, 0.75; its times; a RayBatcher of it."""
    import dataclasses

    root = tmp_path / "scene"
    generate_scene(root, resolution=8, n_train=5, n_val=0, n_test=1, supersample=1)
    sp = load_scene(root).split("train")
    n, h, w = sp.images.shape[:3]
    code = torch.stack(torch.meshgrid(*(torch.arange(k) for k in (n, h, w)), indexing="ij"), -1)
    times = torch.tensor([0.5, 0.0, 1.0, 0.25, 0.75])
    sp = dataclasses.replace(sp, times=times, images=code.float())
    return sp, times, RayBatcher(sp, 2.0, 6.0, ndc=False, seed=0)


def test_a_time_limit_draws_only_from_early_images(tmp_path: Path) -> None:
    sp, times, batcher = _coded_split(tmp_path)
    n, h, w = sp.images.shape[:3]
    for limit, want in ((0.3, {1, 3}), (-1.0, {1}), (None, None), (1.0, None)):
        for crop in (None, 0.5):
            rays, rgb = batcher.sample(300, crop, max_time=limit)
            assert set(rays.camera.tolist()) == (want or set(range(n)))
            k, y, x = rgb.long().unbind(-1)
            assert torch.equal(k, rays.camera)  # the colour is the drawn image's pixel ...
            torch.testing.assert_close(rays.time, times[k])
            for r in range(0, 300, 37):  # ... and the ray goes through that pixel
                d = sp.cameras.image_rays(int(k[r]), 2.0, 6.0).directions[int(y[r]) * w + x[r]]
                torch.testing.assert_close(d, rays.directions[r])


def test_one_image_per_step_draws_every_ray_from_one_early_image(tmp_path: Path) -> None:
    """D-NeRF's batches: all rays of a draw from one image (crop or not), each ray through its
    pixel, the image among those the time limit allows, and over many draws every allowed
    image is used."""
    sp, times, batcher = _coded_split(tmp_path)
    n, h, w = sp.images.shape[:3]
    for limit, allowed in ((0.3, {1, 3}), (None, set(range(n)))):
        seen = set()
        for crop in (None, 0.5) * 10:
            rays, rgb = batcher.sample(64, crop, max_time=limit, one_image=True)
            k, y, x = rgb.long().unbind(-1)
            assert len(set(k.tolist())) == 1 and torch.equal(k, rays.camera)
            seen |= set(k.tolist())
            if crop is not None:  # the central half: rows and columns 2..5 of 8
                assert int(y.min()) >= 2 and int(y.max()) <= 5 and int(x.max()) <= 5
            for r in range(0, 64, 13):
                d = sp.cameras.image_rays(int(k[r]), 2.0, 6.0).directions[int(y[r]) * w + x[r]]
                torch.testing.assert_close(d, rays.directions[r])
        assert seen == allowed


def test_same_seed_same_result(tmp_path: Path) -> None:
    root = tmp_path / "scene"
    generate_scene(root, resolution=16, n_train=4, n_val=0, n_test=1, supersample=1)
    scene = load_scene(root)
    a = Trainer(_cfg(root, tmp_path / "a", 5), scene)
    a.fit()
    b = Trainer(_cfg(root, tmp_path / "b", 5), scene)
    b.fit()
    for (ka, va), (kb, vb) in zip(a.method.state_dict().items(), b.method.state_dict().items()):
        assert ka == kb
        torch.testing.assert_close(va, vb)


def test_grid_training_logs_samples_per_ray(tmp_path: Path) -> None:
    root = tmp_path / "scene"
    generate_scene(root, resolution=16, n_train=3, n_val=0, n_test=1, supersample=1)
    cfg = TrainConfig(
        data=root, output=tmp_path / "run", method="grid", max_steps=4, batch_rays=64,
        val_every=0, ckpt_every=0, progress=False, log_every=1,
        grid=GridConfig(num_voxels_final=16**3, upsample_steps=(), fit_box_step=-1),
    )  # fmt: skip
    Trainer(cfg, load_scene(root)).fit()
    recs = [json.loads(line) for line in (tmp_path / "run" / METRICS_FILE).read_text().splitlines()]
    spr = [r["samples_per_ray"] for r in recs if "samples_per_ray" in r]
    assert len(spr) == 4
    # rays cross at most the box diagonal (16 sqrt 3 voxels) at half-voxel steps
    assert all(0 < s <= 2 * 16 * 3**0.5 + 1 for s in spr), spr


def test_kernel_is_built_before_the_clock_starts(tmp_path: Path, monkeypatch) -> None:
    """`Method.prepare` runs before the first step: the grid method's first kernel build (about
    a minute on a fresh install) is not taken out of a time budget."""
    import nerfkit.render.grid as grid_mod

    root = tmp_path / "scene"
    generate_scene(root, resolution=16, n_train=3, n_val=0, n_test=1, supersample=1)
    cfg = TrainConfig(
        data=root, output=tmp_path / "run", method="grid", max_steps=2, batch_rays=64,
        val_every=0, ckpt_every=0, progress=False,
        grid=GridConfig(num_voxels_final=16**3, upsample_steps=(), fit_box_step=-1),
    )  # fmt: skip
    tr = Trainer(cfg, load_scene(root))
    events: list[str] = []

    def build() -> object:
        events.append(f"build at step {tr.step}, elapsed {tr.elapsed}")
        raise OSError("no compiler")  # the reference path then trains

    monkeypatch.delenv("NERFKIT_NO_KERNEL", raising=False)
    monkeypatch.setattr(grid_mod, "_kernel_module", None)
    monkeypatch.setattr(grid_mod, "_kernel_failed", False)
    monkeypatch.setattr(grid_mod, "_build_kernel", build)
    step = tr.train_step
    monkeypatch.setattr(tr, "train_step", lambda: events.append("step") or step())
    with pytest.warns(RuntimeWarning, match="could not build"):
        tr.fit()
    assert events == ["build at step 0, elapsed 0.0", "step", "step"]
