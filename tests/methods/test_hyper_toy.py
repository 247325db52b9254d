"""HyperNeRF's 2-D toy: a shape that changes topology, fitted with and without an ambient
dimension.

Ported from google/hypernerf `notebooks/figures/sdf_2d.ipynb`: three truncated (0.1) signed
distance fields `circle(0.4, (-t, 0)) | (circle(0.4, (t, 0)) - circle(0.1, (t, 0)))` for
t in (0, 0.25, 0.5) -- one disc, then a disc with a hole, then two discs, one with a hole --
fitted with an L1 loss at random points of [-1, 1]^2 by a template MLP on posenc(x) (4
frequencies, no identity) and, for the ambient model, posenc(w) (1 frequency) of a per-shape
1-d axis-aligned ambient coordinate w (Glorot-initialised, as in the notebook).

The notebook compares hyper-space templates; the deformation-only baseline is the same model
without w: a per-shape code (GLO, 8-d) drives a warp field x' = x + MLP(posenc(x), code)
regularised as Nerfies does -- the elastic loss (log singular values of the warp Jacobian,
Geman-McClure, `render.warp.elastic_loss`) and the background loss on static points at the
border. A near-isometric continuous warp of one template cannot open a hole or split a disc;
the ambient model just takes another slice. Smaller networks and fewer steps than the
notebook's (8 x 128, 4000 steps), so the test takes seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from nerfkit.methods.nerfies import SkipMLP
from nerfkit.perf import one_thread
from nerfkit.render import warp as W
from nerfkit.render.encoding import encoded_dim

TRUNC = 0.1
TIMES = (0.0, 0.25, 0.5)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Small tensors: one thread (`nerfkit.perf.one_thread`), robust to a busy machine."""
    with one_thread():
        yield


def _circle(p: Tensor, radius: float, cx: float) -> Tensor:
    return (p - torch.tensor([cx, 0.0])).norm(dim=-1) - radius


def toy_sdf(p: Tensor, t: float) -> Tensor:
    """The notebook's shapes: union = min, difference a - b = max(a, -b). [N, 2] -> [N]"""
    ring = torch.maximum(_circle(p, 0.4, t), -_circle(p, 0.1, t))
    return torch.minimum(_circle(p, 0.4, -t), ring)


class Toy2D(nn.Module):
    """Warp field + template; with `ambient`, the template also sees w (axis-aligned)."""

    def __init__(self, ambient: bool, freqs: int = 4, warp_freqs: int = 2) -> None:
        super().__init__()
        self.freqs, self.warp_freqs = freqs, warp_freqs
        self.codes = nn.Parameter(torch.rand(len(TIMES), 8) * 0.05)
        self.warp = SkipMLP(encoded_dim(2, warp_freqs) + 8, 3, 32, (), 2,
                            out_init=lambda w: nn.init.uniform_(w, 0.0, 1e-4))  # fmt: skip
        self.w = (
            nn.Parameter(nn.init.xavier_uniform_(torch.empty(len(TIMES), 1))) if ambient else None
        )
        in_dim = encoded_dim(2, freqs, include_input=False) + (2 if ambient else 0)
        self.template = SkipMLP(in_dim, 4, 64, (2,), 1)

    def warped(self, x: Tensor, codes: Tensor) -> Tensor:
        feat = W.windowed_positional_encoding(x, self.warp_freqs)
        return x + self.warp(torch.cat([feat, codes], dim=-1))

    def jacobian(self, x: Tensor, codes: Tensor) -> Tensor:
        def one(p: Tensor, c: Tensor) -> Tensor:
            return self.warped(p[None], c[None])[0]

        return torch.func.vmap(torch.func.jacfwd(one))(x, codes)

    def forward(self, x: Tensor, ids: Tensor) -> Tensor:
        xw = self.warped(x, self.codes[ids])
        feats = [W.windowed_positional_encoding(xw, self.freqs, include_input=False)]
        if self.w is not None:
            feats.append(W.windowed_positional_encoding(self.w[ids], 1, include_input=False))
        return self.template(torch.cat(feats, dim=-1))[..., 0]


def fit(ambient: bool, seed: int = 0, steps: int = 300, batch: int = 128) -> list[float]:
    """Train; returns the mean absolute error of the truncated SDF of each shape on a grid."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = Toy2D(ambient)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    ids = torch.arange(len(TIMES)).repeat_interleave(batch)
    for _ in range(steps):
        x = torch.rand(batch, 2, generator=gen) * 2 - 1
        target = torch.cat([toy_sdf(x, t) for t in TIMES]).clamp(-TRUNC, TRUNC)
        xs = x.repeat(len(TIMES), 1)
        loss = (model(xs, ids) - target).abs().mean()
        sub = torch.randint(len(xs), (64,), generator=gen)
        jac = model.jacobian(xs[sub], model.codes[ids[sub]])
        loss = loss + W.elastic_loss(jac)[0].mean()
        angle = torch.rand(64, generator=gen) * 2 * math.pi
        static = 0.98 * torch.stack([angle.cos(), angle.sin()], dim=-1)
        codes = model.codes[torch.randint(len(TIMES), (64,), generator=gen)]
        loss = loss + W.background_loss(model.warped(static, codes), static).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    u = torch.linspace(-1, 1, 64)
    grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), dim=-1).reshape(-1, 2)
    errors = []
    with torch.no_grad():
        for k, t in enumerate(TIMES):
            pred = model(grid, torch.full((len(grid),), k)).clamp(-TRUNC, TRUNC)
            errors.append(float((pred - toy_sdf(grid, t).clamp(-TRUNC, TRUNC)).abs().mean()))
    return errors


def test_toy_shapes_change_topology() -> None:
    inside = torch.tensor([[0.0, 0.0], [0.25, 0.0], [0.5, 0.0]])
    assert (toy_sdf(inside[:1], 0.0) < 0).all()  # t = 0: one full disc
    assert toy_sdf(inside[1:2], 0.25) > 0  # t = 0.25: a hole has opened
    assert toy_sdf(inside[:1], 0.5) > 0 and toy_sdf(inside[2:], 0.5) > 0  # t = 0.5: split


def test_ambient_dimension_fits_topology_change_that_a_deformation_cannot() -> None:
    deform_only = fit(ambient=False)
    ambient = fit(ambient=True)
    assert sum(ambient) < 0.5 * sum(deform_only), (ambient, deform_only)
