"""Dense voxel grids: trilinear interpolation, ray marching through an occupancy mask, resampling.

Pure functions used by the `grid` method. Each has a pure-PyTorch version (runs on any device)
and, for CPU float32 tensors, a fused C++/OpenMP kernel built on first use with
torch.utils.cpp_extension (cached under ~/.cache/torch_extensions; needs a C++ compiler and
ninja). When the kernel cannot be built, one warning is given and the PyTorch path is used;
NERFKIT_NO_KERNEL=1 skips the build. Tests compare the two paths.
"""

from __future__ import annotations

import os
import threading
import warnings

import torch
from torch import Tensor


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

// Samples t = t_min + (k + jitter) * step (k = 0, 1, ...) along ray r while t < t_max (at most
// max_samples), kept where the grid vertex nearest to them is occupied (no mask: all). Same float
// operations as `march_reference`. Shared by `march` and `march_composite`.
struct Marcher {
  const float *o, *d, *t0, *t1, *st, *jt;
  const bool* occ;
  int64_t X, Y, Z, max_samples;
  float size[3], l[3], ext[3];
  Marcher(torch::Tensor origins, torch::Tensor dirs, torch::Tensor t_min, torch::Tensor t_max,
          torch::Tensor step, torch::Tensor jitter, torch::Tensor occupancy, bool use_mask,
          torch::Tensor lo, torch::Tensor hi, int64_t max_samples_)
      : o(origins.data_ptr<float>()), d(dirs.data_ptr<float>()), t0(t_min.data_ptr<float>()),
        t1(t_max.data_ptr<float>()), st(step.data_ptr<float>()), jt(jitter.data_ptr<float>()),
        occ(use_mask ? occupancy.data_ptr<bool>() : nullptr), X(occupancy.size(0)),
        Y(occupancy.size(1)), Z(occupancy.size(2)), max_samples(max_samples_) {
    const int64_t dims[3] = {X, Y, Z};
    for (int a = 0; a < 3; ++a) {
      size[a] = (float)(dims[a] - 1);
      l[a] = lo.data_ptr<float>()[a];
      ext[a] = hi.data_ptr<float>()[a] - l[a];
    }
  }
  // Candidate samples of ray r (some may be rejected by `sample`).
  int64_t candidates(int64_t r) const {
    float n = std::ceil((t1[r] - t0[r]) / st[r]);
    return (int64_t)std::min(std::max(n, 0.0f), (float)max_samples);
  }
  // Candidate k of ray r: its t and vertex coordinates c; false if beyond t_max or unoccupied.
  bool sample(int64_t r, int64_t k, float& t, float* c) const {
    t = t0[r] + ((float)k + jt[r]) * st[r];
    if (!(t < t1[r])) return false;
    const int64_t dims[3] = {X, Y, Z};
    int64_t v[3];
    for (int a = 0; a < 3; ++a) {
      const float p = o[3 * r + a] + t * d[3 * r + a];
      c[a] = (p - l[a]) / ext[a] * size[a];
      int64_t vi = (int64_t)std::nearbyint(c[a]);
      v[a] = std::min(std::max(vi, (int64_t)0), dims[a] - 1);
    }
    return !occ || occ[(v[0] * Y + v[1]) * Z + v[2]];
  }
};

// Packed samples t = t_min + (k + jitter) * step (k = 0, 1, ...) while t < t_max (at most
// max_samples per ray), keeping those whose nearest grid vertex is occupied (no mask: all).
// Same float operations as `march_reference`. Returns (ray_indices int64 [P], t [P], coords [P,3]).
std::vector<torch::Tensor> march(torch::Tensor origins, torch::Tensor dirs, torch::Tensor t_min,
                                 torch::Tensor t_max, torch::Tensor step, torch::Tensor jitter,
                                 torch::Tensor occupancy, bool use_mask, torch::Tensor lo,
                                 torch::Tensor hi, int64_t max_samples) {
  const int64_t R = origins.size(0);
  const Marcher m(origins, dirs, t_min, t_max, step, jitter, occupancy, use_mask, lo, hi,
                  max_samples);
  auto visit = [&](int64_t r, auto&& emit) {
    const int64_t nk = m.candidates(r);
    float t, c[3];
    for (int64_t k = 0; k < nk; ++k)
      if (m.sample(r, k, t, c)) emit(t, c);
  };
  auto counts = torch::zeros({R}, torch::kLong);
  int64_t* cnt = counts.data_ptr<int64_t>();
  at::parallel_for(0, R, 256, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t kept = 0;
      visit(r, [&](float, const float*) { ++kept; });
      cnt[r] = kept;
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

// Inference: `march`, the density lookup and compositing fused per ray, with early termination.
// Samples as in `march`; sigma = softplus(trilinear(density) + shift) * sigma_scale (torch's
// softplus: identity above 20); alpha = 1 - exp(-sigma delta); T = exp(-sum of earlier
// sigma delta); w = T alpha. A ray stops once T < t_stop. Returns acc [R], sum of w t [R], and the
// packed samples with w > weight_thr: ray_indices int64 [S], coords [S, 3], weights [S]; and the
// number of samples whose density was evaluated (int64 scalar).
std::vector<torch::Tensor> march_composite(
    torch::Tensor origins, torch::Tensor dirs, torch::Tensor t_min, torch::Tensor t_max,
    torch::Tensor step, torch::Tensor jitter, torch::Tensor occupancy, bool use_mask,
    torch::Tensor lo, torch::Tensor hi, int64_t max_samples, torch::Tensor density,
    double shift, double sigma_scale, double delta, double weight_thr, double t_stop) {
  TORCH_CHECK(density.dim() == 4 && density.size(3) == 1 && density.is_contiguous() &&
              density.scalar_type() == torch::kFloat);
  const int64_t R = origins.size(0);
  const Marcher m(origins, dirs, t_min, t_max, step, jitter, occupancy, use_mask, lo, hi,
                  max_samples);
  const float* g = density.data_ptr<float>();
  const int64_t X = density.size(0), Y = density.size(1), Z = density.size(2);
  TORCH_CHECK(occupancy.size(0) == X && occupancy.size(1) == Y && occupancy.size(2) == Z);
  auto acc_t = torch::zeros({R}, origins.options());
  auto wt_t = torch::zeros({R}, origins.options());
  float* acc = acc_t.data_ptr<float>();
  float* wts = wt_t.data_ptr<float>();
  const int64_t block = 512;
  const int64_t nb = (R + block - 1) / block;
  std::vector<std::vector<int64_t>> b_ray(nb);
  std::vector<std::vector<float>> b_val(nb);  // per kept sample: c0 c1 c2 w
  std::vector<int64_t> b_evals(nb, 0);  // density evaluations per block
  at::parallel_for(0, nb, 1, [&](int64_t bb, int64_t be) {
    int64_t off[8]; float w8[8];
    for (int64_t b = bb; b < be; ++b) {
      auto& rays_out = b_ray[b];
      auto& vals = b_val[b];
      for (int64_t r = b * block; r < std::min(R, (b + 1) * block); ++r) {
        const int64_t nk = m.candidates(r);
        double tau_sum = 0.0;
        float a_sum = 0.0f, wt_sum = 0.0f;
        for (int64_t k = 0; k < nk; ++k) {
          float t, c[3];
          if (!m.sample(r, k, t, c)) continue;
          ++b_evals[b];
          corners(c, X, Y, Z, 1, off, w8);
          float raw = 0.0f;
          for (int q = 0; q < 8; ++q) raw += w8[q] * g[off[q]];
          const double x = (double)raw + shift;
          const double sigma = (x > 20.0 ? x : std::log1p(std::exp(x))) * sigma_scale;
          const double tau = sigma * delta;
          const float alpha = (float)(1.0 - std::exp(-tau));
          const float trans = (float)std::exp(-tau_sum);
          const float w = trans * alpha;
          tau_sum += std::min(tau, 80.0);
          a_sum += w;
          wt_sum += w * t;
          if (w > weight_thr) {
            rays_out.push_back(r);
            vals.push_back(c[0]); vals.push_back(c[1]); vals.push_back(c[2]); vals.push_back(w);
          }
          if (std::exp(-tau_sum) < t_stop) break;
        }
        acc[r] = a_sum;
        wts[r] = wt_sum;
      }
    }
  });
  int64_t S = 0;
  std::vector<int64_t> start(nb);
  for (int64_t b = 0; b < nb; ++b) { start[b] = S; S += (int64_t)b_ray[b].size(); }
  auto ray_idx = torch::empty({S}, torch::kLong);
  auto coords = torch::empty({S, 3}, origins.options());
  auto weights = torch::empty({S}, origins.options());
  int64_t* ri = ray_idx.data_ptr<int64_t>();
  float* cp = coords.data_ptr<float>();
  float* wp = weights.data_ptr<float>();
  at::parallel_for(0, nb, 1, [&](int64_t bb, int64_t be) {
    for (int64_t b = bb; b < be; ++b) {
      const int64_t s0 = start[b];
      const auto& rr = b_ray[b];
      const auto& vv = b_val[b];
      for (size_t i = 0; i < rr.size(); ++i) {
        ri[s0 + i] = rr[i];
        cp[3 * (s0 + i)] = vv[4 * i]; cp[3 * (s0 + i) + 1] = vv[4 * i + 1];
        cp[3 * (s0 + i) + 2] = vv[4 * i + 2]; wp[s0 + i] = vv[4 * i + 3];
      }
    }
  });
  int64_t evals = 0;
  for (int64_t b = 0; b < nb; ++b) evals += b_evals[b];
  return {acc_t, wt_t, ray_idx, coords, weights, torch::full({}, evals, torch::kLong)};
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
                name="nerfkit_grid_kernels_v5",
                cpp_sources=[_CPP_SOURCE],
                functions=["trilinear_forward", "trilinear_backward", "march", "march_composite"],
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


def _cpu_kernel(*tensors: Tensor) -> object | None:
    """The fused kernel module when every tensor given is a CPU float32 tensor and it builds."""
    if all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors):
        return load_kernel()
    return None


def _contiguous(*args: object) -> list:
    """The arguments with each tensor made contiguous (what the C++ kernels index)."""
    return [a.contiguous() if isinstance(a, Tensor) else a for a in args]


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
    if kernel == "auto" and _cpu_kernel(grid, coords) is not None:
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
    kern = _cpu_kernel(origins) if kernel == "auto" else None
    if kern is not None:
        args = (origins, directions, t_min, t_max, step, jitter, occupancy, use_mask, lo, hi)
        ri, t, c = kern.march(*_contiguous(*args), max_samples)  # type: ignore[attr-defined]
        return ri, t, c
    occ = occupancy if use_mask else torch.ones_like(occupancy)
    return march_reference(
        origins, directions, t_min, t_max, step, jitter, occ, lo, hi, max_samples
    )


def march_composite(
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
    density: Tensor,
    shift: float,
    sigma_scale: float,
    delta: float,
    weight_threshold: float,
    stop_transmittance: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor] | None:
    """Inference: `march`, the density lookup and compositing fused per ray (C++ kernel only).

    Samples as `march` gives them (mask applied when `use_mask`); at each, sigma =
    softplus(trilinear(density) + shift) * sigma_scale, alpha = 1 - exp(-sigma delta),
    w = T alpha with T the transmittance before the sample (`render_weights_packed`). A ray stops
    once T < `stop_transmittance` (early termination: the samples skipped carry less than that
    weight in total).

    Args:
        origins, directions: [R, 3]; t_min, t_max, step, jitter: [R]; occupancy: [X, Y, Z] bool;
        lo, hi: [3]; density: [X, Y, Z, 1] raw density at the vertices (same grid as occupancy).
    Returns:
        (acc [R] = sum w, wt [R] = sum w t, ray_indices [S], coords [S, 3], weights [S] for the
        samples with w > weight_threshold, number of density evaluations (int64 scalar)); None
        where the kernel is unavailable (not CPU float32, or not built): use the unfused path.
    """
    kern = _cpu_kernel(origins, density)
    if kern is None:
        return None
    args = (origins, directions, t_min, t_max, step, jitter, occupancy, use_mask, lo, hi)
    out = kern.march_composite(  # type: ignore[attr-defined]
        *_contiguous(*args, max_samples, density.detach()),
        *(float(v) for v in (shift, sigma_scale, delta, weight_threshold, stop_transmittance)),
    )
    return tuple(out)  # type: ignore[return-value]


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
