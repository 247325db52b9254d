"""Nerfies (Park et al. 2021, "Nerfies: Deformable Neural Radiance Fields"): per-frame latent
codes drive an SE(3) warp field from the observation frame into a template NeRF, with
coarse-to-fine annealing of the warp's positional encoding and elastic and background
regularisers.

Followed from google/nerfies (final release, commit a6f604e), defaults = the paper's
quantitative configuration `configs/gpu_vrig_paper.gin`:
- `nerfies/warping.py` `SE3Field`: a trunk MLP (6 x 128 ReLU, the input concatenated again
  *before* the 5th layer, `skips=(4,)`, Xavier-uniform weights, zero biases) on
  cat(windowed gamma(x), warp code); linear heads to w [3] and v [3] initialised
  U[0, 1e-4) with zero biases, so the warp starts within a few 1e-3 of the identity;
  theta = |w|, x' = exp_se3((w, v) / theta, theta) x (`render.warp.screw_warp`). The
  points' encoding keeps the identity (`use_identity_map=True`), L = 6 (num_warp_freqs).
- `nerfies/modules.py` `AnnealedSinusoidalEncoder`: the cosine window; `TrainConfig.
  warp_alpha_schedule` = ANNEALED_WARP_ALPHA_SCHED, linear 0 -> 6 over 80000 steps.
- `nerfies/models.py` `NerfModel`: warp codes (GLO, 8-d, U[0, 0.05)); the same warp for the
  coarse and the fine samples; separate coarse and fine template MLPs (`modules.NerfMLP`:
  8 x 256, skip before the 5th layer, i.e. nerfkit's `skip=3`; density from the trunk; a
  256-wide bottleneck + the encoded view direction -> 128 -> RGB: nerfkit's `NeRFMLP`);
  gamma(x') with L = 8 plus identity, view directions L = 4 plus identity; softplus density
  (defaults.gin), sigmoid colour; 128 coarse + 128 fine samples, the fine network on the
  union of both; the last interval infinite (use_sample_at_infinity).
- `nerfies/training.py` `train_step`: loss = MSE(fine) + MSE(coarse) + elastic (coarse pass
  only) + background. Elastic: `compute_elastic_loss` 'log_svals' (log singular values of the
  warp Jacobian, Geman-McClure scale 0.03), weighted by the coarse weights (stopped
  gradients, `elastic_reduce_method='weight'`), summed over samples, averaged over rays,
  weight 0.001 (gpu_vrig_paper.gin; `warp_defaults.gin` uses 0.01 decaying after 50k steps).
  Background (`compute_background_loss`): a batch of 16384 static points with N(0, 0.001)
  noise, each warped with a random training frame's code, Geman-McClure (scale 0.001) of the
  squared displacement, mean, weight 1.0; only when the scene has `points.npy`.
- Learning rate 1e-3 -> 1e-4 exponential over the run (DEFAULT_LR_SCHEDULE); the release's
  batch is 6144 rays over 8 GPUs, nerfkit's default 1024 (`--batch-rays 6144` for the paper's).

Differences from the paper, and what is done about them:
- Appearance code: the paper feeds a per-frame appearance code psi into the colour branch.
  The final release's vrig configuration has no appearance code (`use_appearance_metadata =
  False`; `warp_defaults.gin` turns it on, but the final `get_condition_inputs` appends it to
  the colour branch only `if self.use_alpha_condition` -- a typo that leaves it unused; the
  first release fed it to the colour branch). Default: none, as released;
  `--nerfies.appearance-dims 8` is the paper's psi (8-d, by time like the warp codes).
- Camera code: gpu_vrig_paper.gin feeds a 2-d per-rig-camera code (GLO, U[0, 0.05), one row
  per distinct training camera id, indexed by the id) into the colour branch
  (`use_camera_metadata`); nerfkit does the same from the frames' `camera_id`
  (`Split.rig_cameras`, `Rays.rig_camera`; ids beyond the table are clamped to its last row),
  except that the code is left out when the training images come from one camera (it would
  be a constant; runs trained before it existed load unchanged). Views without a rig camera
  (render paths) use row 0. `--nerfies.camera-dims 0` turns it off.
- Initialisation is the release's: Glorot-uniform weights and zero biases in the template MLPs
  (`glorot_`; nerfkit's `nerf` keeps PyTorch's default), and the warp field's (it is what makes
  the warp start at the identity).
- The release computes the opacity `acc` without the sample at infinity; nerfkit's `acc`
  includes it (colours are identical).
- Scenes with a known background colour (procedural, Blender layout: not `SceneMeta.unbounded`),
  which the release never trains on: the last sample's interval is zero (the release's
  `use_sample_at_infinity = False`) and the raw density starts with a bias that makes rays 10 %
  opaque (`density_bias`). As released, every ray was opaque from step 0, the template painted
  every colour white and learnt nothing (docs/dynamic.md). Unbounded captures: as released.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta
from nerfkit.methods.base import RaySamples, RenderOutput
from nerfkit.methods.latent_codes import GLO_INIT_SCALE, LatentCodes
from nerfkit.methods.nerf import NeRF, NeRFConfig, NeRFMLP
from nerfkit.render import warp as W
from nerfkit.render.encoding import encoded_dim, positional_encoding
from nerfkit.render.volume import (
    INFINITE_DELTA,
    composite,
    render_along_rays,
    sample_deltas,
    softplus_bias_for_opacity,
)

Init = Callable[[Tensor], object]


@dataclass
class NerfiesConfig(NeRFConfig):
    """Nerfies as released (configs/gpu_vrig_paper.gin); defaults are that configuration."""

    pos_freqs: int = 8
    """L for the template's warped positions (num_nerf_point_freqs)."""
    skip: int = 3
    """The template's input is concatenated again after this layer (the release's skips=(4,)
    concatenates before the fifth layer, i.e. after the fourth: index 3)."""
    density_activation: Literal["relu", "softplus"] = "softplus"
    n_coarse: int = 128
    n_fine: int = 128
    warp_freqs: int = 6
    """L of the warp field's positional encoding (num_warp_freqs)."""
    warp_alpha_steps: int = 80000
    """Steps over which the warp encoding's window opens from 0 to warp_freqs bands."""
    warp_include_input: bool = True
    """The warp field also sees x itself (use_identity_map)."""
    warp_code_dims: int = 8
    """Dimensions of the per-frame warp code (num_warp_features)."""
    warp_width: int = 128
    warp_depth: int = 6
    warp_skip: int = 4
    """The warp trunk's input is concatenated again before this layer (release: (4,))."""
    appearance_dims: int = 0
    """Per-frame appearance code into the colour branch (0: none, as in the final release's
    vrig config; the paper's psi: 8)."""
    camera_dims: int = 2
    """Per-rig-camera code into the colour branch (gpu_vrig_paper.gin: use_camera_metadata,
    camera_metadata_dims = 2; 0: none). Only built when the training images come from two or
    more rig cameras (`SceneMeta.train_rig_cameras`): with one camera it is a constant."""
    elastic_weight: float = 1e-3
    """Weight of the elastic loss (0 = off; gpu_vrig_paper.gin: 0.001)."""
    background_weight: float = 1.0
    """Weight of the background loss (used when the scene has static points)."""
    background_batch: int = 16384
    """Static points per step for the background loss."""
    background_noise: float = 1e-3
    """Std of the noise added to the static points."""
    density_bias: float | None = None
    """None: 0 (the release) on unbounded captures; on a scene with a known background the bias
    that makes a ray through a field of raw density 0 about 10 % opaque over [near, far]
    (`softplus_bias_for_opacity`): the released initialisation starts 94 % opaque there and,
    with the background then hidden, turns every colour white and stops learning
    (docs/dynamic.md)."""
    sample_at_infinity: bool | None = None
    """The last sample's interval is infinite (the release's `use_sample_at_infinity`, default
    True: every ray ends opaque on what its last sample sees) or zero. None: infinite only for
    unbounded captures (`SceneMeta.unbounded`: the release's real captures, whose background is
    part of the scene); on a scene with a known background colour (the procedural and Blender
    scenes) an infinite last interval hides that background, and with a softplus density
    (never 0) every ray is opaque: the template then turns every colour white and stops
    learning (docs/dynamic.md)."""


def xavier_uniform(weight: Tensor) -> object:
    return nn.init.xavier_uniform_(weight)


def glorot_(net: nn.Module) -> nn.Module:
    """The releases' template initialisation (`nn.Dense(kernel_init=glorot_uniform())`, flax's
    zero biases) on every linear layer of `net`, in place."""
    with torch.no_grad():
        for lin in net.modules():
            if isinstance(lin, nn.Linear):
                nn.init.xavier_uniform_(lin.weight)
                nn.init.zeros_(lin.bias)
    return net


class SkipMLP(nn.Module):
    """The releases' `modules.MLP`: `depth` ReLU layers of `width`, the network's input
    concatenated again before each layer listed in `skips`, then (if out_dim > 0) a linear
    output layer. Weights from the given initialisers, biases zero."""

    def __init__(
        self,
        in_dim: int,
        depth: int,
        width: int,
        skips: Sequence[int] = (),
        out_dim: int = 0,
        hidden_init: Init = xavier_uniform,
        out_init: Init = xavier_uniform,
    ) -> None:
        super().__init__()
        self.skips = tuple(skips)
        layers, prev = [], in_dim
        for i in range(depth):
            layers.append(nn.Linear(prev + (in_dim if i in self.skips else 0), width))
            prev = width
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(prev, out_dim) if out_dim > 0 else None
        for lin in self.layers:
            hidden_init(lin.weight)
            nn.init.zeros_(lin.bias)
        if self.out is not None:
            out_init(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        """[..., in_dim] -> [..., width or out_dim]"""
        inputs = x
        for i, layer in enumerate(self.layers):
            if i in self.skips:
                x = torch.cat([x, inputs], dim=-1)
            x = F.relu(layer(x))
        return x if self.out is None else self.out(x)


class SE3Field(nn.Module):
    """The released SE(3) warp field: (x [..., 3], code [..., C]) -> x' [..., 3]."""

    def __init__(
        self,
        code_dims: int,
        num_freqs: int = 8,
        include_input: bool = True,
        width: int = 128,
        depth: int = 6,
        skips: Sequence[int] = (4,),
    ) -> None:
        super().__init__()
        self.num_freqs, self.include_input = num_freqs, include_input
        in_dim = encoded_dim(3, num_freqs, include_input) + code_dims
        self.trunk = SkipMLP(in_dim, depth, width, skips)
        self.w_head, self.v_head = nn.Linear(width, 3), nn.Linear(width, 3)
        for head in (self.w_head, self.v_head):
            nn.init.uniform_(head.weight, 0.0, 1e-4)
            nn.init.zeros_(head.bias)

    def forward(self, points: Tensor, codes: Tensor, alpha: float | None) -> Tensor:
        """Warp points [..., 3] with their codes [..., C]; alpha: the encoding's window."""
        feat = W.windowed_positional_encoding(points, self.num_freqs, alpha, self.include_input)
        h = self.trunk(torch.cat([feat, codes], dim=-1))
        return W.screw_warp(self.w_head(h), self.v_head(h), points)

    def with_jacobian(
        self, points: Tensor, codes: Tensor, alpha: float | None
    ) -> tuple[Tensor, Tensor]:
        """Warped points [N, 3] and the warp's Jacobian d x' / d x [N, 3, 3] (forward-mode,
        as the release's jax.jacfwd), differentiable w.r.t. the field's parameters.

        Args:
            points: [N, 3]; codes: [N, C].
        """

        def one(p: Tensor, code: Tensor) -> tuple[Tensor, Tensor]:
            out = self(p[None], code[None], alpha)[0]
            return out, out

        jac, warped = torch.func.vmap(torch.func.jacfwd(one, has_aux=True))(points, codes)
        return warped, jac


@dataclass
class WarpedOutput(RenderOutput):
    """RenderOutput plus what the loss of the warp methods reads."""

    elastic: Tensor | None = None
    """[R, S] per-sample elastic loss (coarse training pass with the elastic loss on)."""


class Nerfies(NeRF):
    """Nerfies: SE(3) warp field + template NeRF, coarse + fine (module docstring)."""

    train_defaults = {"lr": 1e-3, "lr_final": 1e-4, "batch_rays": 1024}

    def __init__(self, config: NerfiesConfig, meta: SceneMeta) -> None:
        super().__init__(config, meta)
        c = self.config = config
        self.warp_codes = LatentCodes(meta.train_times, c.warp_code_dims)
        self.warp = SE3Field(
            c.warp_code_dims,
            c.warp_freqs,
            c.warp_include_input,
            c.warp_width,
            c.warp_depth,
            (c.warp_skip,),
        )
        self.appearance = (
            LatentCodes(meta.train_times, c.appearance_dims) if c.appearance_dims > 0 else None
        )
        # the release's camera GLO table: one row per distinct training camera id, indexed by
        # the id itself (num_camera_embeddings = len(datasource.camera_ids))
        rigs = sorted(set(meta.train_rig_cameras))
        self.camera_codes = (
            nn.Parameter(torch.rand(len(rigs), c.camera_dims) * GLO_INIT_SCALE)
            if c.camera_dims > 0 and len(rigs) > 1
            else None
        )
        cam_dims = c.camera_dims if self.camera_codes is not None else 0
        self.cond_dims = (
            (encoded_dim(3, c.dir_freqs) if c.use_viewdirs else 0)
            + max(c.appearance_dims, 0)
            + cam_dims
        )
        self.build_templates(self.template_dims())
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.points: Tensor | None = None
        if c.density_bias is None and not meta.unbounded:
            self.density_bias = softplus_bias_for_opacity(meta.far - meta.near, 0.1)
        at_infinity = meta.unbounded if c.sample_at_infinity is None else c.sample_at_infinity
        self.last_delta = INFINITE_DELTA if at_infinity else 0.0

    # -- construction -----------------------------------------------------------------------
    def template_dims(self) -> int:
        """Width of the template's point input."""
        return encoded_dim(3, self.config.pos_freqs)

    def build_templates(self, in_pos: int) -> None:
        """(Re)build the coarse and fine template MLPs for `in_pos` point features and the
        condition (view direction, appearance code)."""
        c = self.config
        self.in_pos = in_pos

        def mlp() -> NeRFMLP:
            net = NeRFMLP(in_pos, self.cond_dims, c.width, c.depth, c.skip, self.cond_dims > 0)
            glorot_(net)
            return net

        self.coarse = mlp()
        self.fine = mlp() if c.n_fine > 0 else None

    # -- schedules and training hooks -------------------------------------------------------
    def step_callback(self, step: int) -> None:
        self.step.fill_(step)

    def use_points(self, points: Tensor) -> None:
        self.points = points.float()

    @property
    def warp_alpha(self) -> float:
        c = self.config
        return W.warp_alpha(int(self.step), c.warp_freqs, c.warp_alpha_steps)

    # -- the field --------------------------------------------------------------------------
    def template_features(
        self, points: Tensor, warped: Tensor, codes: Tensor, rays: Rays
    ) -> tuple[Tensor, Tensor | None]:
        """The template's point features [R, S, Cx] and ambient coordinates ([R, S, m] or None)
        of samples `points` [R, S, 3] warped to `warped` [R, S, 3] with warp codes [R, C]."""
        return positional_encoding(warped, self.config.pos_freqs), None

    def condition(self, rays: Rays) -> Tensor | None:
        """The colour branch's per-ray condition [R, Cd]: encoded view direction (and the
        appearance and rig-camera codes: a ray's row is its rig camera id, clamped to the
        table; rays without one use row 0)."""
        c = self.config
        parts = []
        if c.use_viewdirs:
            parts.append(positional_encoding(rays.viewdirs, c.dir_freqs))
        if self.appearance is not None:
            parts.append(self.appearance(rays.time, len(rays)))
        if self.camera_codes is not None:
            table = self.camera_codes
            if rays.rig_camera is None:
                idx = torch.zeros(len(rays), dtype=torch.long, device=table.device)
            else:
                idx = rays.rig_camera.to(table.device).clamp(0, table.shape[0] - 1)
            parts.append(table[idx])
        return torch.cat(parts, dim=-1) if parts else None

    def render_samples(self, net: NeRFMLP, rays: Rays, t: Tensor) -> WarpedOutput:  # type: ignore[override]
        """Volume-render rays with samples at distances t [R, S] through template `net`:
        warp the samples, query the template there. Fills `displacement` (x' - x, averaged with
        the weights like depth) and, for the coarse training pass with the elastic loss on, the
        per-sample `elastic` loss."""
        r, s = t.shape
        pts = rays.origins[:, None, :] + t[..., None] * rays.directions[:, None, :]
        codes = self.warp_codes(rays.time, r)  # [R, C]
        per_sample = codes[:, None, :].expand(r, s, codes.shape[-1])
        elastic = None
        want_jac = (
            self.training
            and net is self.coarse
            and self.config.elastic_weight > 0
            and torch.is_grad_enabled()
        )
        if want_jac:
            flat, jac = self.warp.with_jacobian(
                pts.reshape(-1, 3), per_sample.reshape(r * s, -1), self.warp_alpha
            )
            warped = flat.reshape(r, s, 3)
            elastic = W.elastic_loss(jac)[0].reshape(r, s)
        else:
            warped = self.warp(pts, per_sample, self.warp_alpha)
        feats, ambient = self.template_features(pts, warped, codes, rays)
        with self._autocast():
            raw, rgb = net(feats.reshape(r * s, -1), self.condition(rays), s)
        sigma = self._activate(raw.float().reshape(r, s))
        rgb = rgb.float().reshape(r, s, 3)
        deltas = sample_deltas(t, self.last_delta) * rays.directions.norm(dim=-1, keepdim=True)
        out = render_along_rays(sigma, rgb, t, deltas, self.background)
        w = out["weights"]
        inv_acc = 1.0 / out["acc"].clamp(min=1e-10)[:, None]  # averages over what the ray sees
        return WarpedOutput(
            out["rgb"],
            out["depth"],
            out["acc"],
            samples=RaySamples(t, sigma, w, out["trans"]),
            displacement=composite(w, warped - pts) * inv_acc,
            ambient=None if ambient is None else composite(w, ambient) * inv_acc,
            elastic=elastic,
        )

    # -- losses -----------------------------------------------------------------------------
    def background_loss(self) -> Tensor:
        """Mean background loss of a random batch of the static points (noised), each warped
        with a random training frame's code."""
        assert self.points is not None
        c = self.config
        idx = torch.randint(len(self.points), (c.background_batch,), device=self.points.device)
        pts = self.points[idx]
        pts = pts + c.background_noise * torch.randn_like(pts)
        warped = self.warp(pts, self.warp_codes.random(len(pts)), self.warp_alpha)
        return W.background_loss(warped, pts).mean()

    def loss(self, out: RenderOutput, rgb_true: Tensor) -> dict[str, Tensor]:
        """NeRF's MSE(fine) + MSE(coarse), plus the weighted elastic and background losses."""
        losses = super().loss(out, rgb_true)
        c = self.config
        total = losses["loss"]
        coarse = out.coarse
        elastic = getattr(coarse, "elastic", None)
        if elastic is not None and coarse is not None and coarse.samples is not None:
            e = (coarse.samples.weights.detach() * elastic).sum(dim=-1).mean()
            losses["elastic"] = e
            total = total + c.elastic_weight * e
        if self.points is not None and len(self.points) and c.background_weight > 0:
            b = self.background_loss()
            losses["background"] = b
            total = total + c.background_weight * b
        losses["loss"] = total
        return losses
