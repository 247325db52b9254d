"""`dgrid`: the fast dynamic method: `grid`'s canonical voxel grids, a space-time deformation
from factorised planes, and ambient (hyper-space) dimensions for topology change.

A point x seen at time t is mapped to the canonical space by a deformation
    (dx, w) = head(HexPlane(x, t)),    x' = x + dx,
where HexPlane(x, t) = [P_xy * P_zt, P_xz * P_yt, P_yz * P_xt] are bilinear features of six
2-D planes (`nerfkit.render.planes`, after HexPlane / K-Planes) and `head` a small MLP whose last
layer starts at zero (the deformation starts as the identity). The canonical model is `grid`'s
(density and feature voxel grids, coarse-to-fine growth, its colour MLP and losses), and with
m = `ambient_dims` > 0 it is a slice of a higher-dimensional template as in HyperNeRF (Park et
al. 2021): the ambient coordinates w = tanh(...) in [-1, 1]^m index planes over (x', w_j),
(y', w_j), (z', w_j) whose features (`ambient_features`) add a residual to the density and the
features. m = 0 is the deformation-only model (D-NeRF / Nerfies' idea), m > 0 the hyper-space
model, from one code path: what the ambient dimensions buy is measured by switching them off.

Where the scene has static points (`points.npy`), Nerfies' background loss keeps the
deformation at zero there (`background_loss`).

Sampling marches through the scene box in observation space (the grid box is canonical). The
occupancy mask is computed in observation space: the density is evaluated at the vertices of a
coarse grid (`occ_max_res` a side) at up to `occ_max_times` training times, and a vertex is kept
(dilated by one vertex) per time bin where a time bracketing the bin makes it occupied, and in
the union where any time does. Rays march through the union; their samples are then kept only
where the mask of their time's bin is set (`occ_time_bins`). The fused C++ paths of `grid`
(inference marching with the density grid, early training stops) assume a static density and
are not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta
from nerfkit.methods.base import RenderOutput
from nerfkit.methods.grid import GridConfig, GridMethod, GridOutput
from nerfkit.render.grid import nearest_vertex
from nerfkit.render.planes import (
    HEX_PAIRS,
    ambient_features,
    hexplane_features,
    plane_smoothness,
    plane_tv,
    sample_planes,
)
from nerfkit.render.volume import accumulate_packed
from nerfkit.render.warp import background_loss, hyper_alpha, posenc_window


@dataclass
class DGridConfig(GridConfig):
    """Options of `dgrid` (`grid`'s options, plus the deformation and the ambient dimensions)."""

    ambient_dims: int = 2
    """m: ambient (hyper-space) coordinates per point; 0 = deformation only."""
    deform_res: int = 64
    """Texels a side of the deformation's spatial planes (over the scene box)."""
    deform_levels: int = 3
    """Resolution levels of the deformation planes: level k has deform_res / 2^k texels a side
    along space (features of all levels concatenated, as K-Planes' multiscale planes). Coarse
    levels see a large motion over many texels, so its gradient reaches far. 1 -> 3, 800 steps,
    100x100, one seed: ring m = 0 27.49 -> 31.69 dB (the ball travels 2 units, 3 diameters),
    m = 2 31.00 -> 31.60, split m = 2 33.21 -> 34.09 (BENCHMARKS.md)."""
    deform_anneal_steps: int = 0
    """Coarse to fine: over this many steps after `deform_start` the finer levels are faded in
    one after another (Nerfies' windowed encoding applied to plane levels); 0: all at once.
    At 400 (recommended) it ends with the time curriculum (`deform_start` 100 + 400 = 500).
    Measured, 100x100 (BENCHMARKS.md), on minus off: split / mouth, 800 steps, 3 seeds: m = 2
    +0.95 +- 2.26 / +0.47 +- 1.31 dB (every seed >= 0), m = 0 +0.99 +- 2.33 / +2.03 +- 1.35;
    ring, 1600 steps, 800 here: m = 2 -0.54 +- 2.22, m = 0 +1.26 +- 3.95; tiny D-NeRF, 5 min,
    seed 0: +0.17 test, +0.84 val. It never lost on split, mouth or tiny D-NeRF and makes
    m = 0 the fair (registered) baseline; still off by default until the 15-minute runs and
    the demo are re-measured with it."""
    deform_time_res: int = 16
    """Texels of the space-time planes along time (at most one per training time). Few: with
    one view per time (teleporting cameras) every frame is ambiguous, and a deformation that is
    smooth in time shares what the frames see (split scene at 1000 steps: 64-ish texels 25.3 dB,
    16 with `time_smooth_weight` 0.01 27.1 dB, BENCHMARKS.md)."""
    deform_channels: int = 16
    """Channels of each deformation plane."""
    deform_width: int = 64
    """Hidden width of the deformation head (one hidden layer)."""
    ambient_gain: float = 10.0
    """w = tanh(gain x the head's output): how fast the ambient coordinates move away from 0.
    The head's last layer starts at zero; with a gain of 1 w barely left it (on the ring scene
    -0.1 .. +0.2 over the whole motion, about one of the 16 texels along w), so the ambient
    residual was one static term that buried the ball's later positions. Gain 10, 100x100,
    800 steps, one seed: ring m = 2 27.78 -> 31.00 dB, split 30.87 -> 33.21, mouth 36.63 ->
    36.79; tiny D-NeRF, 5 min: 25.04 -> 25.02 (BENCHMARKS.md)."""
    ambient_res: int = 64
    """Texels a side of the ambient planes along space (along w: `ambient_w_res`)."""
    ambient_w_res: int = 16
    ambient_channels: int = 16
    ambient_delay: int = 0
    """Steps (counted from the start of training) before the ambient dimensions take part:
    HyperNeRF's delayed `hyper_alpha` (0 for its first 1000 steps, then annealed), so the
    deformation explains what motion it can before the template may hold a moving part at
    several places. 0: from the start."""
    ambient_anneal_steps: int = 0
    """Steps after `ambient_delay` over which the ambient residual fades in (Nerfies' window
    at L = 1: (1 - cos(pi a)) / 2 with a linear in the step); 0: switched on at once."""
    deform_start: int = 100
    """Steps before the deformation is switched on: the canonical grids first learn the
    time-averaged scene (cheap: no deformation to evaluate), whose union over time is where the
    occupancy mask lets samples through once it is on."""
    time_curriculum_steps: int = 500
    """Curriculum over time: for this many steps the training images are only those up to a
    time that grows linearly from `time_curriculum_start` to 1, so the canonical model first
    learns the scene near t = 0 and the deformation then follows the motion a little further
    at a time (a large motion is learnt as many small ones, each with a gradient); 0: off.
    With `deform_lr_scale` 30, at 800 steps (100x100, one seed): split m = 2 27.57 -> 30.32 dB,
    m = 0 24.99 -> 27.15; ring m = 2 21.48 -> 27.16 (BENCHMARKS.md)."""
    time_curriculum_start: float = 0.1
    box_settle_steps: int = 200
    """Steps after the time curriculum before the grid box is fitted to the content
    (`fit_box`), so the frames the curriculum reached last are learnt first."""
    mask_in_curriculum: bool = True
    """Use the occupancy mask during the time curriculum. False: every sample in the box is
    evaluated until the curriculum ends (slower), so content appearing where the model has
    none yet is not masked out (the mask's one-vertex dilation per refresh trails it)."""
    deform_lr_scale: float = 30.0
    """Learning rate of the deformation and ambient planes = this x the trainer's --lr."""
    plane_tv_weight: float = 1e-4
    """Total variation of the deformation and ambient planes."""
    time_smooth_weight: float = 1e-2
    """Second differences along time of the space-time planes (K-Planes' time smoothness)."""
    tv_weight: float | None = 1e-4
    """Total variation of the canonical density grid (as `grid`'s; on here: +0.7 dB on the
    split scene at 1000 steps)."""
    tv_feature_weight: float | None = 1e-3
    """Total variation of the canonical feature grid."""
    background_weight: float = 1.0
    """Weight of Nerfies' background loss: the scene's static points (`points.npy` of the
    Nerfies layout, inside the scene box) at random training times should not move
    (Geman-McClure, scale 0.001, of their squared displacement); only when the scene has them."""
    background_batch: int = 4096
    """Static points per step for the background loss."""
    occ_max_res: int = 48
    """Vertices a side (at most) of the observation-space occupancy grid."""
    occ_max_times: int = 64
    """Times the occupancy union is evaluated at (the training times, thinned to this many)."""
    occ_time_bins: int = 16
    """Time bins of the occupancy mask: a sample of a ray at time t is kept only where the
    mask of t's bin (the union over the evaluated times that bracket the bin) is set, not
    wherever anything is at some time (the union over all times, what the march skips by);
    1: the union only."""


CURRICULUM_SHARE = 0.7
"""The time curriculum ends by this fraction of the run's budget at the latest (the last 30 % trains
every frame; at 800 steps the 500-step default ends first)."""

BOX_SETTLE_SHARE = 0.1
"""The grid box is fitted `box_settle_steps` after the curriculum, or this fraction of the run's
budget after it, whichever comes first (a 3-minute run of ~350 steps ends its curriculum at
~240 steps and would otherwise never fit the box)."""


class DynamicGridMethod(GridMethod):
    """Deformation + ambient planes in front of `grid`'s canonical model (module docstring)."""

    train_defaults = {"lr": 1e-3, "lr_final": 1e-4, "batch_rays": 4096}

    def __init__(self, config: DGridConfig, meta: SceneMeta) -> None:
        super().__init__(config, meta)
        c = self.config = config
        times = sorted(set(meta.train_times)) or [0.0]
        self.register_buffer("occ_times", _thin(torch.tensor(times), c.occ_max_times))
        self.register_buffer("train_times", torch.tensor(times), persistent=False)
        self.points: Tensor | None = None
        t_res = max(2, min(c.deform_time_res, len(times)))
        ch = c.deform_channels
        # K-Planes' start: spatial planes uniform in [0.1, 0.5], space-time planes one; the
        # finest level keeps the names of a one-level model, coarser levels are lists
        self.space_planes, self.time_planes = _deform_planes(c.deform_res, t_res, ch)
        self.coarse_space = nn.ParameterList()
        self.coarse_time = nn.ParameterList()
        for k in range(1, max(1, c.deform_levels)):
            sp, tp = _deform_planes(max(2, c.deform_res >> k), t_res, ch)
            self.coarse_space.append(sp)
            self.coarse_time.append(tp)
        self.register_buffer("deform_step", torch.tensor(0))
        # [B, X, Y, Z] the occupancy mask per time bin (`occ_time_bins`); one bin: the union
        self.register_buffer("occupancy_t", self.occupancy[None].clone())
        m = c.ambient_dims
        self.deform_head = nn.Sequential(
            nn.Linear(3 * ch * max(1, c.deform_levels), c.deform_width),
            nn.ReLU(inplace=True),
            nn.Linear(c.deform_width, 3 + m),
        )
        nn.init.zeros_(self.deform_head[-1].weight)
        nn.init.zeros_(self.deform_head[-1].bias)
        if m > 0:
            ca = c.ambient_channels
            self.ambient_planes = nn.Parameter(
                torch.empty(3 * m, c.ambient_w_res, c.ambient_res, ca)
            )
            nn.init.uniform_(self.ambient_planes, 0.1, 0.5)
            self.ambient_out = nn.Linear(ca, 1 + c.feature_dim)
            nn.init.zeros_(self.ambient_out.weight)
            nn.init.zeros_(self.ambient_out.bias)
        else:
            self.ambient_planes = None
            self.ambient_out = None
        # the step (-1: not yet) and the run's progress at which `max_train_time` first found
        # the time curriculum over: in checkpoints, so a resumed run fits its box on the same
        # schedule; and the progress it was last given
        self.register_buffer("curriculum_end_step", torch.tensor(-1))
        self.register_buffer("curriculum_end_progress", torch.tensor(0.0))
        self.progress = 0.0
        self.register_buffer("deform_on", torch.tensor(c.deform_start <= 0))
        self.register_buffer("ambient_weight", torch.tensor(self._ambient_weight_at(0)))
        # the fused static paths do not apply (module docstring)
        self.train_stop = 0.0

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        # runs saved before the deformation levels existed have one level, fully on
        state_dict.setdefault(prefix + "deform_step", torch.tensor(1 << 30))
        state_dict.setdefault(prefix + "ambient_weight", torch.tensor(1.0))
        # runs saved before the curriculum's end was kept: found again on the next step
        state_dict.setdefault(prefix + "curriculum_end_step", torch.tensor(-1))
        state_dict.setdefault(prefix + "curriculum_end_progress", torch.tensor(0.0))
        # runs saved before the time bins: the union (one bin)
        union = state_dict.get(prefix + "occupancy")
        if union is not None:
            state_dict.setdefault(prefix + "occupancy_t", union[None])
        key = prefix + "occupancy_t"
        if key in state_dict and state_dict[key].shape != self.occupancy_t.shape:
            self.occupancy_t = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args)

    # -- the field ----------------------------------------------------------------------------
    def _deform_plane_list(self) -> list[Tensor]:
        """Every deformation plane stack (all levels, spatial and space-time)."""
        return [self.space_planes, self.time_planes, *self.coarse_space, *self.coarse_time]

    def _levels(self) -> list[tuple[Tensor, Tensor]]:
        """(spatial, space-time) plane stacks of each deformation level, finest first."""
        return [(self.space_planes, self.time_planes), *zip(self.coarse_space, self.coarse_time)]

    def _normalised(self, pts: Tensor) -> Tensor:
        """World points [P, 3] -> [-1, 1] over the (fixed) scene box."""
        return (pts - self.scene_lo) / (self.scene_hi - self.scene_lo) * 2 - 1

    def deform(self, pts: Tensor, time: Tensor) -> tuple[Tensor, Tensor | None]:
        """Offset dx [P, 3] (canonical minus observed point) and ambient coordinates w [P, m]
        (None for m = 0) of world points pts [P, 3] at times [P] in [0, 1]; zeros before
        `deform_start`."""
        if not bool(self.deform_on):
            m = self.config.ambient_dims
            return torch.zeros_like(pts), (pts.new_zeros(pts.shape[0], m) if m else None)
        xyzt = torch.cat([self._normalised(pts), time[:, None] * 2 - 1], -1)
        levels = self._levels()
        weights = self.level_weights()
        feats = [
            _weighted(hexplane_features(sp, tp, xyzt), wk)
            if wk > 0
            else xyzt.new_zeros(xyzt.shape[0], 3 * sp.shape[3])
            for (sp, tp), wk in zip(levels, weights)
        ]
        return self._head(torch.cat(feats, -1) if len(feats) > 1 else feats[0])

    def _head(self, feats: Tensor) -> tuple[Tensor, Tensor | None]:
        """dx [P, 3] and w [P, m] (None for m = 0) from the head's input [P, 3 C L]."""
        out = self.deform_head(feats)
        gain = self.config.ambient_gain
        w = torch.tanh(_weighted(out[:, 3:], gain)) if self.ambient_planes is not None else None
        return out[:, :3], w

    @torch.no_grad()
    def lattice_deform(self, axes: list[Tensor], time: float) -> tuple[Tensor, Tensor | None]:
        """`deform` at every vertex of the lattice axes[0] x axes[1] x axes[2] (world
        coordinates [X], [Y], [Z]) at one time: dx [X Y Z, 3] and w [X Y Z, m], x-major (as
        `torch.meshgrid(..., indexing="ij")`). The same values, without a plane lookup per
        vertex: each HexPlane pair is a product of a plane over two axes and one over the third
        axis and time, so on a lattice it is the outer product of lookups along its lines."""
        lo, hi = self.scene_lo, self.scene_hi
        n = [len(a) for a in axes]
        if not bool(self.deform_on):
            m, count = self.config.ambient_dims, n[0] * n[1] * n[2]
            return lo.new_zeros(count, 3), (lo.new_zeros(count, m) if m else None)
        u = [(axes[k].to(lo) - lo[k]) / (hi[k] - lo[k]) * 2 - 1 for k in range(3)]
        levels = self._levels()
        ch = self.space_planes.shape[3]
        feats = lo.new_zeros(*n, len(levels), 3, ch)
        for k, ((sp, tp), wk) in enumerate(zip(levels, self.level_weights())):
            if wk == 0:
                continue
            for j, ((a, b), (c, _)) in enumerate(HEX_PAIRS):
                uv = torch.stack(torch.meshgrid(u[a], u[b], indexing="ij"), -1).reshape(1, -1, 2)
                f_s = _weighted(sample_planes(sp[j : j + 1], uv)[0], wk)  # [n_a n_b, C]
                uv_t = torch.stack([u[c], torch.full_like(u[c], time * 2 - 1)], -1)[None]
                f_t = sample_planes(tp[j : j + 1], uv_t)[0]  # [n_c, C]
                shape_s, shape_t = [1, 1, 1, ch], [1, 1, 1, ch]
                shape_s[a], shape_s[b], shape_t[c] = n[a], n[b], n[c]
                torch.mul(f_s.reshape(shape_s), f_t.reshape(shape_t), out=feats[..., k, j, :])
        return self._head(feats.reshape(n[0] * n[1] * n[2], -1))

    def max_train_time(self, step: int, progress: float = 0.0) -> float | None:
        """The curriculum's latest training time at `step` (config `time_curriculum_steps`),
        reaching 1 after that many steps or after `CURRICULUM_SHARE` of the run, whichever
        comes first (a short run still trains every frame for most of its length)."""
        c = self.config
        self.progress = progress
        if c.time_curriculum_steps <= 0:
            return None
        done = max(step / c.time_curriculum_steps, progress / CURRICULUM_SHARE)
        if done >= 1.0:
            if self.curriculum_end is None:
                self.curriculum_end_step.fill_(step)
                self.curriculum_end_progress.fill_(progress)
            return None
        a = c.time_curriculum_start
        return a + (1.0 - a) * done

    @property
    def curriculum_end(self) -> int | None:
        """The step at which the time curriculum ended (None: not yet, as far as
        `max_train_time` has seen)."""
        end = int(self.curriculum_end_step)
        return None if end < 0 else end

    @property
    def curriculum_running(self) -> bool:
        """Whether training is (as far as `max_train_time` has seen) inside the curriculum."""
        return self.config.time_curriculum_steps > 0 and self.curriculum_end is None

    def mask_ready(self) -> bool:
        """Inside the time curriculum only with `mask_in_curriculum`."""
        return self.config.mask_in_curriculum or not self.curriculum_running

    def box_fit_ready(self, step: int) -> bool:
        """Only `box_settle_steps` (or `BOX_SETTLE_SHARE` of the run) after the time curriculum
        has ended. `fit_box` shrinks the grid box to what the model renders opaque; during the
        curriculum, and for a while after it, the model has not learnt the moving parts where
        the curriculum reached them last, and the box cut them off for good (the ring scene's
        ball, whose later positions were outside a box fitted at step 200, when the curriculum
        was at t = 0.46: every view after t = 0.6 at 17-23 dB, BENCHMARKS.md)."""
        if self.config.time_curriculum_steps <= 0:
            return True
        end = self.curriculum_end
        if end is None:
            return False
        settled = self.progress - float(self.curriculum_end_progress) >= BOX_SETTLE_SHARE
        return settled or step - end >= self.config.box_settle_steps

    def level_weights(self) -> list[float]:
        """Weight of each deformation level (finest first) at the current step. Coarse to fine:
        with L levels and Nerfies' window (`posenc_window`) at a = 1 + (L - 1) s /
        `deform_anneal_steps` (s: steps since `deform_start`), the coarsest level is on from the
        start and the finer ones fade in one after another until all are on at s = the anneal."""
        c = self.config
        n = max(1, c.deform_levels)
        if c.deform_anneal_steps <= 0 or n == 1:
            return [1.0] * n
        a = 1.0 + (n - 1) * min(1.0, float(self.deform_step) / c.deform_anneal_steps)
        return posenc_window(a, n).flip(0).tolist()

    def _ambient_weight_at(self, step: int) -> float:
        """Weight of the ambient residual at training step `step` (`ambient_delay`, then
        `ambient_anneal_steps` of HyperNeRF's window at L = 1)."""
        c = self.config
        if step < c.ambient_delay:
            return 0.0
        if c.ambient_anneal_steps <= 0:
            return 1.0
        alpha = hyper_alpha(step, 1, c.ambient_delay, c.ambient_anneal_steps)
        return float(posenc_window(alpha, 1)[0])

    def _ambient_residual(self, xc: Tensor, w: Tensor | None) -> Tensor | None:
        """[P, 1 + feature_dim] template residual at canonical points xc [P, 3] and ambient
        coordinates w [P, m] (None without ambient dimensions or while its weight is 0)."""
        a = float(self.ambient_weight)
        if w is None or self.ambient_planes is None or a == 0.0:
            return None
        feats = ambient_features(self.ambient_planes, self._normalised(xc), w)
        return _weighted(self.ambient_out(feats), a)

    def field_density(self, pts: Tensor, time: Tensor) -> Tensor:
        """Density sigma [P] at world points [P, 3] and times [P] (no colour)."""
        return self.sigma_from_raw(self._deformed_raw(pts, time)[0])

    def _deformed_raw(
        self, pts: Tensor, time: Tensor | None, deformed: tuple | None = None
    ) -> tuple[Tensor, dict]:
        """Raw density [P] of world points pts [P, 3] at times [P], and the evaluation's
        canonical coordinates, ambient residual of the features, offset dx and ambient
        coordinates w; `deformed`: (dx, w) already computed (then time is not read)."""
        dx, w = self.deform(pts, time) if deformed is None else deformed
        xc = pts + dx
        coords = self.to_grid(xc)
        raw = self.density_at(coords)
        res = self._ambient_residual(xc, w)
        res_feat = None
        if res is not None:
            # split, not res[:, 0] / res[:, 1:]: their backward fills a zero tensor each
            res_sigma, res_feat = res.split([1, res.shape[1] - 1], dim=1)
            raw = raw + res_sigma.squeeze(1)
        return raw, {"coords": coords, "res_feat": res_feat, "dx": dx, "w": w}

    # -- rendering: `grid`'s forward with deformed samples ---------------------------------
    def density_grid(self, time: float | None = None) -> Tensor | None:
        """None: the canonical grid is not the density at any time (export samples it)."""
        return None

    def _field_density(self, rays: Rays, s: dict[str, Tensor]) -> tuple[Tensor, dict]:
        ray_idx, t = s["ray_indices"], s["t"]
        pts = rays.origins[ray_idx] + t[:, None] * rays.directions[ray_idx]
        time = rays.time[ray_idx] if rays.time is not None else torch.zeros_like(t)
        return self._deformed_raw(pts, time)

    def _field_features(self, field: dict, sel: Tensor) -> Tensor:
        # index_select: its backward (index_add) is several times faster than indexing's
        feat = self.features_at(field["coords"].index_select(0, sel))
        res = field["res_feat"]
        return feat if res is None else feat + res.index_select(0, sel)

    def _report(self, out: GridOutput, field: dict, weights: Tensor, ray_idx: Tensor) -> None:
        """The displacement and ambient coordinates, averaged over what each ray sees (like
        depth: divided by the opacity)."""
        r = out.acc.shape[0]
        wd = weights[:, None] / out.acc.detach()[ray_idx, None].clamp(min=1e-10)
        out.displacement = accumulate_packed(wd * field["dx"].detach(), ray_idx, r)
        if field["w"] is not None:
            out.ambient = accumulate_packed(wd * field["w"].detach(), ray_idx, r)

    def sample_rays(self, rays: Rays, perturb: bool) -> dict[str, Tensor]:
        """`grid`'s samples (marched through the union over time of the occupancy), less those
        whose nearest occupancy vertex is empty in the time bin of their ray's time."""
        s = super().sample_rays(rays, perturb)
        occ_t = self.occupancy_t
        bins = occ_t.shape[0]
        if not self.use_mask or bins == 1 or rays.time is None:
            return s
        b = (rays.time * bins).long().clamp(0, bins - 1)[s["ray_indices"]]
        # the march's coordinates are in vertices of the occupancy
        flat = b * occ_t[0].numel() + nearest_vertex(s["coords"], occ_t.shape[1:])
        sel = occ_t.reshape(-1)[flat].nonzero().squeeze(-1)
        return {k: x[sel] for k, x in s.items()}

    def resample(self, lo: Tensor, hi: Tensor, shape: tuple[int, int, int]) -> None:
        super().resample(lo, hi, shape)
        self.occupancy_t = self.occupancy[None].clone()

    def _render_fused(self, rays: Rays) -> GridOutput | None:
        """No fused inference: it marches `grid`'s static density."""
        return None

    def use_points(self, points: Tensor) -> None:
        """Keep the static points [P, 3] inside the scene box (the deformation's domain) for
        `background_loss`."""
        inside = ((points >= self.scene_lo) & (points <= self.scene_hi)).all(dim=-1)
        self.points = points[inside].float() if bool(inside.any()) else None

    def background_loss(self) -> Tensor:
        """Mean Nerfies background loss of `background_batch` random static points, each
        deformed at a random training time (zero before the deformation is on)."""
        assert self.points is not None
        n = self.config.background_batch
        pts = self.points[torch.randint(len(self.points), (n,), device=self.points.device)]
        times = self.train_times[torch.randint(len(self.train_times), (n,), device=pts.device)]
        dx, _ = self.deform(pts, times)
        return background_loss(pts + dx, pts).mean()

    def loss(self, out: RenderOutput, rgb_true: Tensor) -> dict[str, Tensor]:
        losses = super().loss(out, rgb_true)
        c = self.config
        total = losses["loss"]
        if self.points is not None and c.background_weight > 0 and bool(self.deform_on):
            b = self.background_loss()
            losses["background"] = b
            total = total + c.background_weight * b
        if c.plane_tv_weight > 0:
            tv = sum(plane_tv(p) for p in self._deform_plane_list())
            if self.ambient_planes is not None:
                tv = tv + plane_tv(self.ambient_planes)
            losses["plane_tv"] = tv
            total = total + c.plane_tv_weight * tv
        if c.time_smooth_weight > 0:
            ts = sum(plane_smoothness(p, axis=1) for p in [self.time_planes, *self.coarse_time])
            losses["time_smooth"] = ts
            total = total + c.time_smooth_weight * ts
        losses["loss"] = total
        return losses

    # -- training schedule --------------------------------------------------------------------
    def param_groups(self, lr: float) -> list[dict]:
        groups = super().param_groups(lr)
        pl = lr * self.config.deform_lr_scale
        planes = self._deform_plane_list()
        heads = list(self.deform_head.parameters())
        if self.ambient_planes is not None:
            planes.append(self.ambient_planes)
            heads += list(self.ambient_out.parameters())
        return groups + [
            {"params": planes, "lr": pl, "name": "planes"},
            {"params": heads, "lr": lr, "name": "deform_mlp"},
        ]

    @torch.no_grad()
    def step_callback(self, step: int) -> bool:
        if step >= self.config.deform_start:
            self.deform_on.fill_(True)
            self.deform_step.fill_(step - self.config.deform_start)
        self.ambient_weight.fill_(self._ambient_weight_at(step))
        return super().step_callback(step)

    # -- boxes: the grid box is canonical, rays march through the scene box -------------------
    def march_box(self) -> tuple[Tensor, Tensor]:
        """The scene box. The grid box (`fit_box`) bounds the canonical content; what the
        deformation maps there can be anywhere in the scene box at some time (the ring scene's
        ball, whose later positions lay outside a box fitted to the observed surfaces before
        they were learnt: rays never reached them, BENCHMARKS.md)."""
        return self.scene_lo, self.scene_hi

    def field_box(self) -> tuple[Tensor, Tensor, float | None]:
        """The scene box (`march_box`): `point_density` is in observation space."""
        return self.scene_lo.clone(), self.scene_hi.clone(), self.step_unit

    def _box_points(self, pts: Tensor, time: Tensor | None) -> Tensor:
        """The surface points deformed into canonical space at their times: `fit_box` fits
        the canonical grid's box to them."""
        dx, _ = self.deform(pts, time if time is not None else torch.zeros_like(pts[:, 0]))
        return pts + dx

    @torch.no_grad()
    def update_occupancy(self, threshold: float) -> None:
        """Observation-space occupancy: vertices of a grid over `march_box` (at most
        `occ_max_res` a side, no finer than the canonical grid) where the sample opacity
        exceeds `threshold`, dilated by one vertex: per time bin (`occupancy_t`, at any of the
        `occ_times` that bracket the bin: those inside it and the nearest on either side) and
        over all of them (`occupancy`, the union)."""
        c = self.config
        lo, hi = self.march_box()
        extent = (hi - lo).cpu()
        n = min(c.occ_max_res, max(self.grid_shape))
        shape = tuple(max(2, round(n * float(e / extent.max()))) for e in extent)
        axes = [torch.linspace(float(lo[k]), float(hi[k]), shape[k]).to(lo) for k in range(3)]
        pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        delta = c.step_ratio * self.step_unit
        times = self.occ_times.tolist()
        members = time_bin_members(times, max(1, c.occ_time_bins))
        sigma_max = torch.zeros(len(members), pts.shape[0], device=pts.device)
        plane = shape[1] * shape[2]
        slab = max(1, (1 << 17) // plane)  # x-layers of the lattice deformed at once
        for j, tv in enumerate(times):
            bins = [b for b, m in enumerate(members) if j in m]
            for x0 in range(0, shape[0], slab):
                i, e = x0 * plane, min(x0 + slab, shape[0]) * plane
                deformed = self.lattice_deform([axes[0][x0 : x0 + slab], axes[1], axes[2]], tv)
                sig = self.sigma_from_raw(self._deformed_raw(pts[i:e], None, deformed)[0])
                for b in bins:
                    torch.maximum(sigma_max[b, i:e], sig, out=sigma_max[b, i:e])
        alpha = 1.0 - torch.exp(-sigma_max * delta)
        occ = (alpha > threshold).float().reshape(len(members), 1, *shape)
        self.occupancy_t = F.max_pool3d(occ, kernel_size=3, stride=1, padding=1)[:, 0] > 0
        self.occupancy = self.occupancy_t.any(0)
        self.use_mask = True

    @property
    def eval_chunk_rays(self) -> int:  # type: ignore[override]
        """Rays per forward call when rendering whole images (every sample is deformed, so a
        smaller chunk than `grid`'s bounds memory)."""
        return min(self.config.eval_chunk, 8192)


def _weighted(x: Tensor, w: float) -> Tensor:
    """x * w, without the multiplication where w = 1."""
    return x if w == 1.0 else x * w


def _deform_planes(res: int, t_res: int, ch: int) -> tuple[nn.Parameter, nn.Parameter]:
    """K-Planes' initial deformation planes: spatial [3, res, res, ch] uniform in [0.1, 0.5],
    space-time [3, t_res, res, ch] ones."""
    space = nn.Parameter(torch.empty(3, res, res, ch))
    nn.init.uniform_(space, 0.1, 0.5)
    return space, nn.Parameter(torch.ones(3, t_res, res, ch))


def time_bin_members(times: list[float], bins: int) -> list[list[int]]:
    """For each of `bins` equal bins of [0, 1], the indices of the sorted `times` that bracket
    it: those inside the bin and the nearest before its start and after its end (so a time
    between two of them in the bin is covered by both). One bin: every time."""
    out = []
    for b in range(bins):
        start, end = b / bins, (b + 1) / bins
        before = [i for i, t in enumerate(times) if t <= start]
        after = [i for i, t in enumerate(times) if t >= end]
        first = before[-1] if before else 0
        last = after[0] if after else len(times) - 1
        out.append(list(range(first, last + 1)))
    return out


def _thin(times: Tensor, most: int) -> Tensor:
    """At most `most` of the sorted times [N] (evenly chosen, first and last kept)."""
    if times.shape[0] <= most:
        return times
    idx = torch.linspace(0, times.shape[0] - 1, most).round().long()
    return times[idx]
