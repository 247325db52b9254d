// Trilinear interpolation of a channels-last vertex grid and its gradient (`trilinear` in
// render/grid.py; `trilinear_reference` there is the same maths in PyTorch).
#include <ATen/Parallel.h>

#include "grid_kernels.h"

at::Tensor trilinear_forward(at::Tensor grid, at::Tensor coords) {
  TORCH_CHECK(grid.dim() == 4 && grid.is_contiguous() && grid.scalar_type() == at::kFloat);
  TORCH_CHECK(coords.dim() == 2 && coords.size(1) == 3 && coords.is_contiguous() &&
              coords.scalar_type() == at::kFloat);
  const int64_t X = grid.size(0), Y = grid.size(1), Z = grid.size(2), C = grid.size(3);
  const int64_t P = coords.size(0);
  auto out = at::empty({P, C}, grid.options());
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
at::Tensor trilinear_backward(at::Tensor grad_out, at::Tensor coords, std::vector<int64_t> size) {
  TORCH_CHECK(grad_out.is_contiguous() && grad_out.scalar_type() == at::kFloat);
  const int64_t X = size[0], Y = size[1], Z = size[2], C = size[3];
  const int64_t P = coords.size(0);
  auto grad = at::zeros({X, Y, Z, C}, grad_out.options());
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
