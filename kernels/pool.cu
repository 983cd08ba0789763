// Pooling over NCHW planes. Forward: one thread per output. Backward of average
// pooling gathers from the outputs covering each input (no atomics); backward of
// max pooling gives each (n, c) plane to one warp, which adds the gradients in
// output order, so overlapping windows still sum deterministically.
#include <cmath>
#include <string>

#include "cuda_common.cuh"

namespace st::cuda {
namespace {

struct PoolShape {
  int64_t planes;  // n * c
  int h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

__global__ void maxpool_forward_kernel(const float* x, float* y, int32_t* argmax, PoolShape s) {
  const int64_t total = s.planes * s.oh * s.ow;
  ST_GRID_STRIDE(i, total) {
    const int ow = static_cast<int>(i % s.ow);
    const int64_t t = i / s.ow;
    const int oh = static_cast<int>(t % s.oh);
    const int64_t plane = t / s.oh;
    const float* xp = x + plane * s.h * s.w;
    const int h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
    float best = -INFINITY;
    int arg = -1;
    for (int r = 0; r < s.kh; ++r) {
      const int ih = h0 + r;
      if (ih < 0 || ih >= s.h) continue;
      for (int q = 0; q < s.kw; ++q) {
        const int iw = w0 + q;
        if (iw < 0 || iw >= s.w) continue;
        const float v = xp[ih * s.w + iw];
        // First maximum wins; NaN propagates (as PyTorch).
        if (arg < 0 || v > best || isnan(v)) {
          best = v;
          arg = ih * s.w + iw;
        }
      }
    }
    y[i] = best;
    argmax[i] = arg;
  }
}

// One warp per plane: zero the plane, then take the outputs 32 at a time. Lanes
// whose argmax coincide are summed in lane (= output) order by the lowest of them.
__device__ void maxpool_backward_plane(const float* dyp, const int32_t* ap, float* dxp,
                                       int in_plane, int out_plane, int lane) {
  for (int i = lane; i < in_plane; i += 32) dxp[i] = 0.0f;
  __syncwarp();
  for (int base = 0; base < out_plane; base += 32) {
    const int j = base + lane;
    int idx = -1 - lane;  // unique per lane: never grouped with another lane
    float g = 0.0f;
    if (j < out_plane) {
      const int a = ap[j];
      if (a >= 0 && a < in_plane) {
        idx = a;
        g = dyp[j];
      }
    }
    const unsigned group = __match_any_sync(kFullMask, idx);
    float sum = 0.0f;
    for (int k = 0; k < 32; ++k) {
      const float v = __shfl_sync(kFullMask, g, k);
      if ((group >> k) & 1u) sum += v;
    }
    if (idx >= 0 && __ffs(group) - 1 == lane) dxp[idx] += sum;
    __syncwarp();
  }
}

__global__ void maxpool_backward_kernel(const float* dy, const int32_t* argmax, float* dx,
                                        int64_t planes, int in_plane, int out_plane) {
  const int lane = threadIdx.x & 31;
  // All lanes of a warp share `plane`, so the warp-wide intrinsics see full warps.
  for (int64_t plane = first_warp(); plane < planes; plane += warp_count()) {
    maxpool_backward_plane(dy + plane * out_plane, argmax + plane * out_plane,
                           dx + plane * in_plane, in_plane, out_plane, lane);
  }
}

__global__ void avgpool_forward_kernel(const float* x, float* y, PoolShape s) {
  const int64_t total = s.planes * s.oh * s.ow;
  const float inv_area = 1.0f / static_cast<float>(s.kh * s.kw);
  ST_GRID_STRIDE(i, total) {
    const int ow = static_cast<int>(i % s.ow);
    const int64_t t = i / s.ow;
    const int oh = static_cast<int>(t % s.oh);
    const int64_t plane = t / s.oh;
    const float* xp = x + plane * s.h * s.w;
    const int h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
    float sum = 0.0f;
    for (int r = 0; r < s.kh; ++r) {
      const int ih = h0 + r;
      if (ih < 0 || ih >= s.h) continue;
      for (int q = 0; q < s.kw; ++q) {
        const int iw = w0 + q;
        if (iw >= 0 && iw < s.w) sum += xp[ih * s.w + iw];
      }
    }
    y[i] = sum * inv_area;
  }
}

// Output o covers input t - pad when o*stride <= t < o*stride + k: o in [lo, hi].
__device__ __forceinline__ void covering_outputs(int t, int k, int stride, int out, int* lo,
                                                 int* hi) {
  *lo = t >= k ? (t - k) / stride + 1 : 0;
  *hi = min(t / stride, out - 1);
}

__global__ void avgpool_backward_kernel(const float* dy, float* dx, PoolShape s) {
  const int64_t total = s.planes * s.h * s.w;
  const float inv_area = 1.0f / static_cast<float>(s.kh * s.kw);
  ST_GRID_STRIDE(i, total) {
    const int iw = static_cast<int>(i % s.w);
    const int64_t t = i / s.w;
    const int ih = static_cast<int>(t % s.h);
    const int64_t plane = t / s.h;
    const float* dyp = dy + plane * s.oh * s.ow;
    int oh_lo, oh_hi, ow_lo, ow_hi;
    covering_outputs(ih + s.ph, s.kh, s.sh, s.oh, &oh_lo, &oh_hi);
    covering_outputs(iw + s.pw, s.kw, s.sw, s.ow, &ow_lo, &ow_hi);
    float sum = 0.0f;
    for (int oh = oh_lo; oh <= oh_hi; ++oh)
      for (int ow = ow_lo; ow <= ow_hi; ++ow) sum += dyp[oh * s.ow + ow];
    dx[i] = sum * inv_area;
  }
}

// One warp per plane.
__global__ void global_avgpool_forward_kernel(const float* x, float* y, int64_t planes, int hw) {
  const int lane = threadIdx.x & 31;
  for (int64_t plane = first_warp(); plane < planes; plane += warp_count()) {
    const float* xp = x + plane * hw;
    float s = 0.0f;
    for (int i = lane; i < hw; i += 32) s += xp[i];
    s = warp_sum(s);
    if (lane == 0) y[plane] = s / static_cast<float>(hw);
  }
}

__global__ void global_avgpool_backward_kernel(const float* dy, float* dx, int64_t total, int hw) {
  const float inv = 1.0f / static_cast<float>(hw);
  ST_GRID_STRIDE(i, total) {
    dx[i] = dy[i / hw] * inv;
  }
}

PoolShape pool_shape(const Tensor& x, const PoolGeom& g, const char* op) {
  require(x.dim(2) * x.dim(3) < (int64_t{1} << 31), op, "plane too large: " + shape_str(x.shape()));
  PoolShape s;
  s.planes = x.dim(0) * x.dim(1);
  s.h = static_cast<int>(x.dim(2));
  s.w = static_cast<int>(x.dim(3));
  s.kh = g.kh;
  s.kw = g.kw;
  s.sh = g.stride_h;
  s.sw = g.stride_w;
  s.ph = g.pad_h;
  s.pw = g.pad_w;
  s.oh = static_cast<int>(g.out_h(x.dim(2)));
  s.ow = static_cast<int>(g.out_w(x.dim(3)));
  return s;
}

}  // namespace

void maxpool2d_forward(Context& c, const Tensor& x, const PoolGeom& g, Tensor& y, Tensor& argmax) {
  const char* op = "cuda maxpool2d_forward";
  const PoolShape s = pool_shape(x, g, op);
  const float* xp = f32_in(x);
  float* yp = f32_out(y);
  int32_t* ap = i32_out(argmax);
  if (y.numel() == 0) return;
  maxpool_forward_kernel<<<grid_for(y.numel()), kBlock, 0, c.stream>>>(xp, yp, ap, s);
  check_launch(op, c.stream);
}

void maxpool2d_backward(Context& c, const Tensor& dy, const Tensor& argmax, Tensor& dx) {
  const char* op = "cuda maxpool2d_backward";
  require(dx.dim(2) * dx.dim(3) < (int64_t{1} << 31), op,
          "plane too large: " + shape_str(dx.shape()));
  const float* dyp = f32_in(dy);
  const int32_t* ap = i32_in(argmax);
  float* dxp = f32_out(dx);
  const int64_t planes = dx.dim(0) * dx.dim(1);
  if (dx.numel() == 0) return;
  maxpool_backward_kernel<<<warp_grid_for(planes), kBlock, 0, c.stream>>>(
      dyp, ap, dxp, planes, static_cast<int>(dx.dim(2) * dx.dim(3)),
      static_cast<int>(dy.dim(2) * dy.dim(3)));
  check_launch(op, c.stream);
}

void avgpool2d_forward(Context& c, const Tensor& x, const PoolGeom& g, Tensor& y) {
  const char* op = "cuda avgpool2d_forward";
  const PoolShape s = pool_shape(x, g, op);
  const float* xp = f32_in(x);
  float* yp = f32_out(y);
  if (y.numel() == 0) return;
  avgpool_forward_kernel<<<grid_for(y.numel()), kBlock, 0, c.stream>>>(xp, yp, s);
  check_launch(op, c.stream);
}

void avgpool2d_backward(Context& c, const Tensor& dy, const PoolGeom& g, Tensor& dx) {
  const char* op = "cuda avgpool2d_backward";
  const PoolShape s = pool_shape(dx, g, op);
  const float* dyp = f32_in(dy);
  float* dxp = f32_out(dx);
  if (dx.numel() == 0) return;
  avgpool_backward_kernel<<<grid_for(dx.numel()), kBlock, 0, c.stream>>>(dyp, dxp, s);
  check_launch(op, c.stream);
}

void global_avgpool_forward(Context& c, const Tensor& x, Tensor& y) {
  const char* op = "cuda global_avgpool_forward";
  const int64_t hw = x.dim(2) * x.dim(3);
  require(hw > 0 && hw < (int64_t{1} << 31), op, "bad plane size in " + shape_str(x.shape()));
  const float* xp = f32_in(x);
  float* yp = f32_out(y);
  if (y.numel() == 0) return;
  global_avgpool_forward_kernel<<<warp_grid_for(y.numel()), kBlock, 0, c.stream>>>(
      xp, yp, y.numel(), static_cast<int>(hw));
  check_launch(op, c.stream);
}

void global_avgpool_backward(Context& c, const Tensor& dy, Tensor& dx) {
  const char* op = "cuda global_avgpool_backward";
  const int64_t hw = dx.dim(2) * dx.dim(3);
  require(hw > 0 && hw < (int64_t{1} << 31), op, "bad plane size in " + shape_str(dx.shape()));
  const float* dyp = f32_in(dy);
  float* dxp = f32_out(dx);
  if (dx.numel() == 0) return;
  global_avgpool_backward_kernel<<<grid_for(dx.numel()), kBlock, 0, c.stream>>>(
      dyp, dxp, dx.numel(), static_cast<int>(hw));
  check_launch(op, c.stream);
}

}  // namespace st::cuda
