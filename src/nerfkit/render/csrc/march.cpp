// Ray marching through an occupancy mask (`march` in render/grid.py; `march_reference` there is
// the same float maths in PyTorch) and, for inference, marching fused with the density lookup and
// compositing (`march_composite`).
#include <ATen/Parallel.h>

#include "grid_kernels.h"

// Samples t = t_min + (k + jitter) * step (k = 0, 1, ...) along ray r while t < t_max (at most
// max_samples), kept where the grid vertex nearest to them is occupied (no mask: all). Same float
// operations as `march_reference`. Shared by `march` and `march_composite`.
struct Marcher {
  const float *o, *d, *t0, *t1, *st, *jt;
  const bool* occ;
  int64_t X, Y, Z, max_samples;
  float size[3], l[3], ext[3];
  bool contract;
  float cen[3], rad, bgl;
  explicit Marcher(const MarchInputs& in)
      : o(in.origins.data_ptr<float>()), d(in.directions.data_ptr<float>()),
        t0(in.t_min.data_ptr<float>()), t1(in.t_max.data_ptr<float>()),
        st(in.step.data_ptr<float>()), jt(in.jitter.data_ptr<float>()),
        occ(in.use_mask ? in.occupancy.data_ptr<bool>() : nullptr), X(in.occupancy.size(0)),
        Y(in.occupancy.size(1)), Z(in.occupancy.size(2)), max_samples(in.max_samples),
        contract(in.contract), rad((float)in.radius), bgl((float)in.bg_len) {
    const int64_t dims[3] = {X, Y, Z};
    for (int a = 0; a < 3; ++a) {
      size[a] = (float)(dims[a] - 1);
      l[a] = in.lo.data_ptr<float>()[a];
      ext[a] = in.hi.data_ptr<float>()[a] - l[a];
      cen[a] = contract ? in.center.data_ptr<float>()[a] : 0.0f;
    }
  }
  // Candidate samples of ray r (some may be rejected by `sample`).
  int64_t candidates(int64_t r) const {
    float n = std::ceil((t1[r] - t0[r]) / st[r]);
    return (int64_t)std::min(std::max(n, 0.0f), (float)max_samples);
  }
  // Vertex coordinates c of the point q (already contracted with `contract`); false where the
  // mask says the nearest vertex is empty.
  bool vertex(const float* q, float* c) const {
    const int64_t dims[3] = {X, Y, Z};
    int64_t v[3];
    for (int a = 0; a < 3; ++a) {
      c[a] = (q[a] - l[a]) / ext[a] * size[a];
      int64_t vi = (int64_t)std::nearbyint(c[a]);
      v[a] = std::min(std::max(vi, (int64_t)0), dims[a] - 1);
    }
    return !occ || occ[(v[0] * Y + v[1]) * Z + v[2]];
  }
  // `contract` of the world point p of ray r into q, and the contracted length per unit t
  // along the ray there (`contracted_speed`), from one evaluation of y = (p - c) / r.
  float contract_point(int64_t r, const float* p, float* q) const {
    const float* dr = d + 3 * r;
    float y[3], n = -1.0f;
    int am = 0;
    for (int a = 0; a < 3; ++a) {
      y[a] = (p[a] - cen[a]) / rad;
      if (std::fabs(y[a]) > n) { n = std::fabs(y[a]); am = a; }
    }
    if (n <= 1.0f) {
      for (int a = 0; a < 3; ++a) q[a] = p[a];
      return std::sqrt(dr[0] * dr[0] + dr[1] * dr[1] + dr[2] * dr[2]);
    }
    const float g = (1.0f + bgl - bgl / n) / n;
    const float gp = (2.0f * bgl / n - (1.0f + bgl)) / (n * n);
    const float dn = (y[am] > 0.0f ? 1.0f : (y[am] < 0.0f ? -1.0f : 0.0f)) * dr[am] / rad;
    float ss = 0.0f;
    for (int a = 0; a < 3; ++a) {
      q[a] = cen[a] + rad * (y[a] * g);
      const float v = g * (dr[a] / rad) + (gp * dn) * y[a];
      ss += v * v;
    }
    return rad * std::sqrt(ss);
  }
  // Candidate k of ray r: its t and vertex coordinates c; false if beyond t_max or unoccupied.
  bool sample(int64_t r, int64_t k, float& t, float* c) const {
    t = t0[r] + ((float)k + jt[r]) * st[r];
    if (!(t < t1[r])) return false;
    float p[3];
    for (int a = 0; a < 3; ++a) p[a] = o[3 * r + a] + t * d[3 * r + a];
    return vertex(p, c);
  }
  // Where a ray's march stands: the next candidate k and, with `contract`, its t.
  struct Cursor {
    int64_t k = 0, nk = 0;
    float t = 0.0f;
  };
  Cursor start(int64_t r) const {
    Cursor cur;
    if (!contract) {
      cur.nk = candidates(r);
    } else {
      float p[3], q[3];
      for (int a = 0; a < 3; ++a) p[a] = o[3 * r + a] + t0[r] * d[3 * r + a];
      cur.t = t0[r] + jt[r] * st[r] / std::max(contract_point(r, p, q), 1e-12f);
    }
    return cur;
  }
  // The next kept sample of ray r after `cur`: its t and vertex coordinates c; false when the
  // ray has no more. Linear: candidate k at t_min + (k + jitter) step. Contracted: each sample
  // `step` of contracted length after the previous one (t += step / speed).
  bool next(int64_t r, Cursor& cur, float& t, float* c) const {
    if (!contract) {
      while (cur.k < cur.nk)
        if (sample(r, cur.k++, t, c)) return true;
      return false;
    }
    float p[3], q[3];
    while (cur.k < max_samples && cur.t < t1[r]) {
      t = cur.t;
      for (int a = 0; a < 3; ++a) p[a] = o[3 * r + a] + t * d[3 * r + a];
      const float speed = std::max(contract_point(r, p, q), 1e-12f);
      cur.t = t + st[r] / speed;
      ++cur.k;
      if (vertex(q, c)) return true;
    }
    return false;
  }
};

// Packed samples t = t_min + (k + jitter) * step (k = 0, 1, ...) while t < t_max (at most
// max_samples per ray), keeping those whose nearest grid vertex is occupied (no mask: all).
// Same float operations as `march_reference`. Returns (ray_indices int64 [P], t [P], coords [P,3]).
std::vector<at::Tensor> march(const MarchInputs& in) {
  const int64_t R = in.origins.size(0);
  const Marcher m(in);
  auto visit = [&](int64_t r, auto&& emit) {
    Marcher::Cursor cur = m.start(r);
    float t, c[3];
    while (m.next(r, cur, t, c)) emit(t, c);
  };
  auto counts = at::zeros({R}, at::kLong);
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
  auto ray_idx = at::empty({P}, at::kLong);
  auto ts = at::empty({P}, in.origins.options());
  auto coords = at::empty({P, 3}, in.origins.options());
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
// sigma delta); w = T alpha. A ray stops once T < stop_transmittance. Returns acc [R], sum of
// w t [R], and the packed samples with w > weight_threshold: ray_indices int64 [S], coords [S, 3],
// weights [S]; the number of samples whose density was evaluated (int64 scalar); and t_end [R],
// the t of the sample at which the ray stopped (t_max where it did not stop).
std::vector<at::Tensor> march_composite(const MarchInputs& in, const CompositeInputs& comp) {
  const at::Tensor& density = comp.density;
  TORCH_CHECK(density.dim() == 4 && density.size(3) == 1 && density.is_contiguous() &&
              density.scalar_type() == at::kFloat);
  const double shift = comp.shift, sigma_scale = comp.sigma_scale, delta = comp.delta;
  const double weight_thr = comp.weight_threshold, t_stop = comp.stop_transmittance;
  const int64_t R = in.origins.size(0);
  const Marcher m(in);
  const float* g = density.data_ptr<float>();
  const int64_t X = density.size(0), Y = density.size(1), Z = density.size(2);
  TORCH_CHECK(in.occupancy.size(0) == X && in.occupancy.size(1) == Y && in.occupancy.size(2) == Z);
  auto acc_t = at::zeros({R}, in.origins.options());
  auto wt_t = at::zeros({R}, in.origins.options());
  float* acc = acc_t.data_ptr<float>();
  float* wts = wt_t.data_ptr<float>();
  auto tend_t = at::empty({R}, in.origins.options());
  float* tend = tend_t.data_ptr<float>();
  const float* t_max = in.t_max.data_ptr<float>();
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
        double tau_sum = 0.0;
        float a_sum = 0.0f, wt_sum = 0.0f;
        tend[r] = t_max[r];
        Marcher::Cursor cur = m.start(r);
        float t, c[3];
        while (m.next(r, cur, t, c)) {
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
          if (std::exp(-tau_sum) < t_stop) {
            tend[r] = t;
            break;
          }
        }
        acc[r] = a_sum;
        wts[r] = wt_sum;
      }
    }
  });
  int64_t S = 0;
  std::vector<int64_t> start(nb);
  for (int64_t b = 0; b < nb; ++b) { start[b] = S; S += (int64_t)b_ray[b].size(); }
  auto ray_idx = at::empty({S}, at::kLong);
  auto coords = at::empty({S, 3}, in.origins.options());
  auto weights = at::empty({S}, in.origins.options());
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
  return {acc_t, wt_t, ray_idx, coords, weights, at::full({}, evals, at::kLong), tend_t};
}
