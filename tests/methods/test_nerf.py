"""The paper's NeRF model: architecture, density from position only, hierarchy, losses."""

from __future__ import annotations

import torch

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta
from nerfkit.methods.nerf import NeRF, NeRFConfig, NeRFMLP


def _meta() -> SceneMeta:
    return SceneMeta(near=2.0, far=6.0, background=[1.0, 1.0, 1.0])


def _rays(n: int = 16, seed: int = 0) -> Rays:
    g = torch.Generator().manual_seed(seed)
    o = torch.randn(n, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 4.0])
    d = torch.randn(n, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, -1.0])
    d = d / d.norm(dim=-1, keepdim=True)
    return Rays(o, d, torch.full((n,), 2.0), torch.full((n,), 6.0))


def test_paper_architecture_sizes() -> None:
    m = NeRF(NeRFConfig(), _meta())
    net = m.coarse
    assert m.in_pos == 63 and m.in_dir == 27
    widths = [(lin.in_features, lin.out_features) for lin in net.pts_linears]
    # 8 x 256, the input concatenated again into the sixth layer (after the fifth)
    assert widths == [(63, 256)] + [(256, 256)] * 4 + [(256 + 63, 256)] + [(256, 256)] * 2
    assert (net.alpha_linear.in_features, net.alpha_linear.out_features) == (256, 1)
    assert (net.feature_linear.in_features, net.feature_linear.out_features) == (256, 256)
    assert (net.views_linear.in_features, net.views_linear.out_features) == (256 + 27, 128)
    assert (net.rgb_linear.in_features, net.rgb_linear.out_features) == (128, 3)
    n_params = sum(p.numel() for p in net.parameters())
    expected = (
        (63 * 256 + 256) + 4 * (256 * 256 + 256) + (319 * 256 + 256) + 2 * (256 * 256 + 256)
        + (256 + 1) + (256 * 256 + 256) + (283 * 128 + 128) + (128 * 3 + 3)
    )  # fmt: skip
    assert n_params == expected == 595_844  # the reference implementation's count
    assert m.fine is not None and sum(p.numel() for p in m.fine.parameters()) == n_params


def test_density_depends_on_position_only_colour_on_direction() -> None:
    torch.manual_seed(0)
    net = NeRFMLP(63, 27, 64, 4, 1, use_viewdirs=True)
    x = torch.randn(10, 63)
    d1, d2 = torch.randn(10, 27), torch.randn(10, 27)
    s1, c1 = net(x, d1)
    s2, c2 = net(x, d2)
    torch.testing.assert_close(s1, s2)
    assert (c1 - c2).abs().max() > 1e-4
    assert c1.min() >= 0 and c1.max() <= 1


def test_no_view_dependence_ignores_direction() -> None:
    torch.manual_seed(0)
    m = NeRF(NeRFConfig(width=32, depth=2, skip=0, use_viewdirs=False), _meta()).eval()
    r = _rays()
    out1 = m(r)
    r2 = Rays(r.origins, r.directions, r.near, r.far, viewdirs=-r.viewdirs)
    out2 = m(r2)
    torch.testing.assert_close(out1.rgb, out2.rgb)
    assert m.in_dir == 0


def test_hierarchy_outputs_and_loss() -> None:
    torch.manual_seed(0)
    cfg = NeRFConfig(width=32, depth=2, skip=0, n_coarse=16, n_fine=24)
    m = NeRF(cfg, _meta()).train()
    out = m(_rays(8))
    assert out.rgb.shape == (8, 3) and out.depth.shape == (8,) and out.acc.shape == (8,)
    assert out.coarse.samples.t.shape == (8, 16) and out.t_fine.shape == (8, 24)
    assert out.samples.t.shape == (8, 40)
    assert torch.all(out.samples.t[:, 1:] >= out.samples.t[:, :-1])  # merged samples sorted
    assert torch.all((out.t_fine >= 2.0) & (out.t_fine <= 6.0))
    true = torch.rand(8, 3)
    losses = m.loss(out, true)
    mse_f = torch.mean((out.rgb - true) ** 2)
    mse_c = torch.mean((out.coarse.rgb - true) ** 2)
    torch.testing.assert_close(losses["loss"], mse_f + mse_c)
    losses["loss"].backward()
    assert all(p.grad is not None for p in m.parameters())


def test_coarse_only_has_no_fine_network() -> None:
    m = NeRF(NeRFConfig(width=32, depth=2, skip=0, n_coarse=16, n_fine=0), _meta())
    assert m.fine is None
    out = m(_rays(4))
    assert out.t_fine is None
    torch.testing.assert_close(out.rgb, out.coarse.rgb)


def test_empty_field_renders_background() -> None:
    m = NeRF(NeRFConfig(width=16, depth=2, skip=0, n_coarse=8, n_fine=8), _meta()).eval()
    for p in m.parameters():
        torch.nn.init.zeros_(p)
    out = m(_rays(4))  # relu(0) density everywhere: nothing there, white background
    torch.testing.assert_close(out.rgb, torch.ones(4, 3))
    torch.testing.assert_close(out.acc, torch.zeros(4))


def test_chunked_query_matches_unchunked() -> None:
    torch.manual_seed(0)
    cfg = NeRFConfig(width=32, depth=3, skip=1, n_coarse=16, n_fine=16, chunk_points=50)
    m = NeRF(cfg, _meta()).eval()
    r = _rays(12)
    with torch.no_grad():
        a = m(r)
    m.config.chunk_points = 10**6
    with torch.no_grad():
        b = m(r)
    torch.testing.assert_close(a.rgb, b.rgb)
    torch.testing.assert_close(a.depth, b.depth)
