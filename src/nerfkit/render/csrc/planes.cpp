// Bilinear lookups in stacks of channels-last 2-D planes and their gradients (`sample_planes` in
// render/planes.py; `sample_planes_reference` there is the same maths in PyTorch), and the
// gradient of trilinear interpolation with respect to the coordinates (for deformed samples).
#include <ATen/Parallel.h>

#include "grid_kernels.h"

// Clamped texel coordinate u in [0, n - 1] -> lower index i0 (<= n - 2) and fraction f; inside
// is false where the clamp was active (the derivative with respect to u is then 0).
static inline void axis(float u, int64_t n, int64_t& i0, float& f, bool& inside) {
  const float lim = (float)(n - 1);
  inside = u > 0.0f && u < lim;
  u = std::min(std::max(u, 0.0f), lim);
  float fl = std::min(std::floor(u), std::max(lim - 1.0f, 0.0f));
  i0 = (int64_t)fl;
  f = u - fl;
}

// The 4 texels around the point uv (texel units) of one channels-last [H, W, C] plane: a = (y0, x0),
// b = (y0, x0 + 1), c = (y0 + 1, x0), d = (y0 + 1, x0 + 1), fractions fx, fy, and whether each
// coordinate was inside (not clamped).
struct Quad {
  const float *a, *b, *c, *d;
  float fx, fy;
  bool ix, iy;
};

static inline Quad quad(const float* plane, const float* uv, int64_t H, int64_t W, int64_t C) {
  int64_t x0, y0;
  Quad r;
  axis(uv[0], W, x0, r.fx, r.ix);
  axis(uv[1], H, y0, r.fy, r.iy);
  r.a = plane + (y0 * W + x0) * C;
  r.b = r.a + C;
  r.c = r.a + W * C;
  r.d = r.c + C;
  return r;
}

at::Tensor planes_forward(at::Tensor planes, at::Tensor uv) {
  TORCH_CHECK(planes.dim() == 4 && planes.is_contiguous() && planes.scalar_type() == at::kFloat);
  TORCH_CHECK(uv.dim() == 3 && uv.size(2) == 2 && uv.is_contiguous() &&
              uv.scalar_type() == at::kFloat && uv.size(0) == planes.size(0));
  const int64_t K = planes.size(0), H = planes.size(1), W = planes.size(2), C = planes.size(3);
  TORCH_CHECK(H >= 2 && W >= 2, "planes need at least 2 texels a side");
  const int64_t P = uv.size(1);
  auto out = at::empty({K, P, C}, planes.options());
  const float* g = planes.data_ptr<float>();
  const float* q = uv.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, P, 2048, [&](int64_t b, int64_t e) {
    for (int64_t k = 0; k < K; ++k) {
      const float* gk = g + k * H * W * C;
      for (int64_t p = b; p < e; ++p) {
        const Quad t = quad(gk, q + (k * P + p) * 2, H, W, C);
        const float w00 = (1 - t.fx) * (1 - t.fy), w01 = t.fx * (1 - t.fy),
                    w10 = (1 - t.fx) * t.fy, w11 = t.fx * t.fy;
        float* op = o + (k * P + p) * C;
        for (int64_t c = 0; c < C; ++c)
          op[c] = w00 * t.a[c] + w01 * t.b[c] + w10 * t.c[c] + w11 * t.d[c];
      }
    }
  });
  return out;
}

// d loss / d planes [K, H, W, C] and d loss / d uv [K, P, 2] from grad_out [K, P, C]. The planes'
// gradient is a scatter-add without atomics: each thread owns a range of (plane, row) pairs and
// scans the points of its planes, writing only its own rows.
std::vector<at::Tensor> planes_backward(at::Tensor grad_out, at::Tensor planes, at::Tensor uv,
                                        bool need_uv) {
  TORCH_CHECK(grad_out.is_contiguous() && grad_out.scalar_type() == at::kFloat);
  const int64_t K = planes.size(0), H = planes.size(1), W = planes.size(2), C = planes.size(3);
  const int64_t P = uv.size(1);
  auto grad = at::zeros({K, H, W, C}, planes.options());
  float* gg = grad.data_ptr<float>();
  const float* q = uv.data_ptr<float>();
  const float* go = grad_out.data_ptr<float>();
  at::parallel_for(0, K * H, 1, [&](int64_t rb, int64_t re) {
    for (int64_t k = rb / H; k <= (re - 1) / H; ++k) {
      const int64_t lo = std::max(rb - k * H, (int64_t)0), hi = std::min(re - k * H, H);
      float* gk = gg + k * H * W * C;
      for (int64_t p = 0; p < P; ++p) {
        const float* qp = q + (k * P + p) * 2;
        int64_t x0, y0; float fx, fy; bool ix, iy;
        axis(qp[1], H, y0, fy, iy);
        if (y0 + 1 < lo || y0 >= hi) continue;
        axis(qp[0], W, x0, fx, ix);
        const float* gp = go + (k * P + p) * C;
        for (int dy = 0; dy < 2; ++dy) {
          const int64_t y = y0 + dy;
          if (y < lo || y >= hi) continue;
          const float wy = dy ? fy : 1 - fy;
          float* r0 = gk + (y * W + x0) * C;
          const float w0 = (1 - fx) * wy, w1 = fx * wy;
          for (int64_t c = 0; c < C; ++c) { r0[c] += w0 * gp[c]; r0[C + c] += w1 * gp[c]; }
        }
      }
    }
  });
  at::Tensor guv = need_uv ? at::zeros({K, P, 2}, planes.options()) : at::Tensor();
  if (need_uv) {
    const float* g = planes.data_ptr<float>();
    float* gu = guv.data_ptr<float>();
    at::parallel_for(0, P, 2048, [&](int64_t b, int64_t e) {
      for (int64_t k = 0; k < K; ++k) {
        const float* gk = g + k * H * W * C;
        for (int64_t p = b; p < e; ++p) {
          const Quad t = quad(gk, q + (k * P + p) * 2, H, W, C);
          const float* gp = go + (k * P + p) * C;
          float su = 0.0f, sv = 0.0f;
          for (int64_t c = 0; c < C; ++c) {
            su += gp[c] * ((t.b[c] - t.a[c]) * (1 - t.fy) + (t.d[c] - t.c[c]) * t.fy);
            sv += gp[c] * ((t.c[c] - t.a[c]) * (1 - t.fx) + (t.d[c] - t.b[c]) * t.fx);
          }
          gu[(k * P + p) * 2] = t.ix ? su : 0.0f;
          gu[(k * P + p) * 2 + 1] = t.iy ? sv : 0.0f;
        }
      }
    });
  }
  return {grad, guv};
}

// d loss / d coords [P, 3] of trilinear interpolation of grid [X, Y, Z, C] at coords [P, 3]
// (vertex units) given grad_out [P, C]; 0 along an axis where the coordinate was clamped.
at::Tensor trilinear_backward_coords(at::Tensor grad_out, at::Tensor grid, at::Tensor coords) {
  TORCH_CHECK(grad_out.is_contiguous() && grid.is_contiguous() && coords.is_contiguous());
  const int64_t X = grid.size(0), Y = grid.size(1), Z = grid.size(2), C = grid.size(3);
  const int64_t P = coords.size(0);
  auto out = at::zeros({P, 3}, coords.options());
  const float* g = grid.data_ptr<float>();
  const float* q = coords.data_ptr<float>();
  const float* go = grad_out.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t n[3] = {X, Y, Z};
  const int64_t st[3] = {Y * Z * C, Z * C, C};
  at::parallel_for(0, P, 2048, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      int64_t i0[3]; float f[3]; bool in[3];
      for (int a = 0; a < 3; ++a) axis(q[3 * p + a], n[a], i0[a], f[a], in[a]);
      const float* base = g + i0[0] * st[0] + i0[1] * st[1] + i0[2] * st[2];
      const float* gp = go + p * C;
      float d[3] = {0.0f, 0.0f, 0.0f};
      for (int dx = 0; dx < 2; ++dx)
        for (int dy = 0; dy < 2; ++dy)
          for (int dz = 0; dz < 2; ++dz) {
            const float* v = base + dx * st[0] + dy * st[1] + dz * st[2];
            float s = 0.0f;
            for (int64_t c = 0; c < C; ++c) s += gp[c] * v[c];
            const float wx = dx ? f[0] : 1 - f[0], wy = dy ? f[1] : 1 - f[1],
                        wz = dz ? f[2] : 1 - f[2];
            d[0] += s * (dx ? 1.0f : -1.0f) * wy * wz;
            d[1] += s * wx * (dy ? 1.0f : -1.0f) * wz;
            d[2] += s * wx * wy * (dz ? 1.0f : -1.0f);
          }
      for (int a = 0; a < 3; ++a) o[3 * p + a] = in[a] ? d[a] : 0.0f;
    }
  });
  return out;
}
