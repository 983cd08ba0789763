// Elementwise ops: ReLU, addition, inverted dropout. Grid-stride loops; outputs
// may alias inputs element for element.
#include <string>

#include "cuda_common.cuh"
#include "tensor/random.h"

namespace st::cuda {
namespace {

__global__ void relu_forward_kernel(const float* x, float* y, int64_t n) {
  ST_GRID_STRIDE(i, n) {
    y[i] = x[i] > 0.0f ? x[i] : 0.0f;
  }
}

__global__ void relu_backward_kernel(const float* y, const float* dy, float* dx, int64_t n) {
  ST_GRID_STRIDE(i, n) {
    dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
  }
}

__global__ void add_kernel(const float* a, const float* b, float* y, int64_t n) {
  ST_GRID_STRIDE(i, n) {
    y[i] = a[i] + b[i];
  }
}

__global__ void add_inplace_kernel(float* y, const float* x, int64_t n) {
  ST_GRID_STRIDE(i, n) {
    y[i] += x[i];
  }
}

// Keeps element i when uniform01(seed, i) >= p, compared in float exactly as the CPU
// backend does, so both draw the identical mask.
__global__ void dropout_forward_kernel(const float* x, float threshold, float scale, uint64_t seed,
                                       float* mask, float* y, int64_t n) {
  ST_GRID_STRIDE(i, n) {
    const bool keep = uniform01(seed, static_cast<uint64_t>(i)) >= threshold;
    const float m = keep ? scale : 0.0f;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

__global__ void mul_kernel(const float* a, const float* b, float* y, int64_t n) {
  ST_GRID_STRIDE(i, n) {
    y[i] = a[i] * b[i];
  }
}

}  // namespace

void relu_forward(Context& c, const Tensor& x, Tensor& y) {
  const char* op = "cuda relu_forward";
  const int64_t n = x.numel();
  const float* xp = f32_in(x);
  float* yp = f32_out(y);
  if (n == 0) return;
  relu_forward_kernel<<<grid_for(n), kBlock, 0, c.stream>>>(xp, yp, n);
  check_launch(op, c.stream);
}

void relu_backward(Context& c, const Tensor& y, const Tensor& dy, Tensor& dx) {
  const char* op = "cuda relu_backward";
  const int64_t n = y.numel();
  const float* yp = f32_in(y);
  const float* dyp = f32_in(dy);
  float* dxp = f32_out(dx);
  if (n == 0) return;
  relu_backward_kernel<<<grid_for(n), kBlock, 0, c.stream>>>(yp, dyp, dxp, n);
  check_launch(op, c.stream);
}

void add(Context& c, const Tensor& a, const Tensor& b, Tensor& y) {
  const char* op = "cuda add";
  const int64_t n = a.numel();
  const float* ap = f32_in(a);
  const float* bp = f32_in(b);
  float* yp = f32_out(y);
  if (n == 0) return;
  add_kernel<<<grid_for(n), kBlock, 0, c.stream>>>(ap, bp, yp, n);
  check_launch(op, c.stream);
}

void add_inplace(Context& c, Tensor& y, const Tensor& x) {
  const char* op = "cuda add_inplace";
  const int64_t n = y.numel();
  float* yp = f32_out(y);
  const float* xp = f32_in(x);
  if (n == 0) return;
  add_inplace_kernel<<<grid_for(n), kBlock, 0, c.stream>>>(yp, xp, n);
  check_launch(op, c.stream);
}

void dropout_forward(Context& c, const Tensor& x, double p, uint64_t seed, Tensor& mask,
                     Tensor& y) {
  const char* op = "cuda dropout_forward";
  const int64_t n = x.numel();
  const float* xp = f32_in(x);
  float* mp = f32_out(mask);
  float* yp = f32_out(y);
  if (n == 0) return;
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  dropout_forward_kernel<<<grid_for(n), kBlock, 0, c.stream>>>(xp, static_cast<float>(p), scale,
                                                               seed, mp, yp, n);
  check_launch(op, c.stream);
}

void dropout_backward(Context& c, const Tensor& dy, const Tensor& mask, Tensor& dx) {
  const char* op = "cuda dropout_backward";
  const int64_t n = dy.numel();
  const float* dyp = f32_in(dy);
  const float* mp = f32_in(mask);
  float* dxp = f32_out(dx);
  if (n == 0) return;
  mul_kernel<<<grid_for(n), kBlock, 0, c.stream>>>(dyp, mp, dxp, n);
  check_launch(op, c.stream);
}

}  // namespace st::cuda
