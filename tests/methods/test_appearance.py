"""Per-image appearance compensation: identity at the start and off for synthetic scenes, the
average transform for views that are not training photos, and known exposure / white-balance
changes recovered by fitting."""

from __future__ import annotations

import torch

from nerfkit.data.scene import SceneMeta, Split
from nerfkit.methods.appearance import AppearanceAffine
from nerfkit.methods.grid import GridConfig, GridMethod


def _meta(unbounded: bool, n: int = 5) -> SceneMeta:
    eye = torch.eye(4)
    c2w = []
    for k in range(n):
        m = eye.clone()
        m[:3, 3] = torch.tensor([float(k), 0.0, 3.0])
        c2w.append(m.tolist())
    return SceneMeta(
        near=0.1, far=6.0, background=[1.0, 1.0, 1.0], unbounded=unbounded, train_c2w=c2w
    )


def _method(unbounded: bool, **kw) -> GridMethod:
    torch.manual_seed(0)
    cfg = GridConfig(num_voxels_final=16**3, num_voxels_final_unbounded=16**3, **kw)
    return GridMethod(cfg, _meta(unbounded))


def test_off_for_synthetic_scenes_on_for_real_captures():
    assert _method(unbounded=False).appearance is None
    m = _method(unbounded=True)
    assert m.appearance is not None and m.appearance.matrix.shape == (5, 3, 3)
    assert any(g["name"] == "appearance" for g in m.param_groups(1e-3))
    assert _method(unbounded=True, appearance=False).appearance is None


def test_identity_at_the_start():
    a = AppearanceAffine(4)
    g = torch.Generator().manual_seed(0)
    rgb, acc = torch.rand(100, 3, generator=g), torch.rand(100, generator=g)
    cam = torch.randint(0, 4, (100,), generator=g)
    torch.testing.assert_close(a(rgb, acc, cam), rgb)
    torch.testing.assert_close(a(rgb, acc, None), rgb)


def test_views_that_are_not_training_photos_get_the_average_transform():
    a = AppearanceAffine(2)
    with torch.no_grad():
        a.matrix[0] = torch.diag(torch.tensor([0.5, 1.0, 1.5]))
        a.matrix[1] = torch.diag(torch.tensor([1.5, 1.0, 0.5]))
        a.offset[0] = torch.tensor([0.2, 0.0, 0.0])
    rgb, acc = torch.rand(10, 3), torch.ones(10)
    out = a(rgb, acc, None)
    torch.testing.assert_close(out, rgb + torch.tensor([0.1, 0.0, 0.0]))
    # no offset where nothing is hit: the background is not transformed
    torch.testing.assert_close(
        a(rgb, torch.zeros(10), torch.zeros(10, dtype=torch.long))[:, 1:],
        rgb[:, 1:] * torch.tensor([1.0, 1.5]),
    )


def test_fitting_recovers_each_photos_exposure_and_white_balance():
    g = torch.Generator().manual_seed(1)
    gains = torch.tensor([[1.0, 1.0, 1.0], [0.6, 0.6, 0.6], [1.3, 1.0, 0.8], [0.9, 1.1, 1.2]])
    a = AppearanceAffine(4)
    opt = torch.optim.Adam(a.parameters(), lr=2e-2)
    for _ in range(400):
        rgb = torch.rand(256, 3, generator=g)
        cam = torch.randint(0, 4, (256,), generator=g)
        target = rgb * gains[cam]
        loss = ((a(rgb, torch.ones(256), cam) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k in range(4):
        torch.testing.assert_close(a.matrix[k].detach(), torch.diag(gains[k]), atol=0.02, rtol=0)
    assert float(a.offset.detach().abs().max()) < 0.02


def test_training_rays_carry_their_image_index():
    from nerfkit.cameras import Cameras
    from nerfkit.train import RayBatcher

    n, h, w = 3, 4, 5
    images = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, h, w, 3)
    c2w = torch.eye(4)[None].repeat(n, 1, 1)
    full = torch.full((n,), 4.0)
    cams = Cameras(
        c2w=c2w, fx=full, fy=full, cx=full * 0 + w / 2, cy=full * 0 + h / 2, width=w, height=h
    )
    batcher = RayBatcher(Split(images.contiguous(), cams, ["a", "b", "c"]), 0.1, 5.0, False, 0)
    rays, rgb = batcher.sample(64)
    assert rays.camera is not None and rays.camera.dtype == torch.long
    torch.testing.assert_close(rgb[:, 0], rays.camera.float())  # image k is filled with k
