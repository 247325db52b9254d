"""The paper MLP's fused forward and hand-written backward (exact, fp32): the fast path of
`nerfkit.methods.nerf.NeRFMLP`.

The same function as the layer-by-layer MLP (to float rounding), with fewer passes over memory:
bias and ReLU fused into in-place ops (oneDNN's fused linear on CPU where available, see
`layers.fused_linear`); the concatenation at the skip layer replaced by a split weight; the view
branch's direction term computed once per ray and broadcast over its samples; in the backward
pass, ReLU derivatives applied in place, two gradient buffers reused and every activation freed
as soon as it is used. tests/methods/test_nerf_fast_paths.py checks values and gradients against
the straightforward code.

Parameter layout (`params`): W_0, b_0, ..., W_{depth-1}, b_{depth-1}, then with view dependence
W_alpha, b_alpha, W_feature, b_feature, W_views[:, :width], W_rgb, b_rgb, else W_output, b_output.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from nerfkit.methods import layers


class MLPArch(NamedTuple):
    """The shape of the paper MLP: `depth` trunk layers, the input concatenated again after
    layer `skip`, `in_pos` encoded position channels, and whether colour sees the direction."""

    depth: int
    skip: int
    in_pos: int
    use_viewdirs: bool


def fast_mlp(
    x: Tensor, dterm: Tensor | None, arch: MLPArch, params: tuple[Tensor, ...]
) -> tuple[Tensor, Tensor]:
    """The paper MLP on encoded positions, differentiable in `params` (and `dterm`) where
    autograd needs it.

    Args:
        x: [P, in_pos] encoded positions, P = R * S grouped ray by ray; must not require grad.
        dterm: [R, width / 2] the direction half of the view layer, W_d gamma(d) + b, per ray
            (None without view dependence).
        params: the weights in the module docstring's layout.
    Returns:
        raw sigma [P, 1], raw (pre-sigmoid) rgb [P, 3].
    """
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        return _FastMLP.apply(x, dterm, arch, *params)
    with torch.no_grad():
        sigma, rgb, _ = _mlp_forward(x, dterm, params, arch, keep=False)
    return sigma, rgb


def _relu_grad_(grad: Tensor, out: Tensor) -> Tensor:
    """grad *= (out > 0) in place: the ReLU derivative, from the ReLU's output."""
    return torch.ops.aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)


def _skip_linear_relu(x: Tensor, h: Tensor, w: Tensor, b: Tensor, in_pos: int) -> Tensor:
    """relu(w @ cat([x, h]) + b) without the concatenation: w[:, :in_pos] x + w[:, in_pos:] h."""
    xpart = torch.mm(x, w[:, :in_pos].t())
    if layers.FUSED_LINEAR and h.device.type == "cpu":
        # (a strided weight view sends oneDNN to a reference kernel ~1000x slower: copy it)
        w_h = w[:, in_pos:].contiguous()
        out = torch.ops.mkldnn._linear_pointwise.binary(h, xpart, w_h, b, "add")
    else:
        out = xpart.add_(b).addmm_(h, w[:, in_pos:].t())
    return out.relu_()


def _mlp_forward(
    x: Tensor, dterm: Tensor | None, params: tuple[Tensor, ...], arch: MLPArch, keep: bool
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """The paper MLP with fused, in-place ops (parameter layout: the module docstring).

    Returns raw sigma [P, 1], raw (pre-sigmoid) rgb [P, 3], and, when `keep`, the activations
    the backward pass needs (trunk outputs h_0..h_{depth-1}, then feature and view activations).
    """
    depth, skip, in_pos, use_viewdirs = arch
    saved: list[Tensor] = []
    h = x
    for i in range(depth):
        w, b = params[2 * i], params[2 * i + 1]
        if 0 < i == skip + 1:  # this layer sees cat([x, h]): split its weight instead
            h = _skip_linear_relu(x, h, w, b, in_pos)
        else:
            h = layers.fused_linear(h, w, b, relu=True)
        if keep:
            saved.append(h)
    k = 2 * depth
    if use_viewdirs:
        wa, ba, wf, bf, wvf, wr, br = params[k : k + 7]
        sigma = torch.addmm(ba, h, wa.t())
        feat = layers.fused_linear(h, wf, bf, relu=False)
        del h
        v = torch.mm(feat, wvf.t())  # [P, W/2]
        r = dterm.shape[0]
        v.view(r, -1, v.shape[-1]).add_(dterm[:, None, :])  # per-ray direction term + bias
        v.relu_()
        rgb = torch.addmm(br, v, wr.t())
        if keep:
            saved += [feat, v]
    else:
        wo, bo = params[k : k + 2]
        out4 = torch.addmm(bo, h, wo.t())
        sigma, rgb = out4[:, 3:].contiguous(), out4[:, :3].contiguous()
    return sigma, rgb, saved


class _FastMLP(torch.autograd.Function):
    """Forward and hand-written backward of the paper MLP (exact, fp32).

    Compared with composing nn.Linear / F.relu / torch.cat under autograd, this:
    fuses bias and ReLU into in-place ops; replaces the concatenation at the skip layer by a
    split weight (W [x, h] = W_x x + W_h h), so neither the cat nor the gradient of the
    (constant) encoded input is computed; takes the view branch's direction term
    W_d gamma(d) + b per ray (computed once per ray by the caller, broadcast over its samples);
    and in the backward pass applies the ReLU derivatives in place, reuses two gradient
    buffers, and frees each activation as soon as it is used. The input x must not require
    grad.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        dterm: Tensor | None,
        arch: MLPArch,
        *params: Tensor,
    ) -> tuple[Tensor, Tensor]:
        sigma, rgb, saved = _mlp_forward(x, dterm, params, arch, keep=True)
        ctx.arch = arch
        ctx.save_for_backward(x, *params)  # inputs: autograd checks they are not modified
        ctx.saved = saved  # intermediates, freed one by one in backward (not double-differentiable)
        ctx.n_rays = None if dterm is None else dterm.shape[0]
        return sigma, rgb

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, g_sigma: Tensor | None, g_rgb: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        depth, skip, in_pos, use_viewdirs = ctx.arch
        saved = ctx.saved
        if saved is None:
            raise RuntimeError(
                "NeRFMLP fast path: backward ran twice through the same forward; set "
                "NeRFMLP.fast = False to use retain_graph"
            )
        ctx.saved = None
        x, *params = ctx.saved_tensors
        n = x.shape[0]
        if g_sigma is None:
            g_sigma = x.new_zeros(n, 1)
        if g_rgb is None:
            g_rgb = x.new_zeros(n, 3)
        grads: list[Tensor | None] = [None] * len(params)
        k = 2 * depth
        g_dterm = None
        h = saved[depth - 1]
        if use_viewdirs:
            wa, _, wf, _, wvf, wr, _ = params[k : k + 7]
            v = saved.pop()
            feat = saved.pop()
            grads[k + 5] = g_rgb.t().mm(v)
            grads[k + 6] = g_rgb.sum(0)
            g_v = _relu_grad_(torch.mm(g_rgb, wr), v)
            del v
            g_dterm = g_v.view(ctx.n_rays, -1, g_v.shape[-1]).sum(1)
            grads[k + 4] = g_v.t().mm(feat)
            del feat
            g_feat = torch.mm(g_v, wvf)
            del g_v
            grads[k + 2] = g_feat.t().mm(h)
            grads[k + 3] = g_feat.sum(0)
            grads[k] = g_sigma.t().mm(h)
            grads[k + 1] = g_sigma.sum(0)
            g_h = torch.mm(g_feat, wf)
            g_h.addmm_(g_sigma, wa)
            del g_feat
        else:
            wo = params[k]
            g_out = torch.cat([g_rgb, g_sigma], dim=1)
            grads[k] = g_out.t().mm(h)
            grads[k + 1] = g_out.sum(0)
            g_h = torch.mm(g_out, wo)
        spare: Tensor | None = None
        for i in range(depth - 1, -1, -1):
            w = params[2 * i]
            h = saved.pop()
            _relu_grad_(g_h, h)
            del h
            grads[2 * i + 1] = g_h.sum(0)
            inp = saved[-1] if i > 0 else x
            if 0 < i == skip + 1:
                grads[2 * i] = torch.cat([g_h.t().mm(x), g_h.t().mm(inp)], dim=1)
                w_in = w[:, in_pos:]
            else:
                grads[2 * i] = g_h.t().mm(inp)
                w_in = w
            if i > 0:
                if spare is None:
                    spare = torch.empty_like(g_h)
                g_prev = torch.mm(g_h, w_in, out=spare)
                spare, g_h = g_h, g_prev
        return (None, g_dterm, None, *grads)
