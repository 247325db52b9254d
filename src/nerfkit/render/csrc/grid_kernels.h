// Fused CPU kernels of nerfkit.render.grid: float32 tensors, parallel with at::parallel_for.
// `load_kernel` (render/grid.py) builds this folder under a name derived from its content, so an
// edit here rebuilds them. trilinear.cpp and march.cpp hold the kernels, bindings.cpp the Python
// module (it reads `MarchParams` and `CompositeParams` of render/grid.py into the structs below).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

// Trilinear weights w[8] and flat offsets off[8] of the 8 vertices around the point p (vertex
// units, clamped to the grid) in a channels-last [X, Y, Z, C] grid.
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

// What to march: the fields of `MarchParams` (render/grid.py), every tensor contiguous.
struct MarchInputs {
  at::Tensor origins, directions;          // [R, 3] float
  at::Tensor t_min, t_max, step, jitter;   // [R] float
  at::Tensor occupancy;                    // [X, Y, Z] bool vertex mask over the box [lo, hi]
  bool use_mask;                           // false: every sample is kept
  at::Tensor lo, hi;                       // [3] float box corners
  int64_t max_samples;                     // cap on samples per ray
  bool contract;                           // unbounded: the grid covers contracted space
  at::Tensor center;                       // [3] float inner-cube centre (with contract)
  double radius, bg_len;                   // inner-cube half-width, shell thickness / radius
};

// How to composite: the fields of `CompositeParams` (render/grid.py).
struct CompositeInputs {
  at::Tensor density;  // [X, Y, Z, 1] float raw density at the vertices (contiguous)
  double shift, sigma_scale, delta, weight_threshold, stop_transmittance;
};

// trilinear.cpp: grid [X, Y, Z, C], coords [P, 3] (vertex units) -> [P, C].
at::Tensor trilinear_forward(at::Tensor grid, at::Tensor coords);

// trilinear.cpp: d loss / d grid [X, Y, Z, C] from grad_out [P, C]; size = {X, Y, Z, C}.
at::Tensor trilinear_backward(at::Tensor grad_out, at::Tensor coords, std::vector<int64_t> size);

// march.cpp: packed samples {ray_indices int64 [P], t [P], coords [P, 3]}.
std::vector<at::Tensor> march(const MarchInputs& in);

// march.cpp: {acc [R], sum of w t [R], ray_indices int64 [S], coords [S, 3], weights [S],
// number of density evaluations (int64 scalar), t_end [R] where each ray stopped}.
std::vector<at::Tensor> march_composite(const MarchInputs& in, const CompositeInputs& comp);

// planes.cpp: planes [K, H, W, C], uv [K, P, 2] (texel units: u along W, v along H) -> [K, P, C].
at::Tensor planes_forward(at::Tensor planes, at::Tensor uv);

// planes.cpp: {d loss / d planes [K, H, W, C], d loss / d uv [K, P, 2] (undefined unless need_uv)}.
std::vector<at::Tensor> planes_backward(at::Tensor grad_out, at::Tensor planes, at::Tensor uv,
                                        bool need_uv);

// planes.cpp: d loss / d coords [P, 3] of trilinear_forward(grid, coords) from grad_out [P, C].
at::Tensor trilinear_backward_coords(at::Tensor grad_out, at::Tensor grid, at::Tensor coords);
