"""The original NeRF (Mildenhall et al. 2020): coarse + fine MLPs with hierarchical sampling.

Faithful to the paper and the authors' reference code: positional encoding with L = 10 for
position and L = 4 for direction; 8 x 256 ReLU MLP with the input concatenated again after the
fifth layer; density from position only; a 256-d feature plus the encoded direction -> 128 -> RGB;
stratified coarse samples plus inverse-CDF fine samples drawn from the coarse weights, the fine
network evaluating the union of both; loss = MSE(coarse) + MSE(fine).
Every ablation of the paper is a field of `NeRFConfig`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta
from nerfkit.methods.base import Method, RaySamples, RenderOutput
from nerfkit.methods.nerf_fast import MLPArch, fast_mlp
from nerfkit.perf import resolve_precision
from nerfkit.render.encoding import encoded_dim, positional_encoding
from nerfkit.render.sampling import merge_samples, sample_pdf, stratified_samples
from nerfkit.render.volume import render_along_rays, sample_deltas


@dataclass
class NeRFConfig:
    """The paper's model; defaults are the paper's configuration."""

    pos_freqs: int = 10
    """L for positions (0 = no positional encoding)."""
    dir_freqs: int = 4
    """L for viewing directions (0 = raw direction)."""
    include_pi: bool = False
    """Multiply encoding frequencies by pi as the paper writes (the reference code does not)."""
    use_viewdirs: bool = True
    """View-dependent colour; False: colour from position only (paper ablation)."""
    n_coarse: int = 64
    """Stratified samples per ray for the coarse network."""
    n_fine: int = 128
    """Importance samples per ray for the fine network (0 = no hierarchy, coarse only)."""
    width: int = 256
    depth: int = 8
    skip: int = 4
    """Index of the layer after which the input is concatenated again (reference: 4)."""
    density_activation: Literal["relu", "softplus"] = "relu"
    density_bias: float | None = 0.0
    """Added to the raw density before its activation (0: the papers and releases; mip-NeRF's
    release: -1). Negative values start the field nearly transparent: on a white-background
    scene a field that starts opaque everywhere can turn every colour white before it has
    carved out any empty space, and stop learning (docs/dynamic.md). None: 0 here; `nerfies`
    and `hypernerf` choose it from the scene (`NerfiesConfig.density_bias`)."""
    raw_noise_std: float = 0.0
    """Std of noise added to raw density while training (paper: 1.0 on LLFF, 0 on synthetic)."""
    lindisp: bool = False
    """Sample linearly in inverse depth rather than depth."""
    perturb: bool = True
    """Jitter stratified samples while training."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Matrix maths in bf16 with fp32 accumulation (torch autocast; the layer-by-layer MLP), or
    fp32. `auto`: bf16 on CPUs with AMX (Intel Sapphire Rapids and later: the paper model trains
    2.4x faster there, to the same PSNR), fp32 elsewhere. Without AMX (AVX-512 BF16 only, e.g.
    AMD Zen 4) bf16 products run at about 0.57x the fp32 rate, so fp32 through the fused fast
    path is quicker; see BENCHMARKS.md."""
    chunk_points: int = 65536
    """Points per MLP call when rendering without gradients (bounds memory)."""


class NeRFMLP(nn.Module):
    """The paper's MLP.

    Input: encoded position [P, Cx] and encoded direction, either per point [P, Cd] or per
    ray [R, Cd] with the P = R * S points grouped ray by ray (`samples_per_dir` = S). Output:
    raw density [P] and RGB in [0, 1] [P, 3].

    In fp32 (no autocast) and when x needs no gradient, the evaluation goes through
    `nerf_fast.fast_mlp`, which computes the same function (to float rounding) with fewer passes
    over memory; `fast = False`, autocast (bf16), or a differentiable x select the
    straightforward layer-by-layer code.
    """

    def __init__(
        self, in_pos: int, in_dir: int, width: int, depth: int, skip: int, use_viewdirs: bool
    ) -> None:
        super().__init__()
        self.skip, self.use_viewdirs = skip, use_viewdirs
        self.in_pos, self.width, self.depth = in_pos, width, depth
        self.fast = True
        layers = []
        for i in range(depth):
            d_in = in_pos if i == 0 else width + (in_pos if i == skip + 1 else 0)
            layers.append(nn.Linear(d_in, width))
        self.pts_linears = nn.ModuleList(layers)
        if use_viewdirs:
            self.alpha_linear = nn.Linear(width, 1)
            self.feature_linear = nn.Linear(width, width)
            self.views_linear = nn.Linear(width + in_dir, width // 2)
            self.rgb_linear = nn.Linear(width // 2, 3)
        else:
            self.output_linear = nn.Linear(width, 4)

    def _use_fast(self, x: Tensor) -> bool:
        w = self.pts_linears[0].weight
        return (
            self.fast
            and x.dtype == w.dtype == torch.float32
            and not x.requires_grad
            and not torch.is_autocast_enabled(x.device.type)
        )

    def forward(
        self, x: Tensor, d: Tensor | None, samples_per_dir: int = 1
    ) -> tuple[Tensor, Tensor]:
        if self._use_fast(x):
            return self._forward_fast(x, d)
        if self.use_viewdirs and d is not None and samples_per_dir > 1:
            d = d[:, None, :].expand(-1, samples_per_dir, d.shape[-1]).reshape(x.shape[0], -1)
        return self._forward_reference(x, d)

    def _forward_reference(self, x: Tensor, d: Tensor | None) -> tuple[Tensor, Tensor]:
        h = x
        for i, layer in enumerate(self.pts_linears):
            h = F.relu(layer(h))
            if i == self.skip and i + 1 < len(self.pts_linears):
                h = torch.cat([x, h], dim=-1)
        if self.use_viewdirs:
            sigma = self.alpha_linear(h)[..., 0]
            feat = self.feature_linear(h)
            h = F.relu(self.views_linear(torch.cat([feat, d], dim=-1)))
            rgb = self.rgb_linear(h)
        else:
            out = self.output_linear(h)
            sigma, rgb = out[..., 3], out[..., :3]
        return sigma, torch.sigmoid(rgb)

    def _fast_params(self) -> tuple[Tensor, ...]:
        ps: list[Tensor] = []
        for lin in self.pts_linears:
            ps += [lin.weight, lin.bias]
        if self.use_viewdirs:
            ps += [self.alpha_linear.weight, self.alpha_linear.bias]
            ps += [self.feature_linear.weight, self.feature_linear.bias]
            ps += [self.views_linear.weight[:, : self.width]]
            ps += [self.rgb_linear.weight, self.rgb_linear.bias]
        else:
            ps += [self.output_linear.weight, self.output_linear.bias]
        return tuple(ps)

    def _forward_fast(self, x: Tensor, d: Tensor | None) -> tuple[Tensor, Tensor]:
        dterm = None
        if self.use_viewdirs:
            if d is None:
                raise ValueError("NeRFMLP with view dependence needs directions d")
            # the direction half of views_linear (and its bias), once per ray
            dterm = F.linear(d, self.views_linear.weight[:, self.width :], self.views_linear.bias)
        arch = MLPArch(self.depth, self.skip, self.in_pos, self.use_viewdirs)
        sigma, rgb = fast_mlp(x, dterm, arch, self._fast_params())
        return sigma[:, 0], torch.sigmoid(rgb)


class NeRF(Method):
    """Coarse and fine NeRF networks with hierarchical volume sampling."""

    def __init__(self, config: NeRFConfig, meta: SceneMeta) -> None:
        super().__init__(meta)
        c = self.config = config
        self.density_bias = float(c.density_bias or 0.0)
        self.in_pos = encoded_dim(3, c.pos_freqs)
        self.in_dir = encoded_dim(3, c.dir_freqs) if c.use_viewdirs else 0

        def mlp() -> NeRFMLP:
            return NeRFMLP(self.in_pos, self.in_dir, c.width, c.depth, c.skip, c.use_viewdirs)

        self.coarse = mlp()
        self.fine = mlp() if c.n_fine > 0 else None

    # -- field evaluation -------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if resolve_precision(self.config.precision, self.background.device) == "bf16":
            return torch.autocast(self.background.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def query(self, net: NeRFMLP, points: Tensor, viewdirs: Tensor) -> tuple[Tensor, Tensor]:
        """Raw density and colour at points.

        Args:
            points: [R, S, 3]; viewdirs: [R, 3] unit directions.
        Returns:
            raw sigma [R, S] (before activation), rgb [R, S, 3] (fp32).
        """
        c = self.config
        r, s = points.shape[:2]
        x = positional_encoding(points.reshape(-1, 3), c.pos_freqs, include_pi=c.include_pi)
        # directions are encoded once per ray; the MLP broadcasts them over the ray's samples
        d = None
        if c.use_viewdirs:
            d = positional_encoding(viewdirs, c.dir_freqs, include_pi=c.include_pi)  # [R, Cd]
        if torch.is_grad_enabled() or r * s <= c.chunk_points:
            with self._autocast():
                sigma, rgb = net(x, d, s)
        else:
            rays_per_chunk = max(1, c.chunk_points // s)
            parts = []
            for i in range(0, r, rays_per_chunk):
                with self._autocast():
                    parts.append(
                        net(
                            x[i * s : (i + rays_per_chunk) * s],
                            None if d is None else d[i : i + rays_per_chunk],
                            s,
                        )
                    )
            sigma = torch.cat([p[0] for p in parts])
            rgb = torch.cat([p[1] for p in parts])
        return sigma.float().reshape(r, s), rgb.float().reshape(r, s, 3)

    def _activate(self, raw: Tensor) -> Tensor:
        if self.training and self.config.raw_noise_std > 0:
            raw = raw + torch.randn_like(raw) * self.config.raw_noise_std
        if self.density_bias:
            raw = raw + self.density_bias
        if self.config.density_activation == "softplus":
            return F.softplus(raw)
        return F.relu(raw)

    def render_samples(self, net: NeRFMLP, rays: Rays, t: Tensor) -> RenderOutput:
        """Volume-render rays with samples at distances t [R, S] through network `net`
        (the output keeps its samples)."""
        pts = rays.origins[:, None, :] + t[..., None] * rays.directions[:, None, :]
        raw, rgb = self.query(net, pts, rays.viewdirs)
        sigma = self._activate(raw)
        # distances along non-unit (NDC) directions are scaled to true lengths
        deltas = sample_deltas(t) * rays.directions.norm(dim=-1, keepdim=True)
        out = render_along_rays(sigma, rgb, t, deltas, self.background)
        samples = RaySamples(t, sigma, out["weights"], out["trans"])
        return RenderOutput(out["rgb"], out["depth"], out["acc"], samples=samples)

    def _render_points(
        self, points: Tensor, viewdirs: Tensor | None, time: float | None
    ) -> RenderOutput:
        """`render_samples` of the network that renders the final image (fine, else coarse) on
        one-sample rays at points [P, 3]: subclasses' deformations, warps and per-time codes
        apply as in rendering. A lone sample's interval is infinite, so its opacity is 1
        wherever sigma > 0 and the rendered colour is the sample's."""
        net = self.fine if self.fine is not None else self.coarse
        rays = Rays.at_points(points, viewdirs, time)
        return self.render_samples(net, rays, points.new_zeros(points.shape[0], 1))

    def point_density(self, points: Tensor, time: float | None = None) -> Tensor:
        """Density [P] at points [P, 3] (fine network)."""
        return self._render_points(points, None, time).samples.sigma[:, 0]

    def point_radiance(self, points: Tensor, viewdirs: Tensor, time: float | None = None) -> Tensor:
        """Colour [P, 3] at points [P, 3] seen along viewdirs [P, 3] (fine network): the
        rendered colour of a one-sample ray, un-composited from the background where its
        density is zero."""
        out = self._render_points(points, viewdirs, time)
        a = out.acc[:, None]
        bg = self.background.to(out.rgb)
        rgb = torch.where(a > 1e-6, (out.rgb - (1 - a) * bg) / a.clamp(min=1e-6), out.rgb)
        return rgb.clamp(0, 1)

    def forward(self, rays: Rays) -> RenderOutput:
        """Coarse pass on stratified samples; fine pass on the union of those and importance
        samples drawn from the coarse weights. Returns the fine output (the coarse one without
        a fine network), with the coarse pass in `coarse` and the importance samples in
        `t_fine`."""
        c = self.config
        t_c = stratified_samples(
            rays.near,
            rays.far,
            c.n_coarse,
            perturb=self.training and c.perturb,
            lindisp=c.lindisp,
        )
        coarse = self.render_samples(self.coarse, rays, t_c)
        if self.fine is None:
            return replace(coarse, coarse=coarse)
        mids = 0.5 * (t_c[:, 1:] + t_c[:, :-1])
        t_f = sample_pdf(
            mids,
            coarse.samples.weights[:, 1:-1],
            c.n_fine,
            deterministic=not (self.training and c.perturb),
        )
        fine = self.render_samples(self.fine, rays, merge_samples(t_c, t_f))
        return replace(fine, coarse=coarse, t_fine=t_f)

    def loss(self, out: RenderOutput, rgb_true: Tensor) -> dict[str, Tensor]:
        """MSE of the fine colour plus MSE of the coarse colour (coarse only: its MSE)."""
        mse = torch.mean((out.rgb - rgb_true) ** 2)
        losses = {"mse": mse}
        total = mse
        if self.fine is not None:
            mse_c = torch.mean((out.coarse.rgb - rgb_true) ** 2)
            losses["mse_coarse"] = mse_c
            total = total + mse_c
        losses["loss"] = total
        return losses

    @property
    def eval_chunk_rays(self) -> int:  # type: ignore[override]
        """Rays per forward call when rendering whole images."""
        per_ray = self.config.n_coarse + self.config.n_fine
        return max(256, self.config.chunk_points // max(per_ray, 1) * 2)
