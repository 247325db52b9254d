"""`nerfkit inspect`: the profile of one ray and its figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from nerfkit.config import TrainConfig
from nerfkit.data.synthetic import generate_scene
from nerfkit.inspect_ray import encoding_curves, ray_profile
from nerfkit.methods.nerf import NeRFConfig
from nerfkit.train import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny trained runs: coarse + fine, and coarse only (n_fine = 0)."""
    root = tmp_path_factory.mktemp("inspect")
    data = generate_scene(root / "tiny", resolution=24, n_train=6, n_val=1, n_test=2,
                          supersample=1)  # fmt: skip
    out = {}
    for name, n_fine in (("fine", 8), ("coarse", 0)):
        nerf = NeRFConfig(width=16, depth=2, skip=0, n_coarse=8, n_fine=n_fine, pos_freqs=4)
        cfg = TrainConfig(data=data, output=root / name, method="nerf", max_steps=10,
                          batch_rays=64, val_every=0, progress=False, nerf=nerf)  # fmt: skip
        train(cfg)
        out[name] = root / name
    return out


@pytest.mark.parametrize("kind", ["fine", "coarse"])
def test_weights_sum_to_the_rendered_opacity(runs: dict[str, Path], kind: str) -> None:
    prof = ray_profile(runs[kind], view=1, x=12, y=10, device="cpu")
    w, trans, t = prof["weights"], prof["trans"], prof["t"]
    assert abs(float(w.sum()) - prof["acc"]) < 1e-5
    assert len(w) == len(trans) == len(t) == len(prof["sigma"])
    assert trans[0] == pytest.approx(1.0) and np.all(np.diff(trans) <= 1e-6)
    assert np.all(np.diff(t) >= 0) and prof["near"] <= t[0] and t[-1] <= prof["far"]
    assert len(prof["t_coarse"]) == 8
    assert len(prof["t_fine"]) == (8 if kind == "fine" else 0)
    assert len(t) == (16 if kind == "fine" else 8)
    # rendered colour = sum w c + (1 - acc) background; true colour is the dataset pixel
    assert prof["rgb"].shape == prof["rgb_true"].shape == (3,)
    np.testing.assert_allclose(prof["rgb_true"], prof["image"][10, 12])


def test_inspect_writes_its_figure(runs: dict[str, Path], tmp_path: Path) -> None:
    png = tmp_path / "ray.png"
    assert run_cli(["inspect", runs["fine"], "--view", 0, "--pixel", 3, 20, "--output", png]) == 0
    assert png.stat().st_size > 10_000
    assert run_cli(["inspect", runs["coarse"], "--view", 1, "--pixel", 0, 0]) == 0
    assert (runs["coarse"] / "inspect" / "test_1_x0_y0.png").is_file()


@pytest.mark.parametrize(
    ("view", "pixel", "needle"),
    [(2, (0, 0), "--view 2 out of range"), (0, (24, 0), "--pixel 24 0 out of range"),
     (0, (0, -1), "out of range")],
)  # fmt: skip
def test_bad_view_or_pixel(runs: dict[str, Path], capsys, view: int, pixel: tuple, needle: str):  # noqa: ANN201
    assert run_cli(["inspect", runs["fine"], "--view", view, "--pixel", *pixel]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_encoding_curves() -> None:
    curves = encoding_curves((2, 5), n=101)
    p, f = curves[5]
    assert p.shape == (101,) and f.shape == (101, 10)
    np.testing.assert_allclose(f[:, 2 * 3], np.sin(8 * p), atol=1e-6)
    np.testing.assert_allclose(f[:, 2 * 3 + 1], np.cos(8 * p), atol=1e-6)
