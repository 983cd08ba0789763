// Max, average and global average pooling. Every (image, channel) plane is
// independent, so planes are split across threads.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_runtime.h"

namespace st::cpu {
namespace {

// The window of output (oh, ow) clipped to the input plane.
struct Window {
  int64_t h0, h1, w0, w1;
};
Window clipped_window(const WindowDims& d, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * d.g.stride_h - d.g.pad_h, w0 = ow * d.g.stride_w - d.g.pad_w;
  return {std::max<int64_t>(h0, 0), std::min<int64_t>(h0 + d.g.kh, d.h), std::max<int64_t>(w0, 0),
          std::min<int64_t>(w0 + d.g.kw, d.w)};
}

bool is_2x2_stride_2(const ConvGeom& g) {
  return g.kh == 2 && g.kw == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 &&
         g.pad_w == 0;
}

// One output row of 2x2, stride-2 pooling from input rows r0 and r1 (flat
// indices base and base + w). The four candidates are compared with selects,
// not branches, so the loop vectorizes; the first candidate always wins
// against the initial -inf (or ties with it at the same index).
template <typename T>
void maxpool_2x2_row(const T* __restrict r0, const T* __restrict r1, int32_t base, int32_t w,
                     int64_t ow, T* __restrict y, int32_t* __restrict arg) {
#pragma omp simd
  for (int64_t j = 0; j < ow; ++j) {
    const int32_t c = base + 2 * static_cast<int32_t>(j);
    T best = r0[2 * j];
    int32_t at = c;
    const T v1 = r0[2 * j + 1], v2 = r1[2 * j], v3 = r1[2 * j + 1];
    bool take = v1 > best || v1 != v1;  // v != v: NaN propagates
    best = take ? v1 : best, at = take ? c + 1 : at;
    take = v2 > best || v2 != v2;
    best = take ? v2 : best, at = take ? c + w : at;
    take = v3 > best || v3 != v3;
    best = take ? v3 : best, at = take ? c + w + 1 : at;
    y[j] = best;
    arg[j] = at;
  }
}

// The usual 2x2, stride-2 pooling: every window lies inside the plane (no clipping).
template <typename T>
void maxpool_2x2_plane(const T* xp, const WindowDims& d, T* yp, int32_t* ap) {
  const int32_t w = static_cast<int32_t>(d.w);
  for (int64_t oh = 0; oh < d.oh; ++oh) {
    const int32_t base = static_cast<int32_t>(2 * oh) * w;
    maxpool_2x2_row(xp + base, xp + base + w, base, w, d.ow, yp + oh * d.ow, ap + oh * d.ow);
  }
}

// Backward of one output row of 2x2 blocks: writes all four elements of every
// block, the gradient where the argmax points and zero elsewhere, so the rows
// need no zero fill first. `0 + g` matches the generic path's `dx = 0; dx += g`
// bit for bit (a -0 gradient lands as +0). Returns whether every argmax lay in
// its own block (with overlapping windows it need not).
template <typename T>
bool maxpool_2x2_backward_row(const T* __restrict dy, const int32_t* __restrict arg, int32_t base,
                              int32_t w, int64_t ow, T* __restrict r0, T* __restrict r1) {
  int32_t miss = 0;
#pragma omp simd reduction(| : miss)
  for (int64_t j = 0; j < ow; ++j) {
    const int32_t at = arg[j] - (base + 2 * static_cast<int32_t>(j));
    const T g = T(0) + dy[j];
    r0[2 * j] = at == 0 ? g : T(0);
    r0[2 * j + 1] = at == 1 ? g : T(0);
    r1[2 * j] = at == w ? g : T(0);
    r1[2 * j + 1] = at == w + 1 ? g : T(0);
    miss |= static_cast<int32_t>(at != 0 && at != 1 && at != w && at != w + 1);
  }
  return miss == 0;
}

// One plane in a single pass when each output's argmax lies in the 2x2 block
// at (2*oh, 2*ow), as 2x2 stride-2 pooling makes it; the rows and columns past
// the last block (odd sizes) get no gradient. Returns false when some argmax
// lies elsewhere; the plane is then partly written and must be redone.
template <typename T>
bool maxpool_2x2_backward_plane(const T* dy, const int32_t* arg, const WindowDims& d, T* dx) {
  const int32_t w = static_cast<int32_t>(d.w);
  const int64_t covered_w = 2 * d.ow;
  for (int64_t oh = 0; oh < d.oh; ++oh) {
    const int32_t base = static_cast<int32_t>(2 * oh) * w;
    T* r0 = dx + base;
    T* r1 = r0 + w;
    if (!maxpool_2x2_backward_row(dy + oh * d.ow, arg + oh * d.ow, base, w, d.ow, r0, r1))
      return false;
    if (covered_w < d.w) {
      std::fill(r0 + covered_w, r0 + d.w, T(0));
      std::fill(r1 + covered_w, r1 + d.w, T(0));
    }
  }
  std::fill(dx + 2 * d.oh * d.w, dx + d.h * d.w, T(0));
  return true;
}

// Any pooling: every input element starts at zero and receives the gradients
// of the outputs whose argmax it is, in output order.
template <typename T>
void maxpool_scatter_plane(const T* dy, const int32_t* arg, int64_t out_plane, int64_t in_plane,
                           T* dx) {
  std::fill(dx, dx + in_plane, T(0));
  for (int64_t i = 0; i < out_plane; ++i) dx[arg[i]] += dy[i];
}

}  // namespace

// Padding acts as -inf; the first maximum in row-major window order wins and a
// NaN propagates, as in PyTorch.
template <typename T>
void maxpool2d_forward(const T* x, const WindowDims& d, T* y, int32_t* argmax) {
  const int64_t planes = d.n * d.c, in_plane = d.h * d.w, out_plane = d.oh * d.ow;
  if (is_2x2_stride_2(d.g)) {
#pragma omp parallel for schedule(static) num_threads(threads_for(planes, 4 * out_plane))
    for (int64_t pl = 0; pl < planes; ++pl)
      maxpool_2x2_plane(x + pl * in_plane, d, y + pl * out_plane, argmax + pl * out_plane);
    return;
  }
#pragma omp parallel for schedule(static) \
    num_threads(threads_for(planes, out_plane* d.g.kh* d.g.kw))
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * in_plane;
    for (int64_t oh = 0; oh < d.oh; ++oh) {
      for (int64_t ow = 0; ow < d.ow; ++ow) {
        const Window win = clipped_window(d, oh, ow);
        int64_t best = win.h0 * d.w + win.w0;
        T best_val = -std::numeric_limits<T>::infinity();
        for (int64_t h = win.h0; h < win.h1; ++h) {
          for (int64_t w = win.w0; w < win.w1; ++w) {
            const T v = xp[h * d.w + w];
            if (v > best_val || std::isnan(v)) {
              best_val = v;
              best = h * d.w + w;
            }
          }
        }
        y[pl * out_plane + oh * d.ow + ow] = best_val;
        argmax[pl * out_plane + oh * d.ow + ow] = static_cast<int32_t>(best);
      }
    }
  }
}

template <typename T>
void maxpool2d_backward(const T* dy, const int32_t* argmax, const WindowDims& d, T* dx) {
  const int64_t planes = d.n * d.c, in_plane = d.h * d.w, out_plane = d.oh * d.ow;
  const bool blocks_fit = 2 * d.oh <= d.h && 2 * d.ow <= d.w;
#pragma omp parallel for schedule(static) num_threads(threads_for(planes, out_plane + in_plane))
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* dyp = dy + pl * out_plane;
    const int32_t* ap = argmax + pl * out_plane;
    T* dxp = dx + pl * in_plane;
    if (blocks_fit && maxpool_2x2_backward_plane(dyp, ap, d, dxp)) continue;
    maxpool_scatter_plane(dyp, ap, out_plane, in_plane, dxp);
  }
}

// The divisor is always kh*kw: with padding of at most half the window (checked)
// and floor-mode output sizes, every window lies inside the padded plane.
template <typename T>
void avgpool2d_forward(const T* x, const WindowDims& d, T* y) {
  const int64_t planes = d.n * d.c, in_plane = d.h * d.w, out_plane = d.oh * d.ow;
  const double inv_area = 1.0 / (d.g.kh * d.g.kw);
#pragma omp parallel for schedule(static) \
    num_threads(threads_for(planes, out_plane* d.g.kh* d.g.kw))
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * in_plane;
    for (int64_t oh = 0; oh < d.oh; ++oh) {
      for (int64_t ow = 0; ow < d.ow; ++ow) {
        const Window win = clipped_window(d, oh, ow);
        double sum = 0;
        for (int64_t h = win.h0; h < win.h1; ++h)
          for (int64_t w = win.w0; w < win.w1; ++w) sum += xp[h * d.w + w];
        y[pl * out_plane + oh * d.ow + ow] = static_cast<T>(sum * inv_area);
      }
    }
  }
}

template <typename T>
void avgpool2d_backward(const T* dy, const WindowDims& d, T* dx) {
  const int64_t planes = d.n * d.c, in_plane = d.h * d.w, out_plane = d.oh * d.ow;
  const double inv_area = 1.0 / (d.g.kh * d.g.kw);
#pragma omp parallel for schedule(static) \
    num_threads(threads_for(planes, out_plane* d.g.kh* d.g.kw))
  for (int64_t pl = 0; pl < planes; ++pl) {
    T* dxp = dx + pl * in_plane;
    std::fill(dxp, dxp + in_plane, T(0));
    for (int64_t oh = 0; oh < d.oh; ++oh) {
      for (int64_t ow = 0; ow < d.ow; ++ow) {
        const Window win = clipped_window(d, oh, ow);
        const T g = static_cast<T>(dy[pl * out_plane + oh * d.ow + ow] * inv_area);
        for (int64_t h = win.h0; h < win.h1; ++h)
          for (int64_t w = win.w0; w < win.w1; ++w) dxp[h * d.w + w] += g;
      }
    }
  }
}

template <typename T>
void global_avgpool_forward(const T* x, int64_t planes, int64_t plane, T* y) {
#pragma omp parallel for schedule(static) num_threads(threads_for(planes, plane))
  for (int64_t pl = 0; pl < planes; ++pl) {
    double sum = 0;
    for (int64_t i = 0; i < plane; ++i) sum += x[pl * plane + i];
    y[pl] = static_cast<T>(sum / plane);
  }
}

template <typename T>
void global_avgpool_backward(const T* dy, int64_t planes, int64_t plane, T* dx) {
#pragma omp parallel for schedule(static) num_threads(threads_for(planes, plane))
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T g = static_cast<T>(dy[pl] / static_cast<double>(plane));
    std::fill(dx + pl * plane, dx + (pl + 1) * plane, g);
  }
}

#define ST_INSTANTIATE_POOL(T)                                                          \
  template void maxpool2d_forward<T>(const T*, const WindowDims&, T*, int32_t*);        \
  template void maxpool2d_backward<T>(const T*, const int32_t*, const WindowDims&, T*); \
  template void avgpool2d_forward<T>(const T*, const WindowDims&, T*);                  \
  template void avgpool2d_backward<T>(const T*, const WindowDims&, T*);                 \
  template void global_avgpool_forward<T>(const T*, int64_t, int64_t, T*);              \
  template void global_avgpool_backward<T>(const T*, int64_t, int64_t, T*);
ST_INSTANTIATE_POOL(float)
ST_INSTANTIATE_POOL(double)
#undef ST_INSTANTIATE_POOL

}  // namespace st::cpu
