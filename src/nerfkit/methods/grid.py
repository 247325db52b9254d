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

Training: the grids start at `num_voxels_final / 2**len(upsample_steps)` voxels and double in
count at each of `upsample_steps` (the trainer rebuilds the optimiser when `step_callback`
returns True); at `fit_box_step` the grids are resampled onto the bounding box of what is
occupied (most of the scene box is empty), so the final voxels are spent on the object.
Losses: MSE, DVGO's per-sample colour loss, a background-entropy loss on the opacity, and a
total-variation term on a random subset of voxels.

The trilinear gather and its scatter-add backward run in a small C++/OpenMP kernel built at first
use (torch.utils.cpp_extension, cached under ~/.cache/torch_extensions) for CPU tensors; the
pure-PyTorch reference path (`trilinear_reference`) is used on CUDA, when no compiler is present
(with one warning), or with `kernel="torch"`. Tests compare the two.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfkit.cameras import Rays
from nerfkit.data.scene import SceneMeta
from nerfkit.methods.base import Method, RenderOutput
from nerfkit.render.encoding import encoded_dim, positional_encoding
from nerfkit.render.volume import accumulate_packed, render_weights_packed


@dataclass
class GridConfig:
    """Options of the `grid` method (dense voxel grids, DVGO-style)."""

    train_defaults: ClassVar[dict] = {"lr": 1e-3, "lr_final": 1e-4, "batch_rays": 4096}
    """TrainConfig values used when the user gives none (see TrainConfig.resolve_defaults)."""

    num_voxels_final: int = 160**3
    """Voxels of the density and feature grids at the end of coarse-to-fine growth."""
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
    rgbper_weight: float = 0.01
    """Per-sample colour loss sum_i w_i |c_i - c|^2 (DVGO); 0 = off."""
    entropy_weight: float = 0.01
    """Background entropy loss on the opacity (pushes acc to 0 or 1); 0 = off."""
    tv_weight: float = 0.0
    """Total variation of the density grid (random subset of voxels per step); 0 = off."""
    tv_voxels: int = 65536
    max_samples_per_ray: int = 2048
    """Safety cap on samples per ray."""
    kernel: Literal["auto", "torch"] = "auto"
    """'auto': fused C++ kernel for CPU tensors when it builds; 'torch': reference path only."""
    eval_chunk: int = 32768
    """Rays per forward call when rendering whole images."""


# ----------------------------------------------------------------------------------------------
# trilinear interpolation: reference and fused kernel
# ----------------------------------------------------------------------------------------------


def trilinear_reference(grid: Tensor, coords: Tensor) -> Tensor:
    """Trilinear interpolation of a channels-last grid at continuous vertex coordinates.

    Args:
        grid: [X, Y, Z, C] values at integer vertex coordinates (X, Y, Z >= 2).
        coords: [P, 3] continuous coordinates in vertex units (0 .. X-1 etc.), clamped to the grid.
    Returns:
        [P, C]: sum over the 8 surrounding vertices v of prod_k (1 - |coords_k - v_k|) grid[v].
        Differentiable with respect to `grid` (plain tensor ops; runs on any device).
    """
    size = grid.shape[:3]
    c = grid.shape[3]
    hi = torch.tensor([s - 1 for s in size], dtype=coords.dtype, device=coords.device)
    u = coords.clamp(min=0.0).minimum(hi)
    i0 = torch.minimum(u.floor(), hi - 1)
    f = u - i0
    i0 = i0.long()
    strides = (size[1] * size[2], size[2], 1)
    flat = grid.reshape(-1, c)
    base = i0[:, 0] * strides[0] + i0[:, 1] * strides[1] + i0[:, 2] * strides[2]  # [P]
    out = None
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1.0 - f[:, 0]
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1.0 - f[:, 1]
            for dz in (0, 1):
                wz = f[:, 2] if dz else 1.0 - f[:, 2]
                idx = base + (dx * strides[0] + dy * strides[1] + dz * strides[2])
                term = flat.index_select(0, idx) * (wx * wy * wz)[:, None]
                out = term if out is None else out + term
    return out


_CPP_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>

// Trilinear weights and flat offsets of the 8 vertices around a point in vertex units.
static inline void corners(const float* p, int64_t X, int64_t Y, int64_t Z, int64_t C,
                           int64_t* off, float* w) {
  float lim[3] = {(float)(X - 1), (float)(Y - 1), (float)(Z - 1)};
  int64_t i0[3]; float f[3];
  for (int k = 0; k < 3; ++k) {
    float u = std::min(std::max(p[k], 0.0f), lim[k]);
    float fl = std::min(std::floor(u), lim[k] - 1.0f);
    i0[k] = (int64_t)fl; f[k] = u - fl;
  }
  const int64_t sx = Y * Z * C, sy = Z * C, sz = C;
  const int64_t base = i0[0] * sx + i0[1] * sy + i0[2] * sz;
  int n = 0;
  for (int dx = 0; dx < 2; ++dx) {
    float wx = dx ? f[0] : 1.0f - f[0];
    for (int dy = 0; dy < 2; ++dy) {
      float wy = dy ? f[1] : 1.0f - f[1];
      for (int dz = 0; dz < 2; ++dz) {
        float wz = dz ? f[2] : 1.0f - f[2];
        off[n] = base + dx * sx + dy * sy + dz * sz;
        w[n] = wx * wy * wz;
        ++n;
      }
    }
  }
}

torch::Tensor trilinear_forward(torch::Tensor grid, torch::Tensor coords) {
  TORCH_CHECK(grid.dim() == 4 && grid.is_contiguous() && grid.scalar_type() == torch::kFloat);
  TORCH_CHECK(coords.dim() == 2 && coords.size(1) == 3 && coords.is_contiguous() &&
              coords.scalar_type() == torch::kFloat);
  const int64_t X = grid.size(0), Y = grid.size(1), Z = grid.size(2), C = grid.size(3);
  const int64_t P = coords.size(0);
  auto out = torch::empty({P, C}, grid.options());
  const float* g = grid.data_ptr<float>();
  const float* q = coords.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, P, 2048, [&](int64_t b, int64_t e) {
    int64_t off[8]; float w[8];
    for (int64_t p = b; p < e; ++p) {
      corners(q + 3 * p, X, Y, Z, C, off, w);
      float* op = o + p * C;
      for (int64_t c = 0; c < C; ++c) op[c] = 0.0f;
      for (int k = 0; k < 8; ++k) {
        const float* gp = g + off[k];
        const float wk = w[k];
        for (int64_t c = 0; c < C; ++c) op[c] += wk * gp[c];
      }
    }
  });
  return out;
}

// d loss / d grid: scatter-add of w_k * grad_out into the 8 vertices of every point.
// No atomics: each thread owns a slab of x and scans all points, writing only its own vertices.
torch::Tensor trilinear_backward(torch::Tensor grad_out, torch::Tensor coords,
                                 std::vector<int64_t> size) {
  TORCH_CHECK(grad_out.is_contiguous() && grad_out.scalar_type() == torch::kFloat);
  const int64_t X = size[0], Y = size[1], Z = size[2], C = size[3];
  const int64_t P = coords.size(0);
  auto grad = torch::zeros({X, Y, Z, C}, grad_out.options());
  float* gg = grad.data_ptr<float>();
  const float* q = coords.data_ptr<float>();
  const float* go = grad_out.data_ptr<float>();
  const int64_t sx = Y * Z * C;
  at::parallel_for(0, X, 1, [&](int64_t xb, int64_t xe) {
    const int64_t lo = xb * sx, hi = xe * sx;
    int64_t off[8]; float w[8];
    for (int64_t p = 0; p < P; ++p) {
      float ux = std::min(std::max(q[3 * p], 0.0f), (float)(X - 1));
      int64_t ix = (int64_t)std::min(std::floor(ux), (float)(X - 2));
      if (ix + 1 < xb || ix >= xe) continue;
      corners(q + 3 * p, X, Y, Z, C, off, w);
      const float* gp = go + p * C;
      for (int k = 0; k < 8; ++k) {
        if (off[k] < lo || off[k] >= hi) continue;
        float* dst = gg + off[k];
        const float wk = w[k];
        for (int64_t c = 0; c < C; ++c) dst[c] += wk * gp[c];
      }
    }
  });
  return grad;
}

// Packed samples t = t_min + (k + jitter) * step (k = 0, 1, ...) while t < t_max (at most
// max_samples per ray), keeping those whose nearest grid vertex is occupied (no mask: all).
// Same float operations as `march_reference`. Returns (ray_indices int64 [P], t [P], coords [P,3]).
std::vector<torch::Tensor> march(torch::Tensor origins, torch::Tensor dirs, torch::Tensor t_min,
                                 torch::Tensor t_max, torch::Tensor step, torch::Tensor jitter,
                                 torch::Tensor occupancy, bool use_mask, torch::Tensor lo,
                                 torch::Tensor hi, int64_t max_samples) {
  const int64_t R = origins.size(0);
  const float* o = origins.data_ptr<float>();
  const float* d = dirs.data_ptr<float>();
  const float* t0 = t_min.data_ptr<float>();
  const float* t1 = t_max.data_ptr<float>();
  const float* st = step.data_ptr<float>();
  const float* jt = jitter.data_ptr<float>();
  const bool* occ = use_mask ? occupancy.data_ptr<bool>() : nullptr;
  const int64_t X = occupancy.size(0), Y = occupancy.size(1), Z = occupancy.size(2);
  const float size[3] = {(float)(X - 1), (float)(Y - 1), (float)(Z - 1)};
  const int64_t dims[3] = {X, Y, Z};
  float l[3], ext[3];
  for (int a = 0; a < 3; ++a) {
    l[a] = lo.data_ptr<float>()[a];
    ext[a] = hi.data_ptr<float>()[a] - l[a];
  }
  auto visit = [&](int64_t r, auto&& emit) {
    float n = std::ceil((t1[r] - t0[r]) / st[r]);
    n = std::min(std::max(n, 0.0f), (float)max_samples);
    const int64_t nk = (int64_t)n;
    for (int64_t k = 0; k < nk; ++k) {
      const float t = t0[r] + ((float)k + jt[r]) * st[r];
      if (!(t < t1[r])) continue;
      float c[3];
      int64_t v[3];
      for (int a = 0; a < 3; ++a) {
        const float p = o[3 * r + a] + t * d[3 * r + a];
        c[a] = (p - l[a]) / ext[a] * size[a];
        int64_t vi = (int64_t)std::nearbyint(c[a]);
        v[a] = std::min(std::max(vi, (int64_t)0), dims[a] - 1);
      }
      if (occ && !occ[(v[0] * Y + v[1]) * Z + v[2]]) continue;
      emit(t, c);
    }
  };
  auto counts = torch::zeros({R}, torch::kLong);
  int64_t* cnt = counts.data_ptr<int64_t>();
  at::parallel_for(0, R, 256, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t m = 0;
      visit(r, [&](float, const float*) { ++m; });
      cnt[r] = m;
    }
  });
  auto offsets = counts.cumsum(0) - counts;
  const int64_t P = R ? (offsets[R - 1].item<int64_t>() + cnt[R - 1]) : 0;
  const int64_t* off = offsets.data_ptr<int64_t>();
  auto ray_idx = torch::empty({P}, torch::kLong);
  auto ts = torch::empty({P}, origins.options());
  auto coords = torch::empty({P, 3}, origins.options());
  int64_t* ri = ray_idx.data_ptr<int64_t>();
  float* tp = ts.data_ptr<float>();
  float* cp = coords.data_ptr<float>();
  at::parallel_for(0, R, 256, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t i = off[r];
      visit(r, [&](float t, const float* c) {
        ri[i] = r; tp[i] = t;
        cp[3 * i] = c[0]; cp[3 * i + 1] = c[1]; cp[3 * i + 2] = c[2];
        ++i;
      });
    }
  });
  return {ray_idx, ts, coords};
}
"""

_kernel_lock = threading.Lock()
_kernel_module: object | None = None
_kernel_failed = False


def load_kernel() -> object | None:
    """The fused CPU kernel module, built on first use (None, with one warning, if it cannot be).

    Set NERFKIT_NO_KERNEL=1 to skip it. The build is cached under ~/.cache/torch_extensions.
    """
    global _kernel_module, _kernel_failed
    if _kernel_module is not None or _kernel_failed:
        return _kernel_module
    with _kernel_lock:
        if _kernel_module is not None or _kernel_failed:
            return _kernel_module
        if os.environ.get("NERFKIT_NO_KERNEL"):
            _kernel_failed = True
            return None
        try:
            from torch.utils.cpp_extension import load_inline

            _kernel_module = load_inline(
                name="nerfkit_grid_kernels_v3",
                cpp_sources=[_CPP_SOURCE],
                functions=["trilinear_forward", "trilinear_backward", "march"],
                # no FMA contraction: `march` must round exactly as `march_reference` does
                extra_cflags=["-O3", "-fopenmp", "-march=native", "-ffp-contract=off"],
                extra_ldflags=["-fopenmp"],
                verbose=False,
            )
        except Exception as e:  # noqa: BLE001 - any build failure means: use the reference path
            _kernel_failed = True
            warnings.warn(
                f"nerfkit grid: could not build the fused C++ kernel ({type(e).__name__}: "
                f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''}); using the "
                "pure-PyTorch path (slower). Install a C++ compiler and ninja to enable it.",
                RuntimeWarning,
                stacklevel=2,
            )
    return _kernel_module


class _TrilinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grid: Tensor, coords: Tensor) -> Tensor:  # noqa: ANN001
        kern = load_kernel()
        ctx.save_for_backward(coords)
        ctx.size = list(grid.shape)
        return kern.trilinear_forward(grid, coords)  # type: ignore[union-attr]

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, None]:  # noqa: ANN001
        (coords,) = ctx.saved_tensors
        kern = load_kernel()
        grad = kern.trilinear_backward(grad_out.contiguous(), coords, ctx.size)  # type: ignore
        return grad, None


def trilinear(grid: Tensor, coords: Tensor, kernel: str = "auto") -> Tensor:
    """Trilinear interpolation (see `trilinear_reference`), fused for CPU float32 tensors.

    Args:
        grid: [X, Y, Z, C] contiguous; coords: [P, 3] in vertex units.
        kernel: "auto" uses the C++ kernel for CPU float32 when available; "torch" never does.
    Returns:
        [P, C]
    """
    if (
        kernel == "auto"
        and grid.device.type == "cpu"
        and grid.dtype == torch.float32
        and coords.dtype == torch.float32
        and load_kernel() is not None
    ):
        return _TrilinearFn.apply(grid.contiguous(), coords.contiguous())
    return trilinear_reference(grid, coords)


# ----------------------------------------------------------------------------------------------
# geometry helpers
# ----------------------------------------------------------------------------------------------


def ray_aabb(origins: Tensor, directions: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Entry and exit distances of rays through an axis-aligned box (slab test).

    Args:
        origins, directions: [R, 3]; lo, hi: [3] box corners.
    Returns:
        t_min, t_max: [R]; the ray misses the box where t_max <= t_min.
    """
    d = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    inv = 1.0 / d
    t0 = (lo - origins) * inv
    t1 = (hi - origins) * inv
    t_min = torch.minimum(t0, t1).amax(dim=-1)
    t_max = torch.maximum(t0, t1).amin(dim=-1)
    return t_min, t_max


def march_reference(
    origins: Tensor,
    directions: Tensor,
    t_min: Tensor,
    t_max: Tensor,
    step: Tensor,
    jitter: Tensor,
    occupancy: Tensor,
    lo: Tensor,
    hi: Tensor,
    max_samples: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Packed samples along rays through a box, skipping unoccupied space.

    Ray r gets t = t_min + (k + jitter) * step for k = 0, 1, ... while t < t_max (at most
    `max_samples`); a sample is kept when the grid vertex nearest to it is set in `occupancy`
    (all True: no skipping).

    Args:
        origins, directions: [R, 3]; t_min, t_max, step, jitter: [R];
        occupancy: [X, Y, Z] bool vertex mask over the box [lo, hi] ([3] each).
    Returns:
        ray_indices [P] int64 non-decreasing, t [P], coords [P, 3] in vertex units.
    """
    dev, dt = origins.device, origins.dtype
    r = origins.shape[0]
    n = torch.ceil((t_max - t_min) / step).clamp(min=0, max=max_samples).long()
    total = int(n.sum())
    ray_idx = torch.repeat_interleave(torch.arange(r, device=dev), n, output_size=total)
    offsets = torch.cumsum(n, 0) - n
    k = torch.arange(total, device=dev) - offsets[ray_idx]
    t = t_min[ray_idx] + (k.to(dt) + jitter[ray_idx]) * step[ray_idx]
    keep = t < t_max[ray_idx]
    pts = origins[ray_idx] + t[:, None] * directions[ray_idx]
    shape = occupancy.shape
    size = torch.tensor([s - 1 for s in shape], dtype=dt, device=dev)
    coords = (pts - lo) / (hi - lo) * size
    near_v = coords.round().long()
    for a in range(3):
        near_v[:, a].clamp_(0, shape[a] - 1)
    flat = (near_v[:, 0] * shape[1] + near_v[:, 1]) * shape[2] + near_v[:, 2]
    keep = keep & occupancy.reshape(-1)[flat]
    sel = keep.nonzero().squeeze(-1)
    return ray_idx[sel], t[sel], coords[sel]


def march(
    origins: Tensor,
    directions: Tensor,
    t_min: Tensor,
    t_max: Tensor,
    step: Tensor,
    jitter: Tensor,
    occupancy: Tensor,
    use_mask: bool,
    lo: Tensor,
    hi: Tensor,
    max_samples: int,
    kernel: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """`march_reference` (mask applied only when `use_mask`), fused for CPU float32 tensors."""
    if (
        kernel == "auto"
        and origins.device.type == "cpu"
        and origins.dtype == torch.float32
        and load_kernel() is not None
    ):
        kern = load_kernel()
        ri, t, c = kern.march(  # type: ignore[union-attr]
            origins.contiguous(),
            directions.contiguous(),
            t_min.contiguous(),
            t_max.contiguous(),
            step.contiguous(),
            jitter.contiguous(),
            occupancy.contiguous(),
            use_mask,
            lo.contiguous(),
            hi.contiguous(),
            max_samples,
        )
        return ri, t, c
    occ = occupancy if use_mask else torch.ones_like(occupancy)
    return march_reference(
        origins, directions, t_min, t_max, step, jitter, occ, lo, hi, max_samples
    )


def grid_shape_for(extent: Tensor, num_voxels: int) -> tuple[int, int, int]:
    """Vertices per axis so that the box `extent` [3] holds about `num_voxels` cubic voxels."""
    voxel = (float(extent.prod()) / num_voxels) ** (1.0 / 3.0)
    return tuple(max(2, int(round(float(e) / voxel)) + 1) for e in extent)  # type: ignore


def resample_grid(
    grid: Tensor,
    old_lo: Tensor,
    old_hi: Tensor,
    new_lo: Tensor,
    new_hi: Tensor,
    shape: tuple[int, int, int],
) -> Tensor:
    """Values of a channels-last vertex grid over [old_lo, old_hi] at the vertices of a new grid.

    Args:
        grid: [X, Y, Z, C]; old_lo, old_hi, new_lo, new_hi: [3]; shape: new (X', Y', Z').
    Returns:
        [X', Y', Z', C] trilinear samples (border values outside the old box).
    """
    axes = [torch.linspace(float(new_lo[k]), float(new_hi[k]), shape[k]) for k in range(3)]
    pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).to(grid)  # [X', Y', Z', 3]
    size = torch.tensor(grid.shape[:3], dtype=grid.dtype, device=grid.device) - 1
    coords = (pts - old_lo.to(grid)) / (old_hi - old_lo).to(grid) * size
    out = trilinear_reference(grid, coords.reshape(-1, 3))
    return out.reshape(*shape, grid.shape[3]).contiguous()


# ----------------------------------------------------------------------------------------------
# the method
# ----------------------------------------------------------------------------------------------


class GridMethod(Method):
    """Density + feature voxel grids with a tiny colour MLP (see the module docstring)."""

    def __init__(self, config: GridConfig, meta: SceneMeta) -> None:
        super().__init__(meta)
        c = self.config = config
        box = torch.tensor(meta.aabb, dtype=torch.float32)
        self.register_buffer("scene_lo", box[0].clone())
        self.register_buffer("scene_hi", box[1].clone())
        # current (possibly fitted) grid box
        self.register_buffer("lo", box[0].clone())
        self.register_buffer("hi", box[1].clone())
        extent = box[1] - box[0]
        final_voxel = (float(extent.prod()) / c.num_voxels_final) ** (1.0 / 3.0)
        # density in world units: softplus(d + shift) / final_voxel; shift gives alpha_init per
        # sample at the final step length (step_ratio voxels).
        self.sigma_scale = 1.0 / final_voxel
        sp = -math.log(1.0 - c.alpha_init) / c.step_ratio
        self.shift = math.log(math.expm1(sp))
        n0 = max(8**3, c.num_voxels_final // (2 ** len(c.upsample_steps)))
        shape = grid_shape_for(extent, n0)
        self.density = nn.Parameter(torch.zeros(*shape, 1))
        self.features = nn.Parameter(torch.zeros(*shape, c.feature_dim))
        self.register_buffer("occupancy", torch.ones(shape, dtype=torch.bool))
        self.register_buffer("box_fitted", torch.tensor(False))
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
        self.use_mask = False
        self._grid_box = (self.lo.clone(), self.hi.clone())  # box the grid tensors are stored over

    # -- grid geometry ------------------------------------------------------------------------
    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return tuple(self.density.shape[:3])  # type: ignore[return-value]

    @property
    def voxel_size(self) -> float:
        """Current voxel edge (world units)."""
        size = torch.tensor(self.grid_shape, dtype=torch.float32) - 1
        return float(((self.hi - self.lo).cpu() / size).prod() ** (1.0 / 3.0))

    def to_grid(self, pts: Tensor) -> Tensor:
        """World points [P, 3] -> continuous vertex coordinates [P, 3]."""
        size = torch.tensor(self.grid_shape, dtype=pts.dtype, device=pts.device) - 1
        return (pts - self.lo) / (self.hi - self.lo) * size

    def sigma_from_raw(self, raw: Tensor) -> Tensor:
        return F.softplus(raw + self.shift) * self.sigma_scale

    # -- sampling -----------------------------------------------------------------------------
    def sample_rays(self, rays: Rays, perturb: bool) -> dict[str, Tensor]:
        """Packed samples every `step_ratio` voxels inside the grid box, empty space skipped.

        Returns:
            dict with ray_indices [P] (non-decreasing), t [P], coords [P, 3] (vertex units),
            deltas [P] (world lengths).
        """
        o, d = rays.origins, rays.directions
        dev = o.device
        t_min, t_max = ray_aabb(o, d, self.lo, self.hi)
        t_min = torch.maximum(t_min, rays.near)
        t_max = torch.minimum(t_max, rays.far)
        dnorm = d.norm(dim=-1)
        step_world = self.config.step_ratio * self.voxel_size
        step_t = step_world / dnorm  # [R] step in units of t
        r = o.shape[0]
        if perturb:
            jitter = torch.rand(r, device=dev, dtype=o.dtype)
        else:
            jitter = torch.full((r,), 0.5, device=dev, dtype=o.dtype)
        ray_idx, t, coords = march(
            o,
            d,
            t_min,
            t_max,
            step_t,
            jitter,
            self.occupancy,
            self.use_mask,
            self.lo,
            self.hi,
            self.config.max_samples_per_ray,
            self.config.kernel,
        )
        deltas = torch.full_like(t, step_world)
        return {"ray_indices": ray_idx, "t": t, "coords": coords, "deltas": deltas}

    # -- rendering ----------------------------------------------------------------------------
    def forward(self, rays: Rays) -> RenderOutput:
        c = self.config
        r = len(rays)
        s = self.sample_rays(rays, perturb=self.training)
        ray_idx, t, coords = s["ray_indices"], s["t"], s["coords"]
        raw = trilinear(self.density, coords, c.kernel)[:, 0]
        sigma = self.sigma_from_raw(raw)
        weights, _, _ = render_weights_packed(sigma, s["deltas"], ray_idx)
        acc = accumulate_packed(weights, ray_idx, r)
        thr = c.weight_threshold if bool(self.mlp_on) else 0.0
        sel = (weights.detach() > thr).nonzero().squeeze(-1)
        w_sel, idx_sel = weights[sel], ray_idx[sel]
        feat = trilinear(self.features, coords[sel], c.kernel)
        logits = feat[:, :3]
        if bool(self.mlp_on):
            vd = positional_encoding(rays.viewdirs, c.dir_freqs)[idx_sel]
            logits = logits + self.mlp(torch.cat([feat, vd], dim=-1))
        rgb_s = torch.sigmoid(logits)
        rgb = accumulate_packed(w_sel[:, None] * rgb_s, idx_sel, r)
        rgb = rgb + (1.0 - acc[:, None]) * self.background.to(rgb)
        depth = accumulate_packed(weights * t, ray_idx, r) / acc.clamp(min=1e-10)
        extras = {
            "num_samples": torch.tensor(float(t.shape[0])),
            "num_colour_samples": torch.tensor(float(sel.shape[0])),
        }
        if self.training:
            extras.update(w_sel=w_sel, idx_sel=idx_sel, rgb_sel=rgb_s)
            if not bool(self.box_fitted):
                self._record_surfaces(rays, depth.detach(), acc.detach())
        return RenderOutput(rgb, depth, acc, extras)

    def loss(self, out: RenderOutput, rgb_true: Tensor) -> dict[str, Tensor]:
        c = self.config
        mse = torch.mean((out.rgb - rgb_true) ** 2)
        losses = {"mse": mse}
        total = mse
        if c.rgbper_weight > 0 and "w_sel" in out.extras:
            e = out.extras
            err = ((e["rgb_sel"] - rgb_true[e["idx_sel"]]) ** 2).sum(-1)
            rgbper = (e["w_sel"] * err).sum() / rgb_true.shape[0]
            losses["rgbper"] = rgbper
            total = total + c.rgbper_weight * rgbper
        if c.entropy_weight > 0:
            a = out.acc.clamp(1e-6, 1 - 1e-6)
            ent = -(a * torch.log(a) + (1 - a) * torch.log(1 - a)).mean()
            losses["entropy"] = ent
            total = total + c.entropy_weight * ent
        if c.tv_weight > 0:
            tv = self.tv_density(c.tv_voxels)
            losses["tv"] = tv
            total = total + c.tv_weight * tv
        losses["loss"] = total
        return losses

    def tv_density(self, count: int) -> Tensor:
        """Mean squared difference of the density grid to its +x, +y, +z neighbours at `count`
        random vertices (an unbiased estimate of the grid's total variation)."""
        x, y, z = self.grid_shape
        dev = self.density.device
        g = self.density.reshape(-1)
        i = torch.randint(0, x - 1, (count,), device=dev)
        j = torch.randint(0, y - 1, (count,), device=dev)
        k = torch.randint(0, z - 1, (count,), device=dev)
        base = (i * y + j) * z + k
        v = g[base]
        return ((g[base + y * z] - v) ** 2 + (g[base + z] - v) ** 2 + (g[base + 1] - v) ** 2).mean()

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
        ]

    def target_num_voxels(self, step: int) -> int:
        c = self.config
        done = sum(1 for s in c.upsample_steps if step >= s)
        return max(8**3, c.num_voxels_final // (2 ** (len(c.upsample_steps) - done)))

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
        if c.fit_box_step >= 0 and step >= c.fit_box_step and not bool(self.box_fitted):
            # retried every step until something is occupied, at the latest at the last growth
            last = step >= max(c.upsample_steps, default=c.fit_box_step)
            changed = self.fit_box(c.fit_box_threshold, force=last)
        target = self.target_num_voxels(step)
        extent = (self.hi - self.lo).cpu()
        shape = grid_shape_for(extent, target)
        if changed or (step in c.upsample_steps and shape != self.grid_shape):
            self.resample(self.lo, self.hi, shape)
            changed = True
        if step >= c.occ_start and (changed or (step - c.occ_start) % c.occ_every == 0):
            self.update_occupancy(c.occ_threshold)
        return changed

    @torch.no_grad()
    @torch.no_grad()
    def _record_surfaces(self, rays: Rays, depth: Tensor, acc: Tensor) -> None:
        """Keep the termination points of opaque training rays (for `fit_box`)."""
        hit = acc > 0.9
        pts = rays.origins[hit] + depth[hit, None] * rays.directions[hit]
        self._surface_pts = ([*getattr(self, "_surface_pts", []), pts])[-8:]

    def fit_box(self, threshold: float, force: bool = False) -> bool:
        """Shrink the grid box to the scene content, plus a margin.

        The content is where opaque training rays (acc > 0.9) terminated over the last 8
        steps (0.1 % / 99.9 % quantiles per axis, plus 5 % of the scene box): floaters that
        barely stop rays do not stretch it. Without such rays (no training seen), the box of
        the vertices whose sample opacity exceeds `threshold`. If nothing is occupied the box
        is kept and, unless `force`, the fit stays pending.
        Returns True when the box was fitted (call `resample`)."""
        pts = torch.cat(getattr(self, "_surface_pts", []) or [self.lo.new_zeros(0, 3)])
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
        return 1.0 - torch.exp(-sigma * self.config.step_ratio * self.voxel_size)

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
    def eval_chunk_rays(self) -> int:
        return self.config.eval_chunk
