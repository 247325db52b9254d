"""`grid`: dense voxel grids grown coarse-to-fine, nerfkit's CPU-fast default method.

After DVGO (Sun et al. 2022), chosen by measurement on a 2-core CPU (BENCHMARKS.md): trilinear
interpolation of a dense grid is by far the cheapest way to evaluate a radiance field per sample.

Field: a density grid (1 channel) and a feature grid (C channels) over the scene box, values at
the grid vertices (vertex i of N along an axis sits at lo + i (hi - lo) / (N - 1)), interpolated
trilinearly. Density sigma = softplus(d + shift) * sigma_scale (shift puts the initial opacity of
one sample at `alpha_init`); colour = sigmoid(MLP(features, PE(view direction))), a tiny MLP.

Sampling: rays are clipped to the scene box; samples every `step_ratio` voxels (so the coarse
grids of early training also take fewer samples); samples in cells an occupancy mask marks empty
are dropped before anything is evaluated (the mask holds, dilated by one vertex, the vertices
whose opacity exceeds a threshold, so a dropped sample's density is provably below it); the rest
are packed (flat list + ray index, as nerfacc) and volume-rendered with
`nerfkit.render.volume.render_weights_packed`. Colour is evaluated only where the compositing
weight exceeds `weight_threshold` (early ray termination and pruning of faint samples).

Rendering without gradients (eval, render, the viewer) takes a fused path: one C++ pass per ray
marches, looks up the density, composites and stops once the transmittance is below
`stop_transmittance` (early termination), and hands the colour MLP only the samples whose weight
exceeds `weight_threshold`, in cache-sized blocks (`render/grid.py:march_composite`).

NDC (forward-facing) scenes, after DVGO's forward-facing model: grids with more vertices across
the image than in depth (`ndc_axis_density`), since NDC x and y map linearly to image pixels;
samples spaced by depth layers of the grid, density per unit of NDC depth (`ndc_plane_steps`);
and a start in which each ray is equally likely to stop at every depth (`ndc_uniform_init`)
instead of nearly empty space. Their box (SceneMeta.aabb) holds every training ray.
Training marches a ray only up to where its transmittance falls below
`train_stop_transmittance`, found by a density-only fused pass (NDC scenes by default).

Unbounded scenes (real 360-degree captures, SceneMeta.unbounded), after DVGO-v2 and mip-NeRF
360: the grids cover contracted space (`nerfkit.render.contraction`): an inner cube around the
point the cameras look at keeps full resolution and everything beyond it, out to infinity, is
squeezed into a shell around it, so a far background is modelled instead of clipped. Samples
are equally spaced in contracted length (in t they grow like the squared distance far away,
i.e. uniform in disparity), density is per unit of contracted length (world length inside the
cube), rays run out to 1000 inner radii (no far plane), and training composites onto a random
background colour so that every ray learns to end on something. The grid's outermost layer
(infinitely far) starts opaque (`far_wall_init`): distant content is then learned as colour on
that backdrop; without it the sky was learned as haze in front of the objects (held-out PSNR
17.8 -> 23.7 dB on the procedural unbounded scene at equal steps, BENCHMARKS.md).

Training: the grids start at `num_voxels_final / 2**len(upsample_steps)` voxels and double in
count at each of `upsample_steps` (the trainer rebuilds the optimiser when `step_callback`
returns True); at `fit_box_step` the grids are resampled onto the bounding box of what is
occupied (most of the scene box is empty), so the final voxels are spent on the object.
Losses: MSE, DVGO's per-sample colour loss, a background-entropy loss on the opacity, total
variation of the density and feature grids on a random subset of voxels, and mip-NeRF 360's
distortion loss.

The trilinear gather and its scatter-add backward run in a small C++/OpenMP kernel built at first
use (torch.utils.cpp_extension, cached under ~/.cache/torch_extensions) for CPU tensors; on
CUDA, or when no compiler is present (with one warning), the lookups run through PyTorch's
fused `grid_sample` (`trilinear_grid_sample`) and the marching through the vectorised reference;
`kernel="torch"` forces the pure-PyTorch reference (`trilinear_reference`, 8 gathers) throughout.
Tests compare all three.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta
from nerfkit.distributed import all_gather_rows
from nerfkit.methods.appearance import AppearanceAffine
from nerfkit.methods.base import Method, RenderOutput
from nerfkit.methods.layers import fused_linear
from nerfkit.poses import focus_point
from nerfkit.render.contraction import contract
from nerfkit.render.encoding import encoded_dim, positional_encoding
from nerfkit.render.grid import (
    CompositeParams,
    MarchParams,
    grid_shape_for,
    load_kernel,
    march,
    march_composite,
    ray_aabb,
    resample_grid,
    trilinear,
)
from nerfkit.render.volume import (
    accumulate_packed,
    distortion_loss_packed,
    render_weights_packed,
    softplus_bias_for_opacity,
)


@dataclass
class GridConfig:
    """Options of the `grid` method (dense voxel grids, DVGO-style)."""

    num_voxels_final: int = 160**3
    """Voxels of the density and feature grids at the end of coarse-to-fine growth."""
    num_voxels_final_ndc: int = 256 * 256 * 128
    """The same for NDC (forward-facing) scenes."""
    num_voxels_final_unbounded: int = 192**3
    """The same for unbounded scenes (over the contracted cube of all of space)."""
    contract: bool | None = None
    """Model all of space by contraction (`nerfkit.render.contraction`); None: for unbounded
    scenes (SceneMeta.unbounded: real captures without alpha that are not forward-facing)."""
    inner_scale: float = 0.5
    """Contraction: half-width of the inner cube (full resolution) as a fraction of the median
    distance of the training cameras to the point they look at (the cube's centre)."""
    bg_len: float = 0.5
    """Contraction: thickness of the shell that holds everything outside the inner cube, in
    units of its half-width (the grid spends bg_len / (1 + bg_len) of each axis on it)."""
    appearance: bool | None = None
    """Per-image appearance compensation (`nerfkit.methods.appearance`: an affine colour
    transform per training photo; held-out views get the average). None: on for unbounded
    scenes (real captures), off for the others (synthetic objects and, not yet measured with
    it, forward-facing scenes)."""
    ndc_axis_density: tuple[float, float, float] = (2.0, 2.0, 1.0)
    """NDC scenes: relative voxels per unit length along x, y, z. NDC x and y span the image, so
    they need more resolution than depth (isotropic 160^3 voxels across flower's 504-pixel-wide
    views would cap test PSNR near 24 dB: a bilinear 160-wide image already loses that much)."""
    upsample_steps: tuple[int, ...] = (200, 400, 600, 800)
    """Steps at which the voxel count doubles (it starts at final / 2**len)."""
    fit_box_step: int = 200
    """Step at which the grids are shrunk to the occupied part of the scene box (-1 = never)."""
    fit_box_threshold: float = 1e-2
    """Opacity of one sample above which a vertex counts as occupied for fitting the box."""
    feature_dim: int = 12
    """Channels of the feature grid."""
    mlp_width: int = 64
    mlp_depth: int = 2
    """Hidden layers of the colour MLP."""
    mlp_start: int = 200
    """Step from which the view-dependent MLP is used; before it colour is the direct
    sigmoid(features[:3]), much cheaper while the grids are coarse and the samples many."""
    dir_freqs: int = 4
    """Positional-encoding octaves of the view direction (0 = raw direction)."""
    step_ratio: float = 0.5
    """Distance between samples, in voxels of the current grid."""
    alpha_init: float = 1e-3
    """Opacity of one sample (at the final resolution) of the initial density: space starts
    nearly empty (DVGO uses 1e-6 over thousands of steps; 1e-3 learns in tens of steps)."""
    grid_lr_scale: float = 100.0
    """Learning rate of the feature grid = this x the trainer's --lr (the MLP uses --lr)."""
    density_lr_scale: float = 300.0
    """Learning rate of the density grid = this x the trainer's --lr."""
    occ_start: int = 100
    """First step using the occupancy mask (before it every sample in the box is evaluated)."""
    occ_every: int = 50
    """Steps between occupancy-mask refreshes."""
    occ_threshold: float = 1e-4
    """Opacity of one sample below which a vertex is empty."""
    weight_threshold: float = 1e-4
    """Once the MLP is on, samples with a smaller compositing weight get no colour evaluation."""
    stop_transmittance: float = 1e-4
    """Rendering (not training) stops marching a ray once its transmittance is below this; what
    is skipped weighs less than this in total (and each sample less than `weight_threshold`)."""
    rgbper_weight: float = 0.01
    """Per-sample colour loss sum_i w_i |c_i - c|^2 (DVGO); 0 = off."""
    entropy_weight: float | None = None
    """Background entropy loss on the opacity (pushes acc to 0 or 1); 0 = off. None: 0.01,
    except for contracted scenes (every ray ends on something: a random background colour in
    training makes them opaque instead)."""
    tv_weight: float | None = None
    """Total variation of the density grid (random subset of voxels per step); 0 = off.
    None: 1e-4 for NDC and contracted scenes, off for the others."""
    tv_feature_weight: float | None = None
    """Total variation of the feature grid (same random voxels); 0 = off. None: 1e-3 for NDC
    and contracted scenes, off for the others."""
    tv_voxels: int = 65536
    distortion_weight: float | None = None
    """mip-NeRF 360's distortion loss on each ray's weights (t normalised to [0, 1] over the
    ray's [near, far]; for contracted scenes, distance in contracted space from the ray's
    first sample over the cube's diagonal); it pulls each ray's weight into one compact
    surface; 0 = off. None: 0.01 for NDC and contracted scenes, off for the others."""
    train_stop_transmittance: float | None = None
    """Training marches each ray only up to where its transmittance falls below this (found by a
    cheap density-only pass first); what lies behind gets (almost) no gradient anyway; 0 = off.
    None: 1e-3 for NDC and contracted scenes, off for object scenes (not measured on them)."""
    ndc_plane_steps: bool = True
    """NDC scenes: samples at equal steps of NDC depth (`step_ratio` depth planes of the grid,
    as DVGO's forward-facing model), and density per unit of NDC depth, instead of equal
    steps of NDC length."""
    ndc_uniform_init: bool = True
    """NDC scenes: start with a density under which each ray is equally likely to stop at every
    depth (DVGO's forward-facing start), instead of nearly empty space."""
    far_wall_init: bool = True
    """Contracted scenes: start with the outermost layer of the grid (beyond ~10 inner radii,
    i.e. at infinity) opaque, a backdrop on which distant content (sky, far walls) is learned
    as colour; without it, rays that see distant content become opaque wherever the gradient is
    largest, nearest the camera, and the far environment is learned as haze in front of the
    scene."""
    max_samples_per_ray: int = 2048
    """Safety cap on samples per ray."""
    kernel: Literal["auto", "grid_sample", "torch"] = "auto"
    """'auto': the fused C++ kernels for CPU tensors when they build, else (CUDA) the grid
    lookups through grid_sample; 'grid_sample': always those (the marching stays C++ on the
    CPU); 'torch': the pure-PyTorch reference path only."""
    eval_chunk: int = 32768
    """Rays per forward call when rendering whole images."""


_COLOUR_BLOCK = 32768
"""Samples per colour-MLP call in `GridMethod._render_fused`."""

_FAR_CONTRACTED = 1000.0
"""Contracted scenes: rays are marched this many inner radii beyond the inner cube's centre;
there the shell is within bg_len / 1000 inner radii of the cube's face (under a voxel)."""


def inner_cube(train_c2w: list, scale: float) -> tuple[Tensor, float]:
    """Centre [3] and half-width of the inner cube of a contracted scene.

    The centre is the point the training cameras look at (`nerfkit.poses.focus_point`), or their
    mean position where that point lies farther from it than the farthest camera (cameras not
    looking inward) or behind most of them (cameras looking outward); the half-width is `scale`
    x the median camera distance to the centre.
    train_c2w: N camera-to-world matrices (nested lists); none: the unit cube at the origin.
    """
    if not train_c2w:
        return torch.zeros(3), 1.0
    c2w = torch.tensor(train_c2w, dtype=torch.float64)
    pos = c2w[:, :3, 3]
    mean = pos.mean(0)
    focus = focus_point(c2w)
    spread = float((pos - mean).norm(dim=-1).max())
    ahead = ((focus - pos) * -c2w[:, :3, 2]).sum(-1) > 0  # cameras look along -z
    inward = float((focus - mean).norm()) <= spread and float(ahead.double().mean()) > 0.5
    center = focus if inward else mean
    dist = float((pos - center).norm(dim=-1).median())
    return center.float(), scale * (dist if dist > 0 else 1.0)


# ----------------------------------------------------------------------------------------------
# the method
# ----------------------------------------------------------------------------------------------


@dataclass
class GridOutput(RenderOutput):
    """`RenderOutput` plus what only this method reads: the samples that got a colour.

    num_colour_samples: scalar, how many there were; while training (for the per-sample colour
    loss) w_sel [Q] their weights, idx_sel [Q] their rays, rgb_sel [Q, 3] their colours, and
    (with a distortion weight) distortion [R], each ray's distortion loss.
    """

    num_colour_samples: Tensor | None = None
    distortion: Tensor | None = None
    w_sel: Tensor | None = None
    idx_sel: Tensor | None = None
    rgb_sel: Tensor | None = None


class GridMethod(Method):
    """Density + feature voxel grids with a tiny colour MLP (see the module docstring)."""

    train_defaults = {"lr": 1e-3, "lr_final": 1e-4, "batch_rays": 4096}

    def __init__(self, config: GridConfig, meta: SceneMeta) -> None:
        super().__init__(meta)
        c = self.config = config
        self.contracted = bool(meta.unbounded if c.contract is None else c.contract)
        self.contracted = self.contracted and not meta.ndc
        if self.contracted:  # the grid covers all of space, contracted
            # (buffers of contracted runs only: bounded runs' checkpoints keep their keys)
            center, radius = inner_cube(meta.train_c2w, c.inner_scale)
            self.register_buffer("inner_center", center)
            self.register_buffer("inner_radius", torch.tensor(radius))
            half = (1.0 + c.bg_len) * radius
            box = torch.stack([center - half, center + half])
        else:
            box = torch.tensor(meta.aabb, dtype=torch.float32)
        self.register_buffer("scene_lo", box[0].clone())
        self.register_buffer("scene_hi", box[1].clone())
        # current (possibly fitted) grid box
        self.register_buffer("lo", box[0].clone())
        self.register_buffer("hi", box[1].clone())
        extent = box[1] - box[0]
        if meta.ndc:
            self.num_voxels_final = c.num_voxels_final_ndc
        elif self.contracted:
            self.num_voxels_final = c.num_voxels_final_unbounded
        else:
            self.num_voxels_final = c.num_voxels_final
        self.axis_density = tuple(c.ndc_axis_density) if meta.ndc else (1.0, 1.0, 1.0)
        self.plane_steps = bool(meta.ndc and c.ndc_plane_steps)

        # options whose default depends on the kind of scene (measured on forward-facing and
        # contracted scenes; object scenes keep what they were tuned with)
        real = meta.ndc or self.contracted

        def by_kind(value: float | None, real_value: float, obj: float = 0.0) -> float:
            return (real_value if real else obj) if value is None else value

        self.train_stop = by_kind(c.train_stop_transmittance, 1e-3)
        self.tv_weight = by_kind(c.tv_weight, 1e-4)
        self.tv_feature_weight = by_kind(c.tv_feature_weight, 1e-3)
        self.distortion_weight = by_kind(c.distortion_weight, 0.01)
        self.entropy_weight = by_kind(c.entropy_weight, 0.0 if self.contracted else 0.01, 0.01)
        if self.plane_steps:  # one depth layer of the final grid
            final_unit = self._step_unit(extent, self._shape_for(extent, self.num_voxels_final))
        else:  # the edge of a cube voxel of the final grid
            final_unit = (float(extent.prod()) / self.num_voxels_final) ** (1.0 / 3.0)
        # density per unit length (NDC depth with plane steps): softplus(d + shift) / final_unit;
        # shift gives alpha_init per sample at the final step length (step_ratio units).
        self.sigma_scale = 1.0 / final_unit
        self.shift = softplus_bias_for_opacity(c.step_ratio, c.alpha_init)
        shape = self._shape_for(extent, self.target_num_voxels(0))
        self.density = nn.Parameter(torch.zeros(*shape, 1))
        if meta.ndc and c.ndc_uniform_init:
            self.density.data.copy_(self._uniform_depth_density(shape))
        if self.contracted and c.far_wall_init:
            self._make_far_wall(self.density.data)
        self.features = nn.Parameter(torch.zeros(*shape, c.feature_dim))
        self.register_buffer("occupancy", torch.ones(shape, dtype=torch.bool))
        self.register_buffer("box_fitted", torch.tensor(self.contracted))  # no fit: all space
        dir_dim = encoded_dim(3, c.dir_freqs)
        layers: list[nn.Module] = []
        d_in = c.feature_dim + dir_dim
        for _ in range(c.mlp_depth):
            layers += [nn.Linear(d_in, c.mlp_width), nn.ReLU(inplace=True)]
            d_in = c.mlp_width
        layers.append(nn.Linear(d_in, 3))
        self.mlp = nn.Sequential(*layers)
        # colour = sigmoid(features[:3] + MLP(...)); the MLP starts at zero so switching it on
        # at `mlp_start` changes nothing at once
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("mlp_on", torch.tensor(config.mlp_start <= 0))
        use_appearance = meta.unbounded if c.appearance is None else c.appearance
        n_images = len(meta.train_c2w)
        self.appearance = AppearanceAffine(n_images) if use_appearance and n_images else None
        self.use_mask = False
        self._grid_box = (self.lo.clone(), self.hi.clone())  # box the grid tensors are stored over
        # termination points of opaque training rays over the last 8 steps, for `fit_box`; not
        # in checkpoints (a resumed run gathers them afresh before fitting the box)
        self._surface_pts: list[Tensor] = []

    # -- grid geometry ------------------------------------------------------------------------
    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return tuple(self.density.shape[:3])  # type: ignore[return-value]

    def _step_unit(self, extent: Tensor, shape: tuple[int, int, int]) -> float:
        """The length samples are spaced in (`step_ratio` of it) and density is measured per:
        the depth of one voxel layer with NDC plane steps, else the mean voxel edge."""
        size = torch.tensor(shape, dtype=torch.float32) - 1
        if self.plane_steps:
            return float(extent[2]) / float(size[2])
        return float((extent.cpu() / size).prod() ** (1.0 / 3.0))

    @property
    def step_unit(self) -> float:
        """`_step_unit` of the current grid."""
        return self._step_unit((self.hi - self.lo).cpu(), self.grid_shape)

    def _uniform_depth_density(self, shape: tuple[int, int, int]) -> Tensor:
        """Raw density [X, Y, Z, 1] under which a ray entering at the front (z = lo) is equally
        likely to stop at every depth: T(u) = 1 - u over the box depth u in [0, 1], i.e.
        sigma = 1 / ((1 - u) depth) per unit of z, capped at the last layer."""
        z = shape[2]
        u = torch.linspace(0.0, 1.0, z)
        depth = float(self.hi[2] - self.lo[2])
        sigma = 1.0 / ((1.0 - u).clamp(min=1.0 / max(z - 1, 1)) * depth)
        raw = self.raw_from_sigma(sigma)
        return raw.view(1, 1, z, 1).expand(shape[0], shape[1], z, 1).clone()

    def _make_far_wall(self, density: Tensor) -> None:
        """Set the raw density [X, Y, Z, 1] of the grid's outermost vertex layer (the face of
        the contracted cube: infinitely far) to an opacity of 1 - exp(-10) per sample."""
        sigma = 10.0 / (self.config.step_ratio * self.step_unit)
        raw = float(self.raw_from_sigma(torch.tensor(sigma)))
        density[0], density[-1] = raw, raw
        density[:, 0], density[:, -1] = raw, raw
        density[:, :, 0], density[:, :, -1] = raw, raw

    def to_grid(self, pts: Tensor) -> Tensor:
        """World points [P, 3] -> continuous vertex coordinates [P, 3]."""
        size = torch.tensor(self.grid_shape, dtype=pts.dtype, device=pts.device) - 1
        return (pts - self.lo) / (self.hi - self.lo) * size

    def density_at(self, coords: Tensor) -> Tensor:
        """Raw density [P] at continuous vertex coordinates [P, 3] (before `sigma_from_raw`)."""
        return trilinear(self.density, coords, self.config.kernel).squeeze(1)

    def features_at(self, coords: Tensor) -> Tensor:
        """Appearance features [P, feature_dim] at continuous vertex coordinates [P, 3]."""
        return trilinear(self.features, coords, self.config.kernel)

    def sigma_from_raw(self, raw: Tensor) -> Tensor:
        return F.softplus(raw + self.shift) * self.sigma_scale

    def raw_from_sigma(self, sigma: Tensor) -> Tensor:
        """Inverse of `sigma_from_raw` (softplus^-1(sigma / sigma_scale) - shift, in float64
        for accuracy near 0), float32, same shape as sigma (> 0)."""
        y = (sigma / self.sigma_scale).double()
        return (y + torch.log(-torch.expm1(-y))).float() - self.shift

    # -- sampling -----------------------------------------------------------------------------
    def _march_args(self, rays: Rays, perturb: bool) -> tuple[MarchParams, float]:
        """What `march` / `march_composite` march (rays clipped to `march_box` and [near, far],
        steps of `step_ratio` voxels, jittered or centred), and the step length in world units
        (contracted scenes: in contracted length, the rays running out to `_FAR_CONTRACTED`
        inner radii)."""
        o, d = rays.origins, rays.directions
        lo, hi = self.march_box()
        step_world = self.config.step_ratio * self.step_unit
        jitter = torch.rand_like(rays.near) if perturb else torch.full_like(rays.near, 0.5)
        common = dict(
            origins=o,
            directions=d,
            jitter=jitter,
            occupancy=self.occupancy,
            use_mask=self.use_mask,
            lo=lo,
            hi=hi,
            max_samples=self.config.max_samples_per_ray,
        )
        if self.contracted:
            r = float(self.inner_radius)
            far = (o - self.inner_center).norm(dim=-1) + _FAR_CONTRACTED * r
            params = MarchParams(
                t_min=rays.near,
                t_max=torch.maximum(rays.far, far),
                step=torch.full_like(rays.near, step_world),
                contract=True,
                center=self.inner_center,
                radius=r,
                bg_len=self.config.bg_len,
                **common,
            )
            return params, step_world
        t_min, t_max = ray_aabb(o, d, lo, hi)
        # [R] step in units of t: step_world of length, or of NDC depth with plane steps
        speed = d[:, 2].abs().clamp(min=1e-6) if self.plane_steps else d.norm(dim=-1)
        params = MarchParams(
            t_min=torch.maximum(t_min, rays.near),
            t_max=torch.minimum(t_max, rays.far),
            step=step_world / speed,
            **common,
        )
        return params, step_world

    def march_box(self) -> tuple[Tensor, Tensor]:
        """The box (lo [3], hi [3]) rays are marched through and the occupancy mask spans: the
        grid's box (`dgrid`: the scene box; its grid box is in canonical space)."""
        return self.lo, self.hi

    def sample_rays(self, rays: Rays, perturb: bool) -> dict[str, Tensor]:
        """Packed samples every `step_ratio` voxels inside the grid box, empty space skipped.

        Returns:
            dict with ray_indices [P] (non-decreasing), t [P], coords [P, 3] (vertex units),
            deltas [P] (lengths the density is integrated over: world, or NDC depth with plane
            steps), t_steps [P] (the sample spacing in t).
        """
        params, step_world = self._march_args(rays, perturb)
        if self.training and self.train_stop > 0:
            params = self._stop_early(params, step_world)
        ray_idx, t, coords = march(params, self.config.kernel)
        deltas = torch.full_like(t, step_world)
        return {
            "ray_indices": ray_idx,
            "t": t,
            "coords": coords,
            "deltas": deltas,
            "t_steps": params.step[ray_idx],
        }

    @torch.no_grad()
    def _stop_early(self, params: MarchParams, step_world: float) -> MarchParams:
        """`params` with each ray's t_max cut just after the sample where its transmittance
        falls below `train_stop_transmittance` (a density-only fused pass with the current
        grid, same samples); unchanged where the fused kernel is unavailable."""
        res = march_composite(params, self._composite_params(step_world, 2.0, stop=None))
        if res is None:
            return params
        t_end = res[-1]
        # just past the stopping sample (steps vary along contracted rays: a relative margin)
        end = t_end * (1 + 1e-6) + 1e-6 if params.contract else t_end + 0.5 * params.step
        return dataclasses.replace(params, t_max=torch.minimum(params.t_max, end))

    def _composite_params(
        self, step_world: float, weight_threshold: float, stop: float | None
    ) -> CompositeParams:
        """How `march_composite` turns this grid's density into weights (see CompositeParams);
        stop None: the training `train_stop_transmittance`."""
        return CompositeParams(
            density=self.density,
            shift=self.shift,
            sigma_scale=self.sigma_scale,
            delta=step_world,
            weight_threshold=weight_threshold,
            stop_transmittance=self.train_stop if stop is None else stop,
        )

    # -- rendering ----------------------------------------------------------------------------
    def forward(self, rays: Rays) -> RenderOutput:
        c = self.config
        r = len(rays)
        if not self.training and c.kernel == "auto" and not torch.is_grad_enabled():
            out = self._render_fused(rays)
            if out is not None:
                return out
        s = self.sample_rays(rays, perturb=self.training)
        ray_idx, t = s["ray_indices"], s["t"]
        raw, field = self._field_density(rays, s)
        sigma = self.sigma_from_raw(raw)
        weights, _, _ = render_weights_packed(sigma, s["deltas"], ray_idx)
        acc = accumulate_packed(weights, ray_idx, r)
        thr = c.weight_threshold if bool(self.mlp_on) else 0.0
        sel = (weights.detach() > thr).nonzero().squeeze(-1)
        w_sel, idx_sel = weights.index_select(0, sel), ray_idx[sel]
        vd_ray = self._view_encoding(rays)
        vd = None if vd_ray is None else vd_ray[idx_sel]
        rgb_s = self._colour(self._field_features(field, sel), vd)
        # contracted scenes train on a random background: rays that do not end on something
        # are wrong whatever the true colour, so the model learns to make every ray opaque
        bg = torch.rand(r, 3, device=acc.device) if self.training and self.contracted else None
        rgb = self._composite(rgb_s, w_sel, idx_sel, acc, bg, rays.camera)
        depth = accumulate_packed(weights * t, ray_idx, r) / acc.clamp(min=1e-10)
        out = GridOutput(
            rgb,
            depth,
            acc,
            num_samples=torch.tensor(float(t.shape[0])),
            num_colour_samples=torch.tensor(float(sel.shape[0])),
        )
        if self.training:
            out.w_sel, out.idx_sel, out.rgb_sel = w_sel, idx_sel, rgb_s
            if self.distortion_weight > 0:
                s_norm, s_len = self._distortion_coords(rays, s)
                out.distortion = distortion_loss_packed(weights, s_norm, s_len, ray_idx, r)
            if not bool(self.box_fitted):
                self._record_surfaces(rays, depth.detach(), acc.detach())
        else:
            self._report(out, field, weights.detach(), ray_idx)
        return out

    # the field at the samples: hooks that methods built on this one (dgrid) override
    def _field_density(self, rays: Rays, s: dict[str, Tensor]) -> tuple[Tensor, dict]:
        """Raw density [P] at the samples `s` of `sample_rays`, and what `_field_features` and
        `_report` need of this evaluation."""
        return self.density_at(s["coords"]), {"coords": s["coords"]}

    def _field_features(self, field: dict, sel: Tensor) -> Tensor:
        """Features [Q, feature_dim] of the samples sel [Q] of `_field_density`'s evaluation."""
        return self.features_at(field["coords"].index_select(0, sel))

    def _report(self, out: GridOutput, field: dict, weights: Tensor, ray_idx: Tensor) -> None:
        """Add what the method reports beyond colour, depth and opacity to `out` (not while
        training); weights [P] and ray_idx [P] are the samples'. Nothing for `grid`."""

    # the field at single points (export): one sample per point through the hooks above
    def _point_field(
        self, points: Tensor, viewdirs: Tensor | None, time: float | None
    ) -> tuple[Rays, Tensor, dict]:
        rays = Rays.at_points(points, viewdirs, time)
        p = contract(points, *self._contract_args()) if self.contracted else points
        idx = torch.arange(points.shape[0], device=points.device)
        s = {"ray_indices": idx, "t": points.new_zeros(points.shape[0]), "coords": self.to_grid(p)}
        raw, field = self._field_density(rays, s)
        return rays, raw, field

    def point_density(self, points: Tensor, time: float | None = None) -> Tensor:
        """Density [P] at points [P, 3] (scene space; contracted scenes contract them first)."""
        return self.sigma_from_raw(self._point_field(points, None, time)[1])

    def point_radiance(self, points: Tensor, viewdirs: Tensor, time: float | None = None) -> Tensor:
        """Colour [P, 3] at points [P, 3] seen along viewdirs [P, 3]; with appearance codes,
        the average transform (as for novel views)."""
        rays, _, field = self._point_field(points, viewdirs, time)
        idx = torch.arange(points.shape[0], device=points.device)
        rgb = self._colour(self._field_features(field, idx), self._view_encoding(rays))
        if self.appearance is not None:
            rgb = self.appearance(rgb, torch.ones_like(rgb[:, 0]), None)
        return rgb.clamp(0, 1)

    def field_box(self) -> tuple[Tensor, Tensor, float | None]:
        """The grid's box, voxel edge `step_unit`; for contracted scenes the inner cube (the
        shell around it is the far background)."""
        if self.contracted:
            r = float(self.inner_radius)
            return self.inner_center - r, self.inner_center + r, self.step_unit
        return self.lo.clone(), self.hi.clone(), self.step_unit

    def density_grid(self, time: float | None = None) -> Tensor | None:
        """The density grid itself (its vertices span `field_box`); None for contracted
        scenes, whose grid is in contracted space."""
        if self.contracted:
            return None
        return self.sigma_from_raw(self.density.detach()[..., 0])

    def _contract_args(self) -> tuple[Tensor, float, float]:
        return self.inner_center, float(self.inner_radius), self.config.bg_len

    def _distortion_coords(self, rays: Rays, s: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Positions [P] and lengths [P] of the samples `s` (`sample_rays`) in the normalised
        ray coordinate of the distortion loss: t over [near, far]; for contracted scenes the
        distance in contracted space from the ray's start over the cube's diagonal (the
        samples are equally spaced in contracted length)."""
        ray_idx, t = s["ray_indices"], s["t"]
        if not self.contracted:
            span = (rays.far - rays.near).clamp(min=1e-6)[ray_idx]
            return (t - rays.near[ray_idx]) / span, s["t_steps"] / span
        o, d = rays.origins[ray_idx], rays.directions[ray_idx]
        args = self._contract_args()
        start = contract(o + rays.near[ray_idx, None] * d, *args)
        dist = (contract(o + t[:, None] * d, *args) - start).norm(dim=-1)
        diag = float((self.hi - self.lo).norm())
        return dist / diag, s["deltas"] / diag

    def _render_fused(self, rays: Rays) -> GridOutput | None:
        """Inference through `march_composite` (marching, density and compositing in one C++
        pass with early termination); colour only for the samples it returns. The same image as
        the unfused path up to `stop_transmittance`. None where the kernel is unavailable."""
        c = self.config
        params, step_world = self._march_args(rays, perturb=False)
        thr = c.weight_threshold if bool(self.mlp_on) else 0.0
        composite = self._composite_params(step_world, thr, stop=c.stop_transmittance)
        res = march_composite(params, composite)
        if res is None:
            return None
        acc, wt, idx_sel, coords, w_sel, evals, _ = res
        vd_ray = self._view_encoding(rays)
        rgb_s = torch.empty(coords.shape[0], 3, dtype=coords.dtype, device=coords.device)
        # colour in blocks of samples whose activations stay in cache (the MLP is thin: on the
        # whole chunk at once it is bound by memory traffic, measured 2x slower)
        for i in range(0, coords.shape[0], _COLOUR_BLOCK):
            sl = slice(i, i + _COLOUR_BLOCK)
            vd = None if vd_ray is None else vd_ray[idx_sel[sl]]
            rgb_s[sl] = self._colour(self.features_at(coords[sl]), vd, fused=True)
        return GridOutput(
            self._composite(rgb_s, w_sel, idx_sel, acc, camera=rays.camera),
            wt / acc.clamp(min=1e-10),
            acc,
            num_samples=evals.float(),
            num_colour_samples=torch.tensor(float(idx_sel.shape[0])),
        )

    def _view_encoding(self, rays: Rays) -> Tensor | None:
        """[R, Cd] encoded view directions for the colour MLP; None before it is switched on."""
        if not bool(self.mlp_on):
            return None
        return positional_encoding(rays.viewdirs, self.config.dir_freqs)

    def _colour(self, feat: Tensor, vd: Tensor | None, fused: bool = False) -> Tensor:
        """Sample colours [Q, 3] = sigmoid(features[:3] + MLP(features, vd)); without the MLP
        where vd is None (before `mlp_start`).

        Args:
            feat: [Q, feature_dim] features; vd: [Q, Cd] encoded view directions or None.
            fused: run `self.mlp` with bias and ReLU fused into the products (no autograd).
        """
        logits = feat[:, :3]
        if vd is not None:
            h = torch.cat([feat, vd], dim=-1)
            if fused:
                lins = [m for m in self.mlp if isinstance(m, nn.Linear)]
                for k, lin in enumerate(lins):
                    h = fused_linear(h, lin.weight, lin.bias, relu=k < len(lins) - 1)
            else:
                h = self.mlp(h)
            logits = logits + h
        return torch.sigmoid(logits)

    def _composite(
        self,
        rgb_s: Tensor,
        w_sel: Tensor,
        idx_sel: Tensor,
        acc: Tensor,
        bg: Tensor | None = None,
        camera: Tensor | None = None,
    ) -> Tensor:
        """Ray colours [R, 3]: sum of w_sel [Q] x rgb_s [Q, 3] over each ray's samples (idx_sel
        [Q]), through the per-image appearance transform of each ray's image (camera [R], or
        None: the average one) where enabled, plus the background (bg [R, 3], default the
        scene's) seen through 1 - acc [R]."""
        rgb = accumulate_packed(w_sel[:, None] * rgb_s, idx_sel, acc.shape[0])
        if self.appearance is not None:
            rgb = self.appearance(rgb, acc, camera)
        return rgb + (1.0 - acc[:, None]) * (self.background if bg is None else bg).to(rgb)

    def loss(self, out: RenderOutput, rgb_true: Tensor) -> dict[str, Tensor]:
        c = self.config
        mse = torch.mean((out.rgb - rgb_true) ** 2)
        losses = {"mse": mse}
        total = mse
        if c.rgbper_weight > 0 and isinstance(out, GridOutput) and out.w_sel is not None:
            err = ((out.rgb_sel - rgb_true[out.idx_sel]) ** 2).sum(-1)
            rgbper = (out.w_sel * err).sum() / rgb_true.shape[0]
            losses["rgbper"] = rgbper
            total = total + c.rgbper_weight * rgbper
        if self.entropy_weight > 0:
            a = out.acc.clamp(1e-6, 1 - 1e-6)
            ent = -(a * torch.log(a) + (1 - a) * torch.log(1 - a)).mean()
            losses["entropy"] = ent
            total = total + self.entropy_weight * ent
        if isinstance(out, GridOutput) and out.distortion is not None:
            dist = out.distortion.mean()
            losses["distortion"] = dist
            total = total + self.distortion_weight * dist
        if self.tv_weight > 0 or self.tv_feature_weight > 0:
            tv_d, tv_f = self.total_variation(c.tv_voxels)
            if self.tv_weight > 0:
                losses["tv"] = tv_d
                total = total + self.tv_weight * tv_d
            if self.tv_feature_weight > 0:
                losses["tv_features"] = tv_f
                total = total + self.tv_feature_weight * tv_f
        losses["loss"] = total
        return losses

    def total_variation(self, count: int) -> tuple[Tensor, Tensor]:
        """Mean squared difference of the density and of the feature grid to their +x, +y, +z
        neighbours at the same `count` random vertices (unbiased estimates of the grids' total
        variation; features averaged over channels)."""
        x, y, z = self.grid_shape
        dev = self.density.device
        i = torch.randint(0, x - 1, (count,), device=dev)
        j = torch.randint(0, y - 1, (count,), device=dev)
        k = torch.randint(0, z - 1, (count,), device=dev)
        base = (i * y + j) * z + k

        # one gather of the vertices and their three neighbours (each gather's backward fills a
        # zero tensor the size of the grid); index_select, whose backward is index_add, not
        # indexing, whose index_put is several times slower on the CPU
        idx = torch.cat([base, base + y * z, base + z, base + 1])

        def tv(grid: Tensor) -> Tensor:
            g = grid.reshape(x * y * z, -1).index_select(0, idx)
            v, nx, ny, nz = g.unflatten(0, (4, count)).unbind(0)
            diff = (nx - v) ** 2 + (ny - v) ** 2 + (nz - v) ** 2
            return diff.mean()

        return tv(self.density), tv(self.features)

    # -- training schedule --------------------------------------------------------------------
    def param_groups(self, lr: float) -> list[dict]:
        gl = lr * self.config.grid_lr_scale
        # eps 1e-15: the density gradients of nearly empty space are tiny (softplus' ~ alpha_init)
        # and Adam's usual eps would freeze them there (DVGO does the same)
        return [
            {
                "params": [self.density],
                "lr": lr * self.config.density_lr_scale,
                "eps": 1e-15,
                "name": "density",
            },
            {"params": [self.features], "lr": gl, "eps": 1e-15, "name": "features"},
            {"params": list(self.mlp.parameters()), "lr": lr, "name": "mlp"},
        ] + (
            []
            if self.appearance is None
            else [{"params": list(self.appearance.parameters()), "lr": lr, "name": "appearance"}]
        )

    def target_num_voxels(self, step: int) -> int:
        c = self.config
        done = sum(1 for s in c.upsample_steps if step >= s)
        return max(8**3, self.num_voxels_final // (2 ** (len(c.upsample_steps) - done)))

    def _shape_for(self, extent: Tensor, num_voxels: int) -> tuple[int, int, int]:
        """Grid shape over a box of `extent` [3] with about `num_voxels` voxels, their counts per
        unit length in the ratio `axis_density` (isotropic except for NDC scenes)."""
        return grid_shape_for(extent * torch.tensor(self.axis_density), num_voxels)

    def prepare(self) -> None:
        """Build (or load) the fused CPU kernel when the grids are CPU float32 tensors: its
        first build takes about a minute, which a time-budgeted run should not pay."""
        if self.density.device.type == "cpu" and self.density.dtype == torch.float32:
            load_kernel()

    @torch.no_grad()
    def step_callback(self, step: int) -> bool:
        """Fit the box, grow the grids and refresh the occupancy mask on schedule.

        Returns:
            True when the parameters were replaced (the optimiser must be rebuilt).
        """
        c = self.config
        changed = False
        if step >= c.mlp_start:
            self.mlp_on.fill_(True)
        fit = c.fit_box_step >= 0 and step >= c.fit_box_step and self.box_fit_ready(step)
        if fit and not bool(self.box_fitted):
            # retried every step until something is occupied, at the latest at the last growth
            last = step >= max(c.upsample_steps, default=c.fit_box_step)
            changed = self.fit_box(c.fit_box_threshold, force=last)
        target = self.target_num_voxels(step)
        extent = (self.hi - self.lo).cpu()
        shape = self._shape_for(extent, target)
        if changed or (step in c.upsample_steps and shape != self.grid_shape):
            self.resample(self.lo, self.hi, shape)
            changed = True
        if (
            step >= c.occ_start
            and self.mask_ready()
            and (changed or (step - c.occ_start) % c.occ_every == 0)
        ):
            self.update_occupancy(c.occ_threshold)
        return changed

    def mask_ready(self) -> bool:
        """Whether the occupancy mask may be computed from the model now (always for a static
        scene; see `dgrid`)."""
        return True

    def box_fit_ready(self, step: int) -> bool:
        """Whether the model knows the whole scene well enough at `step` for `fit_box` (always
        for a static scene; see `dgrid`)."""
        return True

    @torch.no_grad()
    def _record_surfaces(self, rays: Rays, depth: Tensor, acc: Tensor) -> None:
        """Keep the termination points of opaque training rays, in the grid's space
        (`_box_points`), for `fit_box`."""
        hit = acc > 0.9
        pts = rays.origins[hit] + depth[hit, None] * rays.directions[hit]
        time = None if rays.time is None else rays.time[hit]
        self._surface_pts = [*self._surface_pts, self._box_points(pts, time)][-8:]

    def _box_points(self, pts: Tensor, time: Tensor | None) -> Tensor:
        """Surface points [P, 3] observed at times [P] (or None) -> the points [P, 3] the grid
        box is fitted to: themselves (`dgrid`: deformed into canonical space)."""
        return pts

    def fit_box(self, threshold: float, force: bool = False) -> bool:
        """Shrink the grid box to the scene content, plus a margin.

        The content is where opaque training rays (acc > 0.9) terminated over the last 8
        steps (0.1 % / 99.9 % quantiles per axis, plus 5 % of the scene box): floaters that
        barely stop rays do not stretch it. Without such rays (no training seen), the box of
        the vertices whose sample opacity exceeds `threshold`. If nothing is occupied the box
        is kept and, unless `force`, the fit stays pending. Under torchrun every rank fits
        the same box: the points of all ranks' rays are gathered in the order one process
        would hold them.
        Returns True when the box was fitted (call `resample`)."""
        pts = torch.cat(
            [all_gather_rows(p) for p in self._surface_pts] or [self.lo.new_zeros(0, 3)]
        )
        if pts.shape[0] >= 1000:
            self.box_fitted.fill_(True)
            margin = 0.05 * (self.scene_hi - self.scene_lo)
            q = torch.quantile(pts[:100_000], torch.tensor([0.001, 0.999]).to(pts), dim=0)
            self.lo.copy_(torch.maximum(q[0] - margin, self.lo))
            self.hi.copy_(torch.minimum(q[1] + margin, self.hi))
            self._surface_pts = []
            return True
        occ = self._alpha_grid() > threshold
        if not bool(occ.any()):
            if force:
                self.box_fitted.fill_(True)
            return False
        self.box_fitted.fill_(True)
        idx = occ.nonzero()
        size = torch.tensor(self.grid_shape, device=idx.device) - 1
        lo_i = (idx.amin(0) - 2).clamp(min=0).to(self.lo)
        hi_i = (idx.amax(0) + 2).minimum(size).to(self.lo)
        span = (self.hi - self.lo) / size.to(self.lo)
        new_lo, new_hi = self.lo + lo_i * span, self.lo + hi_i * span
        # the grids stay stored over the old box (`_grid_box`) until `resample`, which
        # step_callback calls right after this
        self.lo.copy_(new_lo)
        self.hi.copy_(new_hi)
        return True

    def _alpha_grid(self) -> Tensor:
        """[X, Y, Z] opacity of one sample at each vertex."""
        sigma = self.sigma_from_raw(self.density[..., 0])
        return 1.0 - torch.exp(-sigma * self.config.step_ratio * self.step_unit)

    @torch.no_grad()
    def resample(self, lo: Tensor, hi: Tensor, shape: tuple[int, int, int]) -> None:
        """Replace the grids by their trilinear samples on a `shape` grid over [lo, hi]
        (read from the box `_grid_box` they are stored over)."""
        old_lo, old_hi = self._grid_box
        dens = resample_grid(self.density.data, old_lo, old_hi, lo, hi, shape)
        feat = resample_grid(self.features.data, old_lo, old_hi, lo, hi, shape)
        self.density = nn.Parameter(dens)
        self.features = nn.Parameter(feat)
        self.occupancy = torch.ones(shape, dtype=torch.bool, device=dens.device)
        self._grid_box = (lo.clone(), hi.clone())

    @torch.no_grad()
    def update_occupancy(self, threshold: float) -> None:
        """Occupancy mask: vertices with sample opacity > threshold, dilated by one vertex."""
        occ = (self._alpha_grid() > threshold).float()[None, None]
        occ = F.max_pool3d(occ, kernel_size=3, stride=1, padding=1)[0, 0] > 0
        self.occupancy = occ
        self.use_mask = True

    # -- checkpoints: grids change shape during training ---------------------------------------
    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        for name in ("density", "features"):
            key = prefix + name
            if key in state_dict and state_dict[key].shape != getattr(self, name).shape:
                setattr(self, name, nn.Parameter(torch.empty_like(state_dict[key])))
        key = prefix + "occupancy"
        if key in state_dict and state_dict[key].shape != self.occupancy.shape:
            self.occupancy = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._grid_box = (self.lo.clone(), self.hi.clone())
        self.use_mask = not bool(self.occupancy.all())

    @property
    def eval_chunk_rays(self) -> int:  # type: ignore[override]
        """Rays per forward call when rendering whole images (`--grid.eval-chunk`)."""
        return self.config.eval_chunk
