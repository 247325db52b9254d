"""The optimised NeRF MLP (`_FastMLP`) and encoding against straightforward references.

The reference below is the paper MLP written layer by layer as in the authors' code
(nn.Linear, ReLU, the input concatenated again after layer `skip`, the direction encoding
concatenated per sample). Forward values and every parameter gradient must agree to float
rounding.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from nerfkit.data.scene import SceneMeta
from nerfkit.methods import layers
from nerfkit.methods.nerf import NeRF, NeRFConfig, NeRFMLP
from nerfkit.render.encoding import positional_encoding


def reference_mlp(net: NeRFMLP, x: Tensor, d: Tensor | None) -> tuple[Tensor, Tensor]:
    """The paper MLP, per point: x [P, Cx], d [P, Cd] -> raw sigma [P], rgb [P, 3]."""
    h = x
    n = len(net.pts_linears)
    for i, lin in enumerate(net.pts_linears):
        h = F.relu(h @ lin.weight.t() + lin.bias)
        if i == net.skip and i + 1 < n:
            h = torch.cat([x, h], dim=-1)
    if net.use_viewdirs:
        sigma = (h @ net.alpha_linear.weight.t() + net.alpha_linear.bias)[:, 0]
        feat = h @ net.feature_linear.weight.t() + net.feature_linear.bias
        hv = torch.cat([feat, d], dim=-1)
        hv = F.relu(hv @ net.views_linear.weight.t() + net.views_linear.bias)
        rgb = torch.sigmoid(hv @ net.rgb_linear.weight.t() + net.rgb_linear.bias)
    else:
        out = h @ net.output_linear.weight.t() + net.output_linear.bias
        sigma, rgb = out[:, 3], torch.sigmoid(out[:, :3])
    return sigma, rgb


def reference_encoding(x: Tensor, num_freqs: int, include_pi: bool = False) -> Tensor:
    """gamma(x) by a loop over frequencies: (x, sin 2^0 x, cos 2^0 x, sin 2^1 x, ...)."""
    parts = [x]
    for k in range(num_freqs):
        f = (math.pi if include_pi else 1.0) * 2.0**k
        parts += [torch.sin(f * x), torch.cos(f * x)]
    return torch.cat(parts, dim=-1)


def _grads(net: NeRFMLP) -> dict[str, Tensor]:
    return {k: p.grad.clone() for k, p in net.named_parameters()}


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(
    ("width", "depth", "skip", "views"),
    [(256, 8, 4, True), (32, 4, 1, True), (32, 3, 0, False), (16, 2, 5, True)],
)
def test_fast_mlp_matches_reference_forward_and_gradients(
    width: int, depth: int, skip: int, views: bool, fused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fast path (with oneDNN's fused linear, and with the portable addmm fallback)."""
    if fused and not layers.FUSED_LINEAR:
        pytest.skip("this torch build has no oneDNN fused linear")
    monkeypatch.setattr(layers, "FUSED_LINEAR", fused)
    torch.manual_seed(0)
    n_rays, spr = 7, 5
    net = NeRFMLP(63, 27, width, depth, skip, use_viewdirs=views)
    x = positional_encoding(torch.randn(n_rays * spr, 3), 10)
    d_ray = positional_encoding(F.normalize(torch.randn(n_rays, 3), dim=-1), 4)
    d_pt = d_ray[:, None].expand(n_rays, spr, 27).reshape(-1, 27)
    w_sigma, w_rgb = torch.randn(n_rays * spr), torch.randn(n_rays * spr, 3)

    net.zero_grad()
    s_ref, c_ref = reference_mlp(net, x, d_pt if views else None)
    ((s_ref * w_sigma).sum() + (c_ref * w_rgb).sum()).backward()
    g_ref = _grads(net)

    assert net._use_fast(x)
    net.zero_grad()
    s, c = net(x, d_ray if views else None, spr)  # directions per ray
    ((s * w_sigma).sum() + (c * w_rgb).sum()).backward()
    torch.testing.assert_close(s, s_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c, c_ref, rtol=1e-5, atol=1e-6)
    for k, g in _grads(net).items():
        torch.testing.assert_close(g, g_ref[k], rtol=1e-4, atol=1e-5, msg=k)

    # per-point directions (samples_per_dir = 1) and inference (no_grad) agree too
    s1, c1 = net(x, d_pt if views else None)
    torch.testing.assert_close(s1, s_ref, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        s2, c2 = net(x, d_ray if views else None, spr)
    torch.testing.assert_close(s2, s_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c2, c_ref, rtol=1e-5, atol=1e-6)


def test_fast_flag_selects_equivalent_paths() -> None:
    """NeRFMLP.fast = False (the layer-by-layer code) and True give the same outputs."""
    torch.manual_seed(1)
    net = NeRFMLP(63, 27, 64, 8, 4, use_viewdirs=True)
    x = positional_encoding(torch.randn(40, 3), 10)
    d = positional_encoding(F.normalize(torch.randn(8, 3), dim=-1), 4)
    net.fast = False
    s_slow, c_slow = net(x, d, 5)
    net.fast = True
    s_fast, c_fast = net(x, d, 5)
    torch.testing.assert_close(s_fast, s_slow, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c_fast, c_slow, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_takes_reference_path() -> None:
    net = NeRFMLP(63, 27, 32, 2, 0, use_viewdirs=True)
    x = positional_encoding(torch.randn(6, 3), 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not net._use_fast(x)
        s, c = net(x, positional_encoding(torch.randn(3, 3), 4), 2)
    assert s.shape == (6,) and c.shape == (6, 3)


def test_nerf_training_step_gradients_match_reference_mlp() -> None:
    """A whole NeRF forward + loss + backward: the fast path gives the reference gradients."""
    meta = SceneMeta(near=2.0, far=6.0, background=[1.0, 1.0, 1.0])
    torch.manual_seed(0)
    m = NeRF(NeRFConfig(width=64, depth=8, n_coarse=16, n_fine=16, perturb=False), meta)
    g = torch.Generator().manual_seed(0)
    from nerfkit.cameras import Rays

    o = torch.randn(12, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, 4.0])
    dirs = F.normalize(torch.randn(12, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, -1.0]))
    rays = Rays(o, dirs, torch.full((12,), 2.0), torch.full((12,), 6.0))
    true = torch.rand(12, 3, generator=g)

    def run(fast: bool) -> tuple[Tensor, dict[str, Tensor]]:
        m.coarse.fast = m.fine.fast = fast
        m.zero_grad()
        out = m(rays)
        m.loss(out, true)["loss"].backward()
        return out.rgb.detach(), {k: p.grad.clone() for k, p in m.named_parameters()}

    rgb_ref, g_ref = run(False)
    rgb_fast, g_fast = run(True)
    torch.testing.assert_close(rgb_fast, rgb_ref, rtol=1e-5, atol=1e-6)
    for k in g_ref:
        torch.testing.assert_close(g_fast[k], g_ref[k], rtol=1e-3, atol=1e-6, msg=k)


@pytest.mark.parametrize("include_pi", [False, True])
@pytest.mark.parametrize("num_freqs", [0, 1, 4, 10])
def test_encoding_matches_loop_reference(num_freqs: int, include_pi: bool) -> None:
    x = torch.randn(5, 7, 3)
    got = positional_encoding(x, num_freqs, include_pi=include_pi)
    torch.testing.assert_close(got, reference_encoding(x, num_freqs, include_pi), rtol=0, atol=0)
