"""The faithful dynamic methods (dnerf, nerfies, hypernerf): latent codes by time, warps that
start at the identity, the warp Jacobian, the regularisers' wiring, and a few training steps of
each on a tiny analytic dynamic scene (a sphere moving along x)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nerfkit.cameras import Cameras, Rays
from nerfkit.config import TrainConfig
from nerfkit.data.scene import Scene, SceneMeta, Split
from nerfkit.methods.dnerf import DNeRF, DNeRFConfig
from nerfkit.methods.hypernerf import HyperNeRF, HyperNeRFConfig
from nerfkit.methods.latent_codes import LatentCodes
from nerfkit.methods.nerfies import Nerfies, NerfiesConfig, SE3Field
from nerfkit.perf import one_thread
from nerfkit.poses import orbit_pose
from nerfkit.render import warp as W
from nerfkit.render.volume import INFINITE_DELTA
from nerfkit.train import RayBatcher, Trainer

TIMES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
META = SceneMeta(near=2.0, far=6.0, background=[1.0, 1.0, 1.0], train_times=TIMES)
# tiny templates: the paper's structure, narrow and few samples
TINY = dict(width=32, depth=2, skip=0, pos_freqs=4, dir_freqs=2, n_coarse=8, n_fine=8)
TINY_WARP = dict(warp_freqs=3, warp_alpha_steps=20, warp_width=32, warp_depth=2, warp_skip=1)
TINY_SHEET = dict(sheet_freqs=2, sheet_width=16, sheet_depth=2, sheet_skip=1,
                  hyper_alpha_delay=5, hyper_alpha_steps=10)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Small tensors: one thread (`nerfkit.perf.one_thread`), robust to a busy machine."""
    with one_thread():
        yield


def _tiny(name: str, **kw: object) -> object:
    if name == "dnerf":
        return DNeRFConfig(**TINY, time_freqs=3, deform_width=32, deform_depth=2, deform_skip=0,
                           **kw)  # fmt: skip
    if name == "nerfies":
        return NerfiesConfig(**TINY, **TINY_WARP, **kw)
    return HyperNeRFConfig(**TINY, **TINY_WARP, **TINY_SHEET, **kw)


def _center(t: float) -> torch.Tensor:
    return torch.tensor([0.8 * (t - 0.5), 0.0, 0.0])


def _sphere_scene(size: int = 16) -> Scene:
    """Six frames of a sphere (radius 0.7, colour 0.5 + 0.5 normal) moving along x, seen from
    cameras around it on a white background."""
    n = len(TIMES)
    c2w = torch.stack([orbit_pose(2 * math.pi * k / n, 0.3, 4.0).float() for k in range(n)])
    f = torch.full((n,), 1.2 * size)
    c = torch.full((n,), size / 2)
    cams = Cameras(c2w=c2w, fx=f, fy=f, cx=c, cy=c, width=size, height=size)
    images = []
    for k, t in enumerate(TIMES):
        rays = cams.image_rays(k, 2.0, 6.0)
        oc = rays.origins - _center(t)
        b = (oc * rays.directions).sum(-1)
        disc = b**2 - (oc.square().sum(-1) - 0.7**2)
        hit = disc > 0
        depth = -b - disc.clamp(min=0).sqrt()
        normal = (oc + depth[:, None] * rays.directions) / 0.7
        rgb = torch.where(hit[:, None], 0.5 + 0.5 * normal, torch.ones(3))
        images.append(rgb.reshape(size, size, 3))
    split = Split(torch.stack(images), cams, [f"f{k}" for k in range(n)], times=torch.tensor(TIMES))
    return Scene.from_splits({"train": split}, near=2.0, far=6.0, background=[1.0, 1.0, 1.0])


def test_latent_codes_by_time() -> None:
    codes = LatentCodes([0.0, 0.25, 0.25, 0.5, 1.0], dims=3)
    assert codes.num_codes == 4  # frames at the same time share a code
    table = codes.table.detach()
    t = torch.tensor([0.25, 0.0, 1.0, 0.125, 0.75, -1.0, 2.0])
    got = codes(t, len(t)).detach()
    assert torch.equal(got[0], table[1]) and torch.equal(got[1], table[0])
    assert torch.equal(got[2], table[3])
    torch.testing.assert_close(got[3], 0.5 * (table[0] + table[1]))  # midpoints: the mean
    torch.testing.assert_close(got[4], 0.5 * (table[2] + table[3]))
    assert torch.equal(got[5], table[0]) and torch.equal(got[6], table[3])  # clamped
    assert torch.equal(codes(None, 2).detach(), table[:1].expand(2, 3))
    assert ((table >= 0) & (table < 0.05)).all()  # GLOEmbed's U[0, 0.05)
    drawn = codes.random(20).detach()
    assert all(any(torch.equal(row, code) for code in table) for row in drawn)


def test_se3_field_starts_at_identity_and_its_jacobian_is_exact() -> None:
    torch.manual_seed(0)
    field = SE3Field(code_dims=8, num_freqs=6)  # the released sizes
    x = (torch.rand(512, 3) * 2 - 1) * 1.5
    codes = torch.rand(512, 8) * 0.05
    for alpha in (0.0, 6.0):
        assert (field(x, codes, alpha) - x).norm(dim=-1).max() < 1e-2
    # a clearly non-rigid warp: its Jacobian from jacfwd equals autograd's, point by point
    # (in float64: in float32 a ReLU input within rounding of 0 may take either side)
    field, x, codes = field.double(), x.double(), codes.double()
    with torch.no_grad():
        field.w_head.weight.normal_(0, 0.05)
        field.v_head.weight.normal_(0, 0.05)
    warped, jac = field.with_jacobian(x[:6], codes[:6], 2.5)
    torch.testing.assert_close(warped, field(x[:6], codes[:6], 2.5))
    for i in range(6):
        want = torch.autograd.functional.jacobian(
            lambda p, i=i: field(p[None], codes[i : i + 1], 2.5)[0], x[i]
        )
        torch.testing.assert_close(jac[i], want, atol=1e-10, rtol=1e-8)
    assert W.elastic_loss(jac)[0].max() > 1e-4
    # the elastic loss reaches the trunk's parameters through the Jacobian
    W.elastic_loss(jac)[0].sum().backward()
    assert field.trunk.layers[0].weight.grad.abs().sum() > 0


def test_dnerf_deformation_is_zero_at_time_zero() -> None:
    torch.manual_seed(0)
    sp = _sphere_scene(8).split("train")
    m = DNeRF(_tiny("dnerf"), META)
    assert torch.equal(m.render_image(sp.cameras, 0, 2.0, 6.0, time=0.0).displacement,
                       torch.zeros(8, 8, 3))  # fmt: skip
    assert m.render_image(sp.cameras, 0, 2.0, 6.0, time=0.6).displacement.abs().max() > 1e-3
    free = DNeRF(_tiny("dnerf", zero_canonical=False), META)
    assert free.render_image(sp.cameras, 0, 2.0, 6.0, time=0.0).displacement.abs().max() > 1e-3
    # the release's default: one network (coarse pass without gradients); two_models: two
    assert m.fine is None and DNeRF(_tiny("dnerf", two_models=True), META).fine is not None


def test_dnerf_batches_and_curriculum_are_the_releases() -> None:
    """max(3, N step / steps) earliest frames until `time_curriculum_steps`, then all."""
    times = [i / 9 for i in range(10)][::-1]  # N = 10, in any order
    meta = SceneMeta(near=2.0, far=6.0, background=[1.0] * 3, train_times=times)
    cfg = DNeRFConfig(width=8, depth=2, skip=0, deform_width=8, deform_depth=2, deform_skip=0)
    m = DNeRF(cfg, meta)
    assert m.one_image_per_step
    assert m.max_train_time(0) == pytest.approx(2 / 9)  # the earliest 3
    assert m.max_train_time(5000) == pytest.approx(4 / 9)  # the earliest 5
    assert m.max_train_time(9999) == pytest.approx(8 / 9)
    assert m.max_train_time(10000) is None


@pytest.mark.parametrize("name", ["nerfies", "hypernerf"])
def test_warps_start_at_the_identity(name: str) -> None:
    torch.manual_seed(0)
    sp = _sphere_scene(8).split("train")
    cls = Nerfies if name == "nerfies" else HyperNeRF
    cfg = _tiny(name)
    for key in ("warp_width", "warp_depth", "warp_skip"):  # the released warp field
        setattr(cfg, key, getattr(type(cfg)(), key))
    m = cls(cfg, META)
    img = m.render_image(sp.cameras, 0, 2.0, 6.0, time=0.4)
    assert img.displacement.shape == (8, 8, 3) and img.displacement.abs().max() < 1e-2
    if name == "hypernerf":
        assert img.ambient.shape == (8, 8, 2) and img.ambient.abs().max() < 1e-3


@pytest.mark.parametrize("name", ["nerfies", "hypernerf"])
def test_the_last_sample_is_at_infinity_only_on_unbounded_captures(name: str) -> None:
    """The release's `use_sample_at_infinity` on its real captures; on a scene with a known
    background the last interval is zero, so a ray with little density shows the background
    (with the softplus density, never 0, an infinite one makes every ray opaque)."""
    torch.manual_seed(0)
    cls = Nerfies if name == "nerfies" else HyperNeRF
    sp = _sphere_scene(8).split("train")
    rays = sp.cameras.image_rays(0, 2.0, 6.0)
    rays.time = torch.full((len(rays),), 0.4)
    bounded = cls(_tiny(name), META)
    unbounded = cls(_tiny(name), dataclasses.replace(META, unbounded=True))
    unbounded.load_state_dict(bounded.state_dict())
    bounded.eval(), unbounded.eval()
    with torch.no_grad():
        acc_b, acc_u = bounded(rays).acc, unbounded(rays).acc
    torch.testing.assert_close(acc_u, torch.ones_like(acc_u))
    assert float(acc_b.max()) < 0.999
    # and the bounded scene starts nearly transparent: softplus(bias) x (far - near) = -log 0.9
    assert unbounded.density_bias == 0.0
    sigma = F.softplus(torch.tensor(bounded.density_bias)) * (META.far - META.near)
    torch.testing.assert_close(1 - torch.exp(-sigma), torch.tensor(0.1))
    assert cls(_tiny(name, density_bias=-1.0), META).density_bias == -1.0
    assert cls(_tiny(name, sample_at_infinity=True), META).last_delta == INFINITE_DELTA
    assert cls(_tiny(name, sample_at_infinity=False), unbounded.meta).last_delta == 0.0


@pytest.mark.parametrize("name", ["nerfies", "hypernerf"])
def test_templates_start_as_released_glorot_uniform_zero_bias(name: str) -> None:
    """Every template layer W [out, in] ~ U(-a, a), a = sqrt(6 / (in + out)): inside the
    bound, spread over it (not PyTorch's default 1/sqrt(in) bound), biases zero."""
    torch.manual_seed(0)
    cls = Nerfies if name == "nerfies" else HyperNeRF
    m = cls(_tiny(name), META)
    layers = [x for net in (m.coarse, m.fine) for x in net.modules() if isinstance(x, nn.Linear)]
    assert len(layers) >= 4
    for lin in layers:
        fan_out, fan_in = lin.weight.shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert float(lin.weight.abs().max()) <= bound
        assert float(lin.weight.abs().max()) > 0.8 * bound or lin.weight.numel() < 50
        assert torch.count_nonzero(lin.bias) == 0


def test_background_loss_is_zero_for_an_identity_warp() -> None:
    m = Nerfies(_tiny("nerfies", background_batch=64), META)
    m.use_points(torch.randn(30, 3))
    with torch.no_grad():
        m.warp.w_head.weight.zero_()
        m.warp.v_head.weight.zero_()
    assert m.background_loss() == 0
    with torch.no_grad():
        m.warp.v_head.bias.fill_(0.01)  # every point moves by (0.01, 0.01, 0.01)
    want = W.geman_mcclure(torch.tensor(3e-4), 0.001)
    torch.testing.assert_close(m.background_loss(), want)


@pytest.mark.parametrize("own", [False, True])
def test_hypernerf_ap_slices_with_the_warp_code_as_released(own: bool) -> None:
    """Release: AP's w is the warp code itself (8-d); --hypernerf.hyper-own-code: its own m-d
    code. Either way w is constant over a frame: the ambient map (w averaged with the
    compositing weights) is the code."""
    torch.manual_seed(0)
    m = HyperNeRF(_tiny("hypernerf", slicing="ap", hyper_own_code=own), META)
    r = 32
    d = torch.nn.functional.normalize(torch.randn(r, 3), dim=-1)
    near, far = torch.full((r,), 2.0), torch.full((r,), 6.0)
    rays = Rays(torch.randn(r, 3), d, near, far, time=torch.full((r,), 0.4))
    m.eval()
    with torch.no_grad():
        out = m(rays)
    codes = m.hyper_codes if own else m.warp_codes
    code = codes.table[2].detach()  # time 0.4 is the third training time
    assert out.ambient.shape == (r, 2 if own else 8)
    torch.testing.assert_close(out.ambient, code.expand(r, -1))


@pytest.mark.parametrize("name", ["dnerf", "nerfies", "hypernerf"])
def test_each_method_trains_and_renders_its_deformation(name: str, tmp_path: Path) -> None:
    scene = _sphere_scene()
    extra = {"elastic_weight": 1e-3} if name == "hypernerf" else {}
    cfg = TrainConfig(data=tmp_path, output=tmp_path / "run", method=name, max_steps=40,
                      batch_rays=128, lr=5e-3, lr_final=1e-3, val_every=0, ckpt_every=0,
                      progress=False, seed=0, **{name: _tiny(name, **extra)})  # fmt: skip
    trainer = Trainer(cfg, scene)
    m = trainer.method
    losses = []
    for _ in range(40):
        losses.append(trainer.train_step())
    first = sum(i["psnr"] for i in losses[:10]) / 10
    last = sum(i["psnr"] for i in losses[-10:]) / 10
    assert last > first + 2.0, (first, last)
    # the regularisers named in the losses, the schedules advanced with the steps
    if name != "dnerf":
        rays, rgb = trainer.batcher.sample(64)
        names = set(m.loss(m(rays), rgb))
        assert "elastic" in names and "mse_coarse" in names
        m.step_callback(trainer.step)
        assert m.warp_alpha == 3.0  # 0 -> 3 bands over 20 steps
        fresh = type(m)(cfg.method_config(), scene.meta)
        fresh.load_state_dict(m.state_dict())  # the step is saved with the model
        assert fresh.warp_alpha == 3.0
    sp = scene.split("train")
    img = m.render_image(sp.cameras, 1, 2.0, 6.0, time=0.3)  # between training times
    assert img.rgb.shape == (16, 16, 3) and img.displacement.shape == (16, 16, 3)
    assert torch.isfinite(img.displacement).all() and img.displacement.abs().max() > 0
    if name == "hypernerf":
        assert img.ambient.shape == (16, 16, 2) and torch.isfinite(img.ambient).all()


def test_nerfies_camera_code_follows_the_rays_rig_camera() -> None:
    """gpu_vrig_paper.gin's per-rig-camera code: a row per training camera id, chosen by each
    ray's rig camera (clamped to the table; row 0 for rays without one), colour only; left out
    with one camera (the same model, and the same checkpoint keys, as without it) and in
    HyperNeRF (its release has none). Training batches carry the rig camera of their image."""
    two = dataclasses.replace(META, train_rig_cameras=[0, 1, 0, 1, 0, 1])
    torch.manual_seed(0)
    m = Nerfies(_tiny("nerfies"), two)
    assert m.camera_codes is not None and m.camera_codes.shape == (2, 2)
    one = Nerfies(_tiny("nerfies"), dataclasses.replace(META, train_rig_cameras=[0] * 6))
    off = Nerfies(_tiny("nerfies", camera_dims=0), two)
    assert one.camera_codes is None and off.camera_codes is None
    assert one.state_dict().keys() == Nerfies(_tiny("nerfies"), META).state_dict().keys()
    assert HyperNeRF(_tiny("hypernerf"), two).camera_codes is None
    with torch.no_grad():
        m.camera_codes.copy_(torch.tensor([[0.0, 0.0], [3.0, -3.0]]))
    sp = _sphere_scene(8).split("train")
    img = {
        r: m.render_image(sp.cameras, 0, 2.0, 6.0, time=0.4, rig_camera=r) for r in (None, 0, 1, 7)
    }
    torch.testing.assert_close(img[None].rgb, img[0].rgb)
    torch.testing.assert_close(img[7].rgb, img[1].rgb)  # an id beyond the table: the last row
    assert float((img[1].rgb - img[0].rgb).abs().max()) > 1e-3
    torch.testing.assert_close(img[1].depth, img[0].depth)  # the code changes colour only
    rays = sp.cameras.image_rays(0, 2.0, 6.0, time=0.4)
    rays.rig_camera = torch.ones(len(rays), dtype=torch.long)
    m.train()
    out = m(rays)
    m.loss(out, torch.rand_like(out.rgb))["loss"].backward()
    grad = m.camera_codes.grad
    assert float(grad[0].abs().max()) == 0.0 and float(grad[1].abs().max()) > 0.0
    sp.rig_cameras = torch.tensor([0, 1, 0, 1, 0, 1])
    rays, _ = RayBatcher(sp, 2.0, 6.0, ndc=False, seed=0).sample(64)
    assert torch.equal(rays.rig_camera, sp.rig_cameras[rays.camera])
