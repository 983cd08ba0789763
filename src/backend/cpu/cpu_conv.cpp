// Convolution by im2col lowering: receptive fields are unrolled into a
// [C*kh*kw, OH*OW] matrix per image so that the convolution becomes a GEMM
// with the [O, C*kh*kw] weight matrix. Images are lowered side by side in
// groups, so that each GEMM has at least kMinColumns columns: a GEMM packs
// the weight matrix on every call, and on deep layers with small planes (16
// or 64 columns per image) that packing, not the multiply, dominated the
// per-image GEMMs. Groups are spread over OpenMP threads, each calling a
// single-threaded GEMM (gemm/gemm.h; OpenBLAS for F64) on its own scratch
// buffers. A thin layer's weight matrix (at most 64 filters, 256 unrolled
// rows) is packed once per call instead, and its forward GEMMs read the
// unrolled images in place.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_runtime.h"
#include "backend/cpu/cpu_winograd.h"
#include "backend/cpu/gemm/gemm.h"

namespace st::cpu {
namespace {

int64_t ceil_div(int64_t a, int64_t b) {
  return a <= 0 ? 0 : (a + b - 1) / b;
}

// The output columns [lo, hi) whose input column ow*stride - pad + kj lies inside [0, w).
struct ValidRange {
  int64_t lo, hi;
};
ValidRange valid_outputs(int64_t out, int64_t in, int stride, int pad, int k_offset) {
  int64_t lo = std::min(out, ceil_div(pad - k_offset, stride));
  int64_t hi = std::min(out, ceil_div(in + pad - k_offset, stride));
  return {lo, std::max(lo, hi)};
}

// 1x1 kernels with unit stride and no padding need no unrolling: the image is the matrix.
bool is_pointwise(const ConvGeom& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
         g.pad_w == 0;
}

// For each kernel row ki (column kj), the output rows (columns) whose input
// row (column) lies inside the image. They are the same for every channel and
// image, so they are worked out once per call: per (channel, ki, kj) the
// divisions cost as much as the copies on small planes.
struct KernelRanges {
  std::vector<ValidRange> rows, cols;
};
KernelRanges kernel_ranges(const WindowDims& d) {
  KernelRanges r;
  for (int ki = 0; ki < d.g.kh; ++ki)
    r.rows.push_back(valid_outputs(d.oh, d.h, d.g.stride_h, d.g.pad_h, ki));
  for (int kj = 0; kj < d.g.kw; ++kj)
    r.cols.push_back(valid_outputs(d.ow, d.w, d.g.stride_w, d.g.pad_w, kj));
  return r;
}

// Zeroes, in rows [rows.lo, rows.hi) of a plane `width` wide, the columns
// outside [cols.lo, cols.hi). Column by column (the padding's width), not row
// by row: a row's edge is one or two elements, and per row the compiler would
// call memset.
template <typename T>
void clear_edge_columns(T* plane, int64_t width, ValidRange rows, ValidRange cols) {
  const auto clear = [&](int64_t col) {
    for (int64_t r = rows.lo; r < rows.hi; ++r) plane[r * width + col] = T(0);
  };
  for (int64_t col = 0; col < cols.lo; ++col) clear(col);
  for (int64_t col = cols.hi; col < width; ++col) clear(col);
}

// Unrolls one image into rows of `ld` elements (ld >= OH*OW): row
// (c*kh + ki)*kw + kj holds input channel c shifted by (ki, kj), zero outside
// the image. Several images share a matrix by writing at column offsets. The
// copies are plain loops: on 7x7 planes a row is a few elements, and a library
// call per row cost more than the copy.
template <typename T>
void im2col(const T* x, const WindowDims& d, const KernelRanges& kr, T* col, int64_t ld) {
  const ConvGeom& g = d.g;
  // Unit strides and an output as wide as the input (3x3 with padding 1).
  const bool same_width = g.stride_h == 1 && g.stride_w == 1 && d.ow == d.w;
  for (int64_t c = 0; c < d.c; ++c) {
    for (int ki = 0; ki < g.kh; ++ki) {
      const ValidRange rows = kr.rows[ki];
      for (int kj = 0; kj < g.kw; ++kj) {
        const ValidRange cols = kr.cols[kj];
        T* dst = col + ((c * g.kh + ki) * g.kw + kj) * ld;
        for (int64_t i = 0; i < rows.lo * d.ow; ++i) dst[i] = T(0);
        const int64_t shift = kj - g.pad_w;
        if (same_width && rows.lo < rows.hi) {
          // One span: the valid rows are consecutive in both planes, at a fixed
          // offset; the copy wraps across row ends, which the edge columns then clear.
          const int64_t first = rows.lo * d.w + cols.lo, last = (rows.hi - 1) * d.w + cols.hi;
          const T* src = x + (c * d.h + rows.lo + ki - g.pad_h) * d.w + cols.lo + shift;
          for (int64_t i = 0; i < last - first; ++i) dst[first + i] = src[i];
          clear_edge_columns(dst, d.ow, rows, cols);
        } else {
          for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
            const T* src = x + (c * d.h + oh * g.stride_h - g.pad_h + ki) * d.w;
            T* out = dst + oh * d.ow;
            for (int64_t ow = 0; ow < cols.lo; ++ow) out[ow] = T(0);
            for (int64_t ow = cols.lo; ow < cols.hi; ++ow) out[ow] = src[ow * g.stride_w + shift];
            for (int64_t ow = cols.hi; ow < d.ow; ++ow) out[ow] = T(0);
          }
        }
        for (int64_t i = rows.hi * d.ow; i < d.oh * d.ow; ++i) dst[i] = T(0);
      }
    }
  }
}

// The adjoint of im2col: accumulates each column entry back onto its input
// pixel. With unit strides and equal widths it adds each row as one span, as
// im2col copies it, after clearing the entries that fall outside the image
// (those would wrap onto the neighbouring rows); `col` is scratch and is
// changed there.
template <typename T>
void col2im(T* col, const WindowDims& d, const KernelRanges& kr, int64_t ld, T* x) {
  const ConvGeom& g = d.g;
  const bool same_width = g.stride_h == 1 && g.stride_w == 1 && d.ow == d.w;
  std::fill(x, x + d.c * d.h * d.w, T(0));
  for (int64_t c = 0; c < d.c; ++c) {
    for (int ki = 0; ki < g.kh; ++ki) {
      const ValidRange rows = kr.rows[ki];
      for (int kj = 0; kj < g.kw; ++kj) {
        const ValidRange cols = kr.cols[kj];
        T* src = col + ((c * g.kh + ki) * g.kw + kj) * ld;
        const int64_t shift = kj - g.pad_w;
        if (same_width) {
          if (rows.lo == rows.hi) continue;
          clear_edge_columns(src, d.ow, rows, cols);
          const int64_t first = rows.lo * d.w + cols.lo, last = (rows.hi - 1) * d.w + cols.hi;
          T* dst = x + (c * d.h + rows.lo + ki - g.pad_h) * d.w + cols.lo + shift;
          for (int64_t i = 0; i < last - first; ++i) dst[i] += src[first + i];
          continue;
        }
        for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
          T* dst = x + (c * d.h + oh * g.stride_h - g.pad_h + ki) * d.w;
          const T* in = src + oh * d.ow;
          for (int64_t ow = cols.lo; ow < cols.hi; ++ow) dst[ow * g.stride_w + shift] += in[ow];
        }
      }
    }
  }
}

int64_t unrolled_rows(const WindowDims& d) {
  return d.c * d.g.kh * d.g.kw;
}

// GEMM columns below which the per-call packing of the weights costs more
// than the multiply gains (measured on BasicNet's 4x4 and 8x8 layers).
constexpr int64_t kMinColumns = 256;

// Weight-gradient chunks per thread in the backward (see conv2d_backward).
constexpr int64_t kChunksPerThread = 4;

// How the batch is lowered: `group` images side by side per GEMM.
struct Lowering {
  int64_t k = 0, p = 0;  // rows and columns of one image's unrolled matrix
  int64_t group = 1, groups = 0;
  bool pointwise = false;  // the image is its own unrolled matrix (group is 1)
  KernelRanges ranges;     // im2col's valid ranges (empty when pointwise)

  int64_t first(int64_t g) const { return g * group; }
  int64_t images(int64_t g, int64_t n) const { return std::min(group, n - g * group); }
};

Lowering plan_lowering(const WindowDims& d, int team) {
  Lowering l;
  l.k = d.c * d.g.kh * d.g.kw;
  l.p = d.oh * d.ow;
  l.pointwise = is_pointwise(d.g);
  if (!l.pointwise) l.ranges = kernel_ranges(d);
  if (!l.pointwise && l.p > 0) {
    l.group = std::clamp<int64_t>(ceil_div(kMinColumns, l.p), 1, std::max<int64_t>(d.n, 1));
    // At least two groups per thread, so that a thread slowed by other load
    // leaves work the others can take.
    if (team > 1) l.group = std::min(l.group, std::max<int64_t>(1, d.n / (2 * team)));
  }
  l.groups = ceil_div(d.n, l.group);
  return l;
}

// Lowers images [n0, n0 + nb) side by side into col [k, nb * p]; returns the
// matrix to multiply (the image itself for a single pointwise image).
template <typename T>
// `ld` is the matrix's row length (at least nb * p; the columns past nb * p are left as they are).
const T* lower_group(const T* x, const WindowDims& d, const Lowering& l, int64_t n0, int64_t nb,
                     T* col, int64_t ld) {
  const int64_t x_stride = d.c * d.h * d.w;
  if (l.pointwise) return x + n0 * x_stride;
  for (int64_t i = 0; i < nb; ++i) im2col(x + (n0 + i) * x_stride, d, l.ranges, col + i * l.p, ld);
  return col;
}

// Zeroes columns [used, ld) of `rows` rows of length ld.
template <typename T>
void clear_row_ends(T* m, int64_t rows, int64_t used, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) std::fill(m + r * ld + used, m + (r + 1) * ld, T(0));
}

// Copies the [o, nb * p] GEMM result of a group into its NCHW images, adding the
// bias (and applying the fused ReLU). `ld` is the row stride of `out` (at least nb * p).
template <typename T>
void scatter_output(const T* out, int64_t ld, const T* bias, const WindowDims& d, const Lowering& l,
                    int64_t n0, int64_t nb, bool relu, T* y) {
  for (int64_t i = 0; i < nb; ++i) {
    T* yn = y + (n0 + i) * d.o * l.p;
    for (int64_t o = 0; o < d.o; ++o) {
      const T* src = out + o * ld + i * l.p;
      T* dst = yn + o * l.p;
      const T b = bias ? bias[o] : T(0);
      for (int64_t j = 0; j < l.p; ++j) dst[j] = src[j] + b;
      if (relu) relu_in_place(dst, l.p);
    }
  }
}

// Gathers the NCHW output gradients of a group into one [o, nb * p] matrix
// with rows `ld` long (as in lower_group).
template <typename T>
void gather_output_grad(const T* dy, const WindowDims& d, const Lowering& l, int64_t n0, int64_t nb,
                        T* out, int64_t ld) {
  for (int64_t i = 0; i < nb; ++i) {
    const T* dyn = dy + (n0 + i) * d.o * l.p;
    for (int64_t o = 0; o < d.o; ++o)
      std::copy(dyn + o * l.p, dyn + (o + 1) * l.p, out + o * ld + i * l.p);
  }
}

}  // namespace

// A layer whose weight matrix is small enough to pack once per call
// (gemm.h's sgemm_packed_a): the unrolled images are then read in place, not
// packed again per group. Thin layers, where that packing cost as much as the
// multiply.
bool packs_weights_once(const WindowDims& d, const Lowering& l) {
  return !l.pointwise && d.o <= kPackedMaxRows && l.k <= kPackedMaxDepth;
}

// The row length of a group's matrices read in place by the packed GEMM or
// the row dot products: the columns rounded up to `unit` (the GEMM's panel
// width, or the dot lanes), plus a unit while the rows are a multiple of 64
// floats apart. Those kernels read down all k rows, and at such strides the
// rows fall into a quarter of the L1 cache's sets or fewer and evict each
// other (28 -> 64 @4x4, 256 columns, ran at two thirds of the speed).
int64_t padded_row_length(int64_t cols, int64_t unit) {
  int64_t n = ceil_div(cols, unit) * unit;
  while (n % 64 == 0) n += unit;
  return n;
}

// Floats of dot-product lanes (o * k * lanes) up to which the backward sums a
// thin layer's weight gradient in lanes: they stay in the L2 cache.
constexpr int64_t kMaxLaneFloats = 64 * 1024;

// The forward of such a layer: each group is unrolled into a matrix whose rows
// are padded as above (the padding is zeroed and its products are never read).
void conv2d_forward_packed(const float* x, const float* w, const float* bias, const WindowDims& d,
                           const Lowering& l, int team, bool relu, float* y) {
  const int64_t size = packed_a_size(d.o, l.k), panel = packed_b_columns();
  float* packed = scratch<float>(Scratch::Packed, size);
  pack_small_a(false, d.o, l.k, w, l.k, packed);
#pragma omp parallel num_threads(team)
  {
    const int64_t ld = padded_row_length(l.group * l.p, panel);
    float* col = scratch<float>(Scratch::Col, l.k * ld);
    float* out = scratch<float>(Scratch::Gather, d.o * ld);
#pragma omp for schedule(dynamic, 1)
    for (int64_t g = 0; g < l.groups; ++g) {
      const int64_t n0 = l.first(g), nb = l.images(g, d.n), cols = nb * l.p;
      const int64_t n = padded_row_length(cols, panel);
      lower_group(x, d, l, n0, nb, col, n);
      clear_row_ends(col, l.k, cols, n);
      sgemm_packed_a(d.o, n, l.k, packed, col, n, out, n);
      scatter_output(out, n, bias, d, l, n0, nb, relu, y);
    }
  }
}

template <typename T>
void conv2d_forward(const T* x, const T* w, const T* bias, const WindowDims& d, T* y, bool relu) {
  if constexpr (std::is_same_v<T, float>)
    if (thin_winograd_applies(d)) return thin_winograd_forward(x, w, bias, d, relu, y);
  if (winograd_applies(d)) return winograd_conv_forward(x, w, bias, d, relu, y);
  const int team = threads_for(d.n, d.o * unrolled_rows(d) * d.oh * d.ow);
  const Lowering l = plan_lowering(d, team);
  if constexpr (std::is_same_v<T, float>)
    if (packs_weights_once(d, l)) return conv2d_forward_packed(x, w, bias, d, l, team, relu, y);
  SingleThreadedBlas guard(team > 1);
#pragma omp parallel num_threads(team)
  {
    const int64_t cols = l.group * l.p;
    T* col = l.pointwise ? nullptr : scratch<T>(Scratch::Col, l.k * cols);
    T* out = scratch<T>(Scratch::Gather, d.o * cols);
#pragma omp for schedule(dynamic, 1)
    for (int64_t g = 0; g < l.groups; ++g) {
      const int64_t n0 = l.first(g), nb = l.images(g, d.n);
      const T* b = lower_group(x, d, l, n0, nb, col, nb * l.p);
      if (nb == 1 && !bias) {
        gemm(false, false, d.o, l.p, l.k, T(1), w, l.k, b, l.p, T(0), y + n0 * d.o * l.p, l.p);
        if (relu) relu_in_place(y + n0 * d.o * l.p, d.o * l.p);
      } else {
        gemm(false, false, d.o, nb * l.p, l.k, T(1), w, l.k, b, nb * l.p, T(0), out, nb * l.p);
        scatter_output(out, nb * l.p, bias, d, l, n0, nb, relu, y);
      }
    }
  }
}

namespace {

// With unit strides and padding below the kernel size, the input gradient is
// the forward convolution of dy with the kernels transposed (O and C swapped)
// and turned by 180 degrees, padded by k - 1 - pad. That sums over
// O * kh * kw products per element and writes dx once, where the im2col
// path's W^T dy sums over only O per unrolled element and col2im adds the
// C * kh * kw rows back up. Measured (docs/performance.md, "Small planes"):
// 1.3 to 1.5 x faster backward with 4 to 6 filters, even at 8, slower above.
constexpr int64_t kDxAsForwardMaxFilters = 7;
bool dx_as_forward(const WindowDims& d) {
  return d.o <= kDxAsForwardMaxFilters && !is_pointwise(d.g) && d.g.stride_h == 1 &&
         d.g.stride_w == 1 && d.g.pad_h < d.g.kh && d.g.pad_w < d.g.kw;
}

void conv2d_backward_data_as_forward(const float* w, const float* dy, const WindowDims& d,
                                     float* dx) {
  const int64_t taps = d.g.kh * d.g.kw;
  // Its own slot: the forward below uses the others.
  float* turned = scratch<float>(Scratch::TurnedWeights, d.o * d.c * taps);
  for (int64_t o = 0; o < d.o; ++o)
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t t = 0; t < taps; ++t)
        turned[(c * d.o + o) * taps + t] = w[(o * d.c + c) * taps + taps - 1 - t];
  WindowDims t;
  t.n = d.n, t.c = d.o, t.h = d.oh, t.w = d.ow, t.o = d.c, t.oh = d.h, t.ow = d.w;
  t.g = d.g;
  t.g.pad_h = d.g.kh - 1 - d.g.pad_h;
  t.g.pad_w = d.g.kw - 1 - d.g.pad_w;
  conv2d_forward<float>(dy, turned, nullptr, t, dx, false);
}

}  // namespace

template <typename T>
void conv2d_backward(const T* x, const T* w, const T* dy, const WindowDims& d, T* dx, T* dw,
                     T* db) {
  if constexpr (std::is_same_v<T, float>)
    if (thin_winograd_applies(d)) return thin_winograd_backward(x, w, dy, d, dx, dw, db);
  if (winograd_applies(d)) return winograd_conv_backward(x, w, dy, d, dx, dw, db);
  if constexpr (std::is_same_v<T, float>) {
    if (dx && dx_as_forward(d)) {
      conv2d_backward_data_as_forward(w, dy, d, dx);
      dx = nullptr;  // the weight and bias gradients below
    }
  }
  const int64_t w_size = d.o * unrolled_rows(d), y_stride = d.o * d.oh * d.ow;
  const int team = threads_for(d.n, w_size * d.oh * d.ow * (dx ? 2 : 1));
  const Lowering l = plan_lowering(d, team);
  // A thin layer sums its weight gradient as row dot products kept in vector
  // lanes (gemm.h, sdot_accumulate), which read dy and the unrolled images in
  // place: the GEMM packed both per group, which cost about as much as the
  // multiply at 8 to 16 filters.
  bool lanes_dw = false;
  if constexpr (std::is_same_v<T, float>)
    lanes_dw = packs_weights_once(d, l) && w_size * dot_lanes() <= kMaxLaneFloats;
  SingleThreadedBlas guard(team > 1);
  // The groups are cut into fixed chunks of consecutive groups, more chunks
  // than threads so that a thread slowed by other load does not hold up the
  // rest. Each chunk sums its weight gradients into its own buffer and the
  // buffers are added in chunk order: dw is bitwise reproducible for a given
  // thread count, whichever thread ran which chunk.
  const int64_t chunks = team == 1 ? 1 : std::min<int64_t>(l.groups, kChunksPerThread * team);
  T* extra = chunks > 1 ? scratch<T>(Scratch::WeightGrad, (chunks - 1) * w_size) : nullptr;
  auto partial = [&](int64_t chunk) { return chunk == 0 ? dw : extra + (chunk - 1) * w_size; };
#pragma omp parallel num_threads(team)
  {
    const int64_t cols = l.group * l.p;
    // Rows of the unrolled images and gathered gradients: padded for the lanes.
    int64_t ld_max = cols;
    T* lanes = nullptr;
    if constexpr (std::is_same_v<T, float>) {
      if (lanes_dw) {
        ld_max = padded_row_length(cols, dot_lanes());
        lanes = scratch<float>(Scratch::Lanes, w_size * dot_lanes());
      }
    }
    T* col = l.pointwise ? nullptr : scratch<T>(Scratch::Col, l.k * ld_max);
    T* dcol = (l.pointwise || !dx) ? nullptr : scratch<T>(Scratch::ColGrad, l.k * cols);
    T* grad = l.group > 1 || lanes_dw ? scratch<T>(Scratch::Gather, d.o * ld_max) : nullptr;
#pragma omp for schedule(dynamic, 1)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      T* acc = partial(chunk);
      const int64_t first = chunk * l.groups / chunks, last = (chunk + 1) * l.groups / chunks;
      if (lanes_dw) std::fill(lanes, lanes + w_size * dot_lanes(), T(0));
      for (int64_t g = first; g < last; ++g) {
        const int64_t n0 = l.first(g), nb = l.images(g, d.n), m = nb * l.p;
        int64_t ld = m;
        if constexpr (std::is_same_v<T, float>)
          if (lanes_dw) ld = padded_row_length(m, dot_lanes());
        const T* b = lower_group(x, d, l, n0, nb, col, ld);
        const T* dyg = dy + n0 * y_stride;
        if (nb > 1 || lanes_dw) {
          gather_output_grad(dy, d, l, n0, nb, grad, ld);
          dyg = grad;
        }
        if constexpr (std::is_same_v<T, float>) {
          if (lanes_dw) {
            // dW += dY [O, m] . col [K, m], row by row, the padding zero in both.
            clear_row_ends(col, l.k, m, ld);
            clear_row_ends(grad, d.o, m, ld);
            sdot_accumulate(d.o, l.k, ld, dyg, ld, b, ld, lanes);
          }
        }
        // dW (+)= dY [O, m] * col^T [m, K]
        if (!lanes_dw)
          gemm(false, true, d.o, l.k, m, T(1), dyg, m, b, m, T(g == first ? 0 : 1), acc, l.k);
        if (dx) {
          // dcol = W^T [K, O] * dY [O, m]
          T* dxg = dx + n0 * d.c * d.h * d.w;
          gemm(true, false, l.k, m, d.o, T(1), w, l.k, dyg, ld, T(0), l.pointwise ? dxg : dcol, m);
          if (!l.pointwise)
            for (int64_t i = 0; i < nb; ++i)
              col2im(dcol + i * l.p, d, l.ranges, m, dxg + i * d.c * d.h * d.w);
        }
      }
      if constexpr (std::is_same_v<T, float>)
        if (lanes_dw) sum_lanes(lanes, w_size, acc);
      if (first == last) std::fill(acc, acc + w_size, T(0));
    }
    if (chunks > 1) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < w_size; ++i) {
        T sum = dw[i];
        for (int64_t c = 1; c < chunks; ++c) sum += extra[(c - 1) * w_size + i];
        dw[i] = sum;
      }
    }
    if (db) conv_bias_grad(dy, d, db);
  }
}

template void conv2d_forward<float>(const float*, const float*, const float*, const WindowDims&,
                                    float*, bool);
template void conv2d_forward<double>(const double*, const double*, const double*, const WindowDims&,
                                     double*, bool);
template void conv2d_backward<float>(const float*, const float*, const float*, const WindowDims&,
                                     float*, float*, float*);
template void conv2d_backward<double>(const double*, const double*, const double*,
                                      const WindowDims&, double*, double*, double*);

}  // namespace st::cpu
