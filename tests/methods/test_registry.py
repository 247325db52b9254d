"""The method registry: a method is one file plus one registration. A toy method registered here
trains through the unchanged Trainer and renders through `Method.render_image`; the option
groups of `nerfkit train` come from the registry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import tyro
from torch import Tensor, nn

from nerfkit.cameras import Rays
from nerfkit.config import TRAIN_DEFAULTS, TrainConfig, from_dict, to_dict, train_config_class
from nerfkit.data import load_scene
from nerfkit.data.scene import SceneMeta
from nerfkit.data.synthetic import generate_scene
from nerfkit.errors import NerfkitError
from nerfkit.methods import METHODS, Method, MethodSpec, RenderOutput
from nerfkit.methods.grid import GridConfig
from nerfkit.methods.nerf import NeRFConfig
from nerfkit.metrics import image_metrics
from nerfkit.run import build_method
from nerfkit.train import Trainer


@dataclass
class ToyConfig:
    """Options of the toy method."""

    init: float = 0.0
    """Initial logit of the colour."""


class ToyMethod(Method):
    """One colour everywhere, opaque at mid-range: rgb = sigmoid(logit) [3]."""

    eval_chunk_rays = 100
    train_defaults = {"lr": 0.2, "batch_rays": 64}

    def __init__(self, config: ToyConfig, meta: SceneMeta) -> None:
        super().__init__(meta)
        self.logit = nn.Parameter(torch.full((3,), config.init))

    def forward(self, rays: Rays) -> RenderOutput:
        r = len(rays)
        rgb = torch.sigmoid(self.logit).expand(r, 3)
        return RenderOutput(rgb, 0.5 * (rays.near + rays.far), rays.near.new_ones(r))


def test_a_registered_method_trains_and_renders_with_nothing_else_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(METHODS, "toy", MethodSpec(ToyConfig, ToyMethod, "one colour"))
    config_cls = train_config_class(METHODS)
    root = generate_scene(tmp_path / "scene", resolution=16, n_train=3, n_val=1, n_test=1,
                          supersample=1)  # fmt: skip
    scene = load_scene(root)
    cfg = config_cls(data=root, output=tmp_path / "run", method="toy", toy=ToyConfig(init=-2.0),
                     max_steps=100, val_every=50, ckpt_every=0, progress=False)  # fmt: skip
    trainer = Trainer(cfg, scene)
    assert isinstance(trainer.method, ToyMethod)
    # the method's training defaults, the global ones for what it leaves out
    assert (cfg.lr, cfg.batch_rays, cfg.lr_final) == (0.2, 64, TRAIN_DEFAULTS["lr_final"])

    test, meta = scene.split("test"), scene.meta

    def psnr() -> float:
        img = trainer.method.render_image(test.cameras, 0, meta.near, meta.far)
        return image_metrics(img.rgb, test.images[0])["psnr"]

    before = psnr()
    assert trainer.fit().step == 100
    assert psnr() > before + 3.0
    assert len(list((tmp_path / "run" / "val").glob("*.png"))) == 2  # validation renders
    # the run's config.json holds the method's options and loads back
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["toy"] == {"init": -2.0}
    assert from_dict(config_cls, saved).method_config() == ToyConfig(init=-2.0)


def test_render_image_chunks_and_restores_the_mode() -> None:
    from nerfkit.cameras import Cameras

    meta = SceneMeta(near=2.0, far=6.0, background=[1.0, 1.0, 1.0])
    m = ToyMethod(ToyConfig(init=0.3), meta)
    f, cx, cy = torch.tensor([20.0]), torch.tensor([11.0]), torch.tensor([7.0])
    cams = Cameras(c2w=torch.eye(4)[None], fx=f, fy=f, cx=cx, cy=cy, width=22, height=14)
    img = m.render_image(cams, 0, 2.0, 6.0)  # 308 rays in chunks of 100
    assert m.training  # the mode is restored
    assert img.rgb.shape == (14, 22, 3) and img.depth.shape == img.acc.shape == (14, 22)
    want: Tensor = torch.sigmoid(torch.tensor(0.3)).expand(14, 22, 3)
    torch.testing.assert_close(img.rgb, want)
    torch.testing.assert_close(img.depth, torch.full((14, 22), 4.0))
    m.eval()
    m.render_image(cams, 0, 2.0, 6.0)
    assert not m.training


def test_train_config_has_one_option_group_per_method() -> None:
    cfg = TrainConfig()
    for name, spec in METHODS.items():
        assert getattr(cfg, name) == spec.config_cls()
    assert cfg.method == "auto"  # the scene decides: dgrid for dynamic scenes, else grid
    assert TrainConfig().resolve_method(dynamic=True).method == "dgrid"
    cfg.resolve_method(dynamic=False)
    assert cfg.method == "grid" and isinstance(cfg.method_config(), GridConfig)
    cli = tyro.cli(TrainConfig, args=["--method", "nerf", "--nerf.width", "32",
                                      "--grid.eval-chunk", "5"])  # fmt: skip
    assert cli.nerf == NeRFConfig(width=32) and cli.grid.eval_chunk == 5
    meta = SceneMeta(near=2.0, far=6.0, background=[1.0, 1.0, 1.0])
    assert isinstance(build_method(cli, meta), METHODS["nerf"].method_cls)
    # a run folder's config.json (as `to_dict` wrote it) loads back
    loaded = from_dict(TrainConfig, json.loads(json.dumps(to_dict(cli))))
    assert loaded.method == "nerf" and loaded.nerf == cli.nerf and loaded.grid.eval_chunk == 5


def test_unknown_method_and_clashing_names() -> None:
    with pytest.raises(NerfkitError, match="unknown --method 'nope'; known: .*grid, .*nerf"):
        TrainConfig(method="nope").method_config()
    with pytest.raises(ValueError, match="clash"):
        train_config_class({"seed": MethodSpec(ToyConfig, ToyMethod, "")})
