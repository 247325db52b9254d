"""D-NeRF (Pumarola et al. 2021): a deformation MLP maps each point at time t into a canonical
NeRF, x -> x + dx(gamma(x), gamma(t)), with dx = 0 at t = 0 (the canonical time).

Followed from albertpumarola/D-NeRF:
- `run_dnerf_helpers.py`, `DirectTemporalNeRF`: the deformation network (`create_time_net`,
  `query_time`) is D layers of W ReLU units on cat(gamma(x), gamma(t)), gamma(x) (not gamma(t))
  concatenated again after layer `skips = [4]`, then a linear layer to dx [3] (PyTorch's
  default initialisation, so dx is not zero at the start except at t = 0); the canonical
  network is `NeRFOriginal` = nerfkit's `NeRFMLP` (the same D, W and skip) evaluated on
  gamma(x + dx); `zero_canonical`: dx = 0 where t = 0 (the release tests the batch's one
  time; nerfkit's batches mix times, so the test is per ray).
- `run_dnerf.py`, `create_nerf` / `render_rays` and `configs/*.txt` (all scenes: nerf_type
  direct_temporal, use_viewdirs, N_samples 64, N_importance 128, N_rand 500, lrate 5e-4,
  multires 10 for x *and* t, multires_views 4, raw_noise_std 0, white background):
  by default (`use_two_models_for_fine` off) there is ONE network; the coarse pass runs it
  without gradients only to place the importance samples, and the loss is the MSE of the fine
  pass alone. `two_models=True` is the release's `--use_two_models_for_fine`: a second
  (deformation + canonical) network for the fine pass and the coarse MSE added to the loss.
- The release's optional `--add_tv_loss` / `--add_deformation_regularization` are off in all
  its configs and are not implemented.

Where the release departs from NeRF's scheme, on which the paper builds: NeRF trains separate
coarse and fine networks; the release's configs use the single network above (the default
here; `--dnerf.two-models` gives NeRF's two). As released, every step's rays come from one frame
(`no_batching`; `--dnerf.one-image-per-step False` draws across frames) and, over the first
10k steps (`precrop_iters_time`), only from the earliest max(3, N step / 10k) frames
(`--dnerf.time-curriculum-steps`); the release's `precrop_iters = 500` (central crops) is
`nerfkit train --precrop-steps 500`. Its learning
rate decays by 0.1 per 500k steps over 800k; nerfkit's Trainer decays exponentially from
`lr` to `lr_final` over the run (defaults 5e-4 -> 5e-5, one release decay period).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta
from nerfkit.methods.base import RaySamples, RenderOutput
from nerfkit.methods.nerf import NeRF, NeRFConfig, NeRFMLP
from nerfkit.render.encoding import encoded_dim, positional_encoding
from nerfkit.render.sampling import merge_samples, sample_pdf, stratified_samples
from nerfkit.render.volume import composite, render_along_rays, sample_deltas


@dataclass
class DNeRFConfig(NeRFConfig):
    """D-NeRF as released (configs/*.txt); the canonical NeRF's options are NeRF's."""

    time_freqs: int = 10
    """L for the time t (the release encodes t with `multires`, as positions)."""
    deform_width: int = 256
    """Width of the deformation MLP (the release: netwidth, as the canonical network)."""
    deform_depth: int = 8
    """Layers of the deformation MLP (the release: netdepth)."""
    deform_skip: int = 4
    """gamma(x) is concatenated again after this layer of the deformation MLP."""
    zero_canonical: bool = True
    """dx = 0 at t = 0: time 0 is the canonical space (the release's default)."""
    one_image_per_step: bool = True
    """Every step's rays come from one random frame (the release's `no_batching = True`);
    False: across all frames, as nerfkit's other methods."""
    time_curriculum_steps: int = 10000
    """For this many steps the frame is drawn among the earliest max(3, N step / this) of the
    N training frames (the release's `precrop_iters_time = 10000`, of its 800k steps); 0: off."""
    two_models: bool = False
    """A second network for the fine pass and the coarse loss added (the release's
    --use_two_models_for_fine; NeRF's coarse + fine). Off: one network, the coarse pass
    without gradients."""


class DeformationMLP(nn.Module):
    """The release's time network: [P, Cx] gamma(x) and [P, Ct] gamma(t) -> dx [P, 3]."""

    def __init__(self, in_pos: int, in_time: int, width: int, depth: int, skip: int) -> None:
        super().__init__()
        self.skip = skip
        layers = [nn.Linear(in_pos + in_time, width)]
        layers += [nn.Linear(width + (in_pos if i == skip else 0), width) for i in range(depth - 1)]
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(width, 3)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = torch.cat([x, t], dim=-1)
        for i, layer in enumerate(self.layers):
            h = F.relu(layer(h))
            if i == self.skip and i + 1 < len(self.layers):
                h = torch.cat([x, h], dim=-1)
        return self.out(h)


class TemporalNeRF(nn.Module):
    """One D-NeRF network: a deformation MLP into a canonical NeRF MLP."""

    def __init__(self, deform: DeformationMLP, canonical: NeRFMLP) -> None:
        super().__init__()
        self.deform, self.canonical = deform, canonical


class DNeRF(NeRF):
    """D-NeRF: deformation to a canonical space, hierarchical sampling as released."""

    train_defaults = {"lr": 5e-4, "lr_final": 5e-5, "batch_rays": 500}

    def __init__(self, config: DNeRFConfig, meta: SceneMeta) -> None:
        super().__init__(config, meta)
        c = self.config = config
        self.in_time = encoded_dim(1, c.time_freqs)

        def network() -> TemporalNeRF:
            deform = DeformationMLP(
                self.in_pos, self.in_time, c.deform_width, c.deform_depth, c.deform_skip
            )
            canonical = NeRFMLP(self.in_pos, self.in_dir, c.width, c.depth, c.skip, c.use_viewdirs)
            return TemporalNeRF(deform, canonical)

        self.coarse = network()  # type: ignore[assignment]
        self.fine = network() if c.two_models and c.n_fine > 0 else None  # type: ignore[assignment]
        self.one_image_per_step = c.one_image_per_step
        self.frame_times = sorted(meta.train_times)

    def max_train_time(self, step: int, progress: float = 0.0) -> float | None:
        """The release's curriculum: the time of the max(3, N step / time_curriculum_steps)-th
        earliest of the N training frames until `time_curriculum_steps`, then None (all)."""
        steps, times = self.config.time_curriculum_steps, self.frame_times
        if steps <= 0 or step >= steps or not times:
            return None
        k = max(int(step / steps * len(times)), 3)
        return times[min(k, len(times)) - 1]

    def deformation(self, net: DeformationMLP, points: Tensor, time: Tensor | None) -> Tensor:
        """dx of points [R, S, 3] at the rays' times [R] (None: t = 0). Returns [R, S, 3]."""
        c = self.config
        r, s = points.shape[:2]
        t = points.new_zeros(r) if time is None else time.to(points)
        t = t[:, None, None].expand(r, s, 1).reshape(-1, 1)
        x = positional_encoding(points.reshape(-1, 3), c.pos_freqs, include_pi=c.include_pi)
        te = positional_encoding(t, c.time_freqs, include_pi=c.include_pi)
        with self._autocast():
            dx = net(x, te).float()
        if c.zero_canonical:
            dx = torch.where(t == 0, torch.zeros_like(dx), dx)
        return dx.reshape(r, s, 3)

    def render_samples(self, net: TemporalNeRF, rays: Rays, t: Tensor) -> RenderOutput:  # type: ignore[override]
        """Volume-render rays with samples at distances t [R, S]: deform each sample into the
        canonical space, query the canonical NeRF there; `displacement` is dx averaged with the
        compositing weights (like depth)."""
        pts = rays.origins[:, None, :] + t[..., None] * rays.directions[:, None, :]
        dx = self.deformation(net.deform, pts, rays.time)
        raw, rgb = self.query(net.canonical, pts + dx, rays.viewdirs)
        sigma = self._activate(raw)
        deltas = sample_deltas(t) * rays.directions.norm(dim=-1, keepdim=True)
        out = render_along_rays(sigma, rgb, t, deltas, self.background)
        samples = RaySamples(t, sigma, out["weights"], out["trans"])
        disp = composite(out["weights"], dx) / out["acc"].clamp(min=1e-10)[:, None]  # like depth
        return RenderOutput(
            out["rgb"], out["depth"], out["acc"], samples=samples, displacement=disp
        )

    def forward(self, rays: Rays) -> RenderOutput:
        """The release's rendering: with one network (default) the coarse pass runs without
        gradients and only places the importance samples, the one network then renders the
        union of coarse and fine samples; with `two_models`, NeRF's coarse + fine."""
        c = self.config
        if self.fine is not None or c.n_fine == 0:
            return super().forward(rays)
        train = self.training and c.perturb
        t_c = stratified_samples(rays.near, rays.far, c.n_coarse, perturb=train, lindisp=c.lindisp)
        with torch.no_grad():
            coarse = self.render_samples(self.coarse, rays, t_c)  # type: ignore[arg-type]
        mids = 0.5 * (t_c[:, 1:] + t_c[:, :-1])
        t_f = sample_pdf(mids, coarse.samples.weights[:, 1:-1], c.n_fine, deterministic=not train)
        fine = self.render_samples(self.coarse, rays, merge_samples(t_c, t_f))  # type: ignore[arg-type]
        return replace(fine, coarse=coarse, t_fine=t_f)
