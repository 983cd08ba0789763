// 3x3, stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3)
// (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//
// Each 2x2 output tile is A^T [ (G g G^T) . (B^T d B) ] A, with d the 4x4
// input tile, g the 3x3 kernel and "." the element-wise product: 16
// multiplications per tile and channel pair where the direct form needs 36.
// Summed over input channels, the 16 element-wise products become 16
// independent GEMMs, [tiles, C] x [C, O], run on gemm/gemm.h (the transformed
// tiles are kept channel-innermost; see "The data transforms" below).
//
// The backward passes are the exact adjoints of that forward map, so they
// reuse its transforms instead of needing their own:
//   dW = G^T [ sum over tiles (A dy A^T) . (B^T d B) ] G
//   dd = B [ (G g G^T) . (A dy A^T) ] B^T, added back onto the overlapping input tiles.
// So the backward computes (A dy A^T) once and feeds it to two sets of 16 GEMMs.
//
// Tiles of `group` images are lowered side by side so that the GEMMs have
// enough columns; groups are spread over OpenMP threads, each calling a
// single-threaded GEMM on its own scratch buffers, as the im2col path does.
#include "backend/cpu/cpu_winograd.h"

#include <algorithm>
#include <type_traits>

#ifdef __SSE__
#include <xmmintrin.h>
#endif

#include "backend/cpu/cpu_runtime.h"
#include "backend/cpu/winograd_tiles.h"

namespace st::cpu {
namespace {

constexpr int kTile = 4;     // input tile side
constexpr int kOut = 2;      // output tile side
constexpr int kPoints = 16;  // transformed tile size, the number of GEMMs

// Tile columns per GEMM the grouping aims for.
constexpr int64_t kMinColumns = 192;
// Weight-gradient chunks per thread (see winograd_conv_backward).
constexpr int64_t kChunksPerThread = 2;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Elements between the 16 transformed planes of `cols` tiles x `cn` channels.
// The padding keeps the planes off multiples of 4 KiB apart: the per-tile
// transforms read or write all 16 at once, and equal low address bits made
// the stores alias the loads (4K aliasing) and stall.
int64_t point_stride(int64_t cols, int64_t cn) {
  return cols * cn + 16;
}

// How the batch is tiled and grouped.
struct Tiling {
  int64_t th = 0, tw = 0, per_image = 0;  // tiles down, across, per image
  int64_t group = 1, groups = 0;          // images per GEMM, number of groups
  int64_t first(int64_t g) const { return g * group; }
  int64_t images(int64_t g, int64_t n) const { return std::min(group, n - g * group); }
};

Tiling plan_tiling(const WindowDims& d, int team) {
  Tiling t;
  t.th = ceil_div(d.oh, kOut);
  t.tw = ceil_div(d.ow, kOut);
  t.per_image = t.th * t.tw;
  t.group = std::clamp<int64_t>(ceil_div(kMinColumns, t.per_image), 1, d.n);
  // At least two groups per thread, so that a thread slowed by other load
  // leaves work the others can take.
  if (team > 1) t.group = std::min(t.group, std::max<int64_t>(1, d.n / (2 * team)));
  t.groups = ceil_div(d.n, t.group);
  return t;
}

// --- The kernel transforms, for the C kernels of one output channel at once. ---
//
// The kernels are held transposed, gt[k * C + c] being tap k of kernel c, so
// that the loops over c read and write contiguous arrays and vectorize.

// u[p * stride + c] = (G g_c G^T)[p], with G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
template <typename T>
void kernel_transform_row(const T* __restrict gt, int64_t cn, int64_t stride, T* __restrict u) {
  // The 16 planes of u never overlap (stride >= cn): every iteration is independent.
#pragma omp simd
  for (int64_t c = 0; c < cn; ++c) {
    T r[12];  // G g: 4 x 3
    for (int j = 0; j < 3; ++j) {
      const T a = gt[j * cn + c], b = gt[(3 + j) * cn + c], e = gt[(6 + j) * cn + c];
      r[j] = a;
      r[3 + j] = T(0.5) * (a + b + e);
      r[6 + j] = T(0.5) * (a - b + e);
      r[9 + j] = e;
    }
    for (int i = 0; i < 4; ++i) {
      const T a = r[3 * i], b = r[3 * i + 1], e = r[3 * i + 2];
      u[(4 * i + 0) * stride + c] = a;
      u[(4 * i + 1) * stride + c] = T(0.5) * (a + b + e);
      u[(4 * i + 2) * stride + c] = T(0.5) * (a - b + e);
      u[(4 * i + 3) * stride + c] = e;
    }
  }
}

// gt[k * C + c] = (G^T m_c G)[k] (4x4 -> 3x3), the adjoint of
// kernel_transform_row, with m[p * C + c] the transformed-domain gradient.
template <typename T>
void kernel_adjoint_row(const T* __restrict m, int64_t cn, T* __restrict gt) {
#pragma omp simd
  for (int64_t c = 0; c < cn; ++c) {
    T r[12];  // G^T m: 3 x 4
    for (int j = 0; j < 4; ++j) {
      const T a = m[j * cn + c], b = m[(4 + j) * cn + c], e = m[(8 + j) * cn + c],
              f = m[(12 + j) * cn + c];
      r[j] = a + T(0.5) * (b + e);
      r[4 + j] = T(0.5) * (b - e);
      r[8 + j] = T(0.5) * (b + e) + f;
    }
    for (int i = 0; i < 3; ++i) {
      const T a = r[4 * i], b = r[4 * i + 1], e = r[4 * i + 2], f = r[4 * i + 3];
      gt[(3 * i + 0) * cn + c] = a + T(0.5) * (b + e);
      gt[(3 * i + 1) * cn + c] = T(0.5) * (b - e);
      gt[(3 * i + 2) * cn + c] = T(0.5) * (b + e) + f;
    }
  }
}

// --- The data transforms, one tile at a time, vectorized across channels. ---
//
// The transformed tiles are laid out channel-innermost: v[p][col][c], with col
// = image * per_image + ty * tw + tx. Every transform then is a loop over
// channels doing the same few additions per tile, which vectorizes whatever
// the plane size: the 4x4 and 8x8 planes of thin networks have too few tiles
// per row to vectorize across tiles. Planes are moved between NCHW and a
// padded channel-innermost (HWC) copy in per-thread scratch on the way in and out.

// The padded HWC copy of one image's planes: hp x wp pixels of C channels.
struct PaddedPlane {
  int64_t hp = 0, wp = 0;
};

PaddedPlane input_plane(const Tiling& t) {
  return {kOut * t.th + 2, kOut * t.tw + 2};
}

// dst[j * dld + i] = src[i * sld + j] for i < rows, j < cols.
template <typename T>
void transpose_scalar(const T* __restrict src, int64_t sld, int64_t rows, int64_t cols,
                      T* __restrict dst, int64_t dld) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * dld + i] = src[i * sld + j];
}

// The same in 4x4 SSE blocks for float: the planes of thin layers are only 4
// to 32 pixels wide, too short for the scalar loops' per-row overhead.
template <typename T>
void transpose(const T* __restrict src, int64_t sld, int64_t rows, int64_t cols, T* __restrict dst,
               int64_t dld) {
  int64_t i = 0;
#ifdef __SSE__
  if constexpr (std::is_same_v<T, float>) {
    const int64_t cols4 = cols & ~int64_t{3};
    for (; i + 4 <= rows; i += 4) {
      const float* s = src + i * sld;
      float* d = dst + i;
      for (int64_t j = 0; j < cols4; j += 4) {
        __m128 r0 = _mm_loadu_ps(s + j), r1 = _mm_loadu_ps(s + sld + j),
               r2 = _mm_loadu_ps(s + 2 * sld + j), r3 = _mm_loadu_ps(s + 3 * sld + j);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(d + j * dld, r0);
        _mm_storeu_ps(d + (j + 1) * dld, r1);
        _mm_storeu_ps(d + (j + 2) * dld, r2);
        _mm_storeu_ps(d + (j + 3) * dld, r3);
      }
      transpose_scalar(s + cols4, sld, 4, cols - cols4, d + cols4 * dld, dld);
    }
  }
#endif
  transpose_scalar(src + i * sld, sld, rows - i, cols, dst + i, dld);
}

// Channels moved per pass of the conversions below: each pass walks a few
// planes from start to end, which the hardware prefetcher follows, where a
// row of every channel at a time (up to hundreds of streams) missed the cache.
constexpr int64_t kChannelBlock = 4;

// hwc[(y + top) * wp + x + left][c] = chw[c][y][x], zero elsewhere.
template <typename T>
void chw_to_padded_hwc(const T* __restrict chw, int64_t cn, int64_t h, int64_t w, int64_t top,
                       int64_t left, const PaddedPlane& pp, T* __restrict hwc) {
  const int64_t row = pp.wp * cn;
  std::fill(hwc, hwc + top * row, T(0));
  for (int64_t y = 0; y < h; ++y) {
    T* r = hwc + (y + top) * row;
    std::fill(r, r + left * cn, T(0));
    std::fill(r + (left + w) * cn, r + row, T(0));
  }
  std::fill(hwc + (h + top) * row, hwc + pp.hp * row, T(0));
  for (int64_t c0 = 0; c0 < cn; c0 += kChannelBlock) {
    const int64_t cb = std::min(kChannelBlock, cn - c0);
    for (int64_t y = 0; y < h; ++y)
      transpose(chw + (c0 * h + y) * w, h * w, cb, w, hwc + (y + top) * row + left * cn + c0, cn);
  }
}

// chw[c][y][x] = hwc[(y + top) * wp + x + left][c]: the inverse, dropping the border.
template <typename T>
void padded_hwc_to_chw(const T* __restrict hwc, int64_t cn, int64_t h, int64_t w, int64_t top,
                       int64_t left, const PaddedPlane& pp, T* __restrict chw) {
  for (int64_t c0 = 0; c0 < cn; c0 += kChannelBlock) {
    const int64_t cb = std::min(kChannelBlock, cn - c0);
    for (int64_t y = 0; y < h; ++y)
      transpose(hwc + ((y + top) * pp.wp + left) * cn + c0, cn, w, cb, chw + (c0 * h + y) * w,
                h * w);
  }
}

// v[p * ps + c] = (B^T d B)[p] for the 4x4 tile d at s (rows `row` apart,
// pixels cn apart).
template <typename T>
void input_tile(const T* __restrict s, int64_t row, int64_t cn, int64_t ps, T* __restrict v) {
#pragma omp simd
  for (int64_t c = 0; c < cn; ++c) {
    T d[4][4], t[16];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) d[i][j] = s[i * row + j * cn + c];
    winograd::input_transform(d, t);
    for (int p = 0; p < 16; ++p) v[p * ps + c] = t[p];
  }
}

// The 2x2 outputs A^T m A + bias of one tile, m[p * ps + o], written to out
// (rows `row` apart, pixels on apart).
template <typename T>
void output_tile(const T* __restrict m, int64_t ps, int64_t on, const T* __restrict bias,
                 int64_t row, T* __restrict out) {
#pragma omp simd
  for (int64_t o = 0; o < on; ++o) {
    T t[16], y[2][2];
    for (int p = 0; p < 16; ++p) t[p] = m[p * ps + o];
    winograd::output_transform(t, y);
    for (int a = 0; a < 2; ++a) {
      out[a * row + o] = y[a][0] + bias[o];
      out[a * row + on + o] = y[a][1] + bias[o];
    }
  }
}

// z[p * ps + o] = (A g A^T)[p] for the 2x2 output-gradient tile g at s.
template <typename T>
void output_grad_tile(const T* __restrict s, int64_t row, int64_t on, int64_t ps, T* __restrict z) {
#pragma omp simd
  for (int64_t o = 0; o < on; ++o) {
    const T g[2][2] = {{s[o], s[on + o]}, {s[row + o], s[row + on + o]}};
    T t[16];
    winograd::output_grad_transform(g, t);
    for (int p = 0; p < 16; ++p) z[p * ps + o] = t[p];
  }
}

// Adds B x B^T, x[p * ps + c] one tile's input-gradient points, onto the 4x4
// tile at acc (rows `row` apart, pixels cn apart).
template <typename T>
void add_input_grad_tile(const T* __restrict x, int64_t ps, int64_t cn, int64_t row,
                         T* __restrict acc) {
#pragma omp simd
  for (int64_t c = 0; c < cn; ++c) {
    T v[16], t[4][4];
    for (int p = 0; p < 16; ++p) v[p] = x[p * ps + c];
    winograd::input_grad_transform(v, t);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) acc[i * row + j * cn + c] += t[i][j];
  }
}

// v[p][col][c] = (B^T d B)[p] for every channel and tile of images [n0, n0 + nb).
template <typename T>
void transform_inputs(const T* x, const WindowDims& d, const Tiling& t, int64_t n0, int64_t nb,
                      T* v) {
  const int64_t cn = d.c, ps = point_stride(nb * t.per_image, cn);
  const PaddedPlane pp = input_plane(t);
  T* hwc = scratch<T>(Scratch::Plane, pp.hp * pp.wp * cn);
  for (int64_t im = 0; im < nb; ++im) {
    chw_to_padded_hwc(x + (n0 + im) * cn * d.h * d.w, cn, d.h, d.w, d.g.pad_h, d.g.pad_w, pp, hwc);
    T* dst = v + im * t.per_image * cn;
    for (int64_t ty = 0; ty < t.th; ++ty)
      for (int64_t tx = 0; tx < t.tw; ++tx)
        input_tile(hwc + (kOut * ty * pp.wp + kOut * tx) * cn, pp.wp * cn, cn, ps,
                   dst + (ty * t.tw + tx) * cn);
  }
}

// The output plane rounded up to whole tiles, HWC.
PaddedPlane output_plane(const Tiling& t) {
  return {kOut * t.th, kOut * t.tw};
}

// z[p][col][o] = (A g A^T)[p] for every 2x2 output-gradient tile g (zero where
// the tile hangs over the output's edge), with A^T = [1 1 1 0; 0 1 -1 -1].
template <typename T>
void transform_output_grads(const T* dy, const WindowDims& d, const Tiling& t, int64_t n0,
                            int64_t nb, T* z) {
  const int64_t on = d.o, ps = point_stride(nb * t.per_image, on);
  const PaddedPlane pp = output_plane(t);
  T* hwc = scratch<T>(Scratch::OutPlane, pp.hp * pp.wp * on);
  for (int64_t im = 0; im < nb; ++im) {
    chw_to_padded_hwc(dy + (n0 + im) * on * d.oh * d.ow, on, d.oh, d.ow, 0, 0, pp, hwc);
    T* dst = z + im * t.per_image * on;
    for (int64_t ty = 0; ty < t.th; ++ty)
      for (int64_t tx = 0; tx < t.tw; ++tx)
        output_grad_tile(hwc + (kOut * ty * pp.wp + kOut * tx) * on, pp.wp * on, on, ps,
                         dst + (ty * t.tw + tx) * on);
  }
}

// y = A^T m A (+ bias) for every output channel and tile, clipped to the output plane.
template <typename T>
void untransform_outputs(const T* m, const T* bias, const WindowDims& d, const Tiling& t,
                         int64_t n0, int64_t nb, T* y) {
  const int64_t on = d.o, ps = point_stride(nb * t.per_image, on);
  const PaddedPlane pp = output_plane(t);
  T* hwc = scratch<T>(Scratch::OutPlane, pp.hp * pp.wp * on);
  T* b = scratch<T>(Scratch::Bias, on);
  for (int64_t o = 0; o < on; ++o) b[o] = bias ? bias[o] : T(0);
  for (int64_t im = 0; im < nb; ++im) {
    const T* src = m + im * t.per_image * on;
    for (int64_t ty = 0; ty < t.th; ++ty)
      for (int64_t tx = 0; tx < t.tw; ++tx)
        output_tile(src + (ty * t.tw + tx) * on, ps, on, b, pp.wp * on,
                    hwc + (kOut * ty * pp.wp + kOut * tx) * on);
    padded_hwc_to_chw(hwc, on, d.oh, d.ow, 0, 0, pp, y + (n0 + im) * on * d.oh * d.ow);
  }
}

// dx = sum over tiles of B x B^T, added onto the overlapping 4x4 input tiles
// of a zeroed, padded HWC plane, then written into dx (dropping the padding).
template <typename T>
void untransform_input_grads(const T* xg, const WindowDims& d, const Tiling& t, int64_t n0,
                             int64_t nb, T* dx) {
  const int64_t cn = d.c, ps = point_stride(nb * t.per_image, cn);
  const PaddedPlane pp = input_plane(t);
  T* acc = scratch<T>(Scratch::Plane, pp.hp * pp.wp * cn);
  for (int64_t im = 0; im < nb; ++im) {
    std::fill(acc, acc + pp.hp * pp.wp * cn, T(0));
    const T* src = xg + im * t.per_image * cn;
    for (int64_t ty = 0; ty < t.th; ++ty)
      for (int64_t tx = 0; tx < t.tw; ++tx)
        add_input_grad_tile(src + (ty * t.tw + tx) * cn, ps, cn, pp.wp * cn,
                            acc + (kOut * ty * pp.wp + kOut * tx) * cn);
    padded_hwc_to_chw(acc, cn, d.h, d.w, d.g.pad_h, d.g.pad_w, pp, dx + (n0 + im) * cn * d.h * d.w);
  }
}

}  // namespace

// u[p][o][c] = (G w[o][c] G^T)[p], split across the calling team.
template <typename T>
void winograd_transform_kernels(const T* w, const WindowDims& d, T* u) {
  T* gt = scratch<T>(Scratch::Rows, 9 * d.c);
#pragma omp for schedule(static)
  for (int64_t o = 0; o < d.o; ++o) {
    const T* wo = w + o * d.c * 9;
    for (int64_t c = 0; c < d.c; ++c)
      for (int k = 0; k < 9; ++k) gt[k * d.c + c] = wo[c * 9 + k];
    kernel_transform_row(gt, d.c, d.o * d.c, u + o * d.c);
  }
}

// dw[o][c] = G^T m G with m the chunks' transformed-domain sums added in
// chunk order, split across the calling team.
template <typename T>
void winograd_untransform_weight_grads(const T* acc, int64_t chunks, const WindowDims& d, T* dw) {
  const int64_t u_size = kPoints * d.o * d.c;
  T* m = scratch<T>(Scratch::Rows, (kPoints + 9) * d.c);
  T* gt = m + kPoints * d.c;
#pragma omp for schedule(static)
  for (int64_t o = 0; o < d.o; ++o) {
    for (int p = 0; p < kPoints; ++p) {
      T* mp = m + p * d.c;
      const T* src = acc + p * d.o * d.c + o * d.c;
      std::copy(src, src + d.c, mp);
      for (int64_t ch = 1; ch < chunks; ++ch)
        for (int64_t c = 0; c < d.c; ++c) mp[c] += src[ch * u_size + c];
    }
    kernel_adjoint_row(m, d.c, gt);
    T* dwo = dw + o * d.c * 9;
    for (int64_t c = 0; c < d.c; ++c)
      for (int k = 0; k < 9; ++k) dwo[c * 9 + k] = gt[k * d.c + c];
  }
}

// db[o] = sum of dy over images and the plane, in double, split across the calling team.
template <typename T>
void conv_bias_grad(const T* dy, const WindowDims& d, T* db) {
  const int64_t plane = d.oh * d.ow;
#pragma omp for schedule(static)
  for (int64_t o = 0; o < d.o; ++o) {
    double sum = 0;
    for (int64_t n = 0; n < d.n; ++n) {
      const T* row = dy + (n * d.o + o) * plane;
      // In vector lanes (still in double): a serial chain of double additions
      // took 4 % of a thin layer's backward.
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < plane; ++i) sum += row[i];
    }
    db[o] = static_cast<T>(sum);
  }
}

bool winograd_geometry(const WindowDims& d) {
  return d.g.kh == 3 && d.g.kw == 3 && d.g.stride_h == 1 && d.g.stride_w == 1 && d.g.pad_h <= 2 &&
         d.g.pad_w <= 2 && d.oh > 0 && d.ow > 0 && d.n > 0;
}

bool winograd_applies(const WindowDims& d) {
  // Below 16 channels the GEMMs' inner dimension is too short to gain.
  return winograd_geometry(d) && d.c >= kWinogradMinChannels && d.o >= kWinogradMinChannels;
}

template <typename T>
void winograd_conv_forward(const T* x, const T* w, const T* bias, const WindowDims& d, bool relu,
                           T* y) {
  const int team = threads_for(d.n, d.o * d.c * 9 * d.oh * d.ow);
  const Tiling t = plan_tiling(d, team);
  T* u = scratch<T>(Scratch::Weights, kPoints * d.o * d.c);
  SingleThreadedBlas guard(team > 1);
#pragma omp parallel num_threads(team)
  {
    winograd_transform_kernels(w, d, u);  // ends with the for's barrier
    const int64_t cols = t.group * t.per_image;
    T* v = scratch<T>(Scratch::Col, kPoints * point_stride(cols, d.c));
    T* m = scratch<T>(Scratch::Gather, kPoints * point_stride(cols, d.o));
#pragma omp for schedule(dynamic, 1)
    for (int64_t g = 0; g < t.groups; ++g) {
      const int64_t n0 = t.first(g), nb = t.images(g, d.n), k = nb * t.per_image;
      transform_inputs(x, d, t, n0, nb, v);
      for (int p = 0; p < kPoints; ++p)
        gemm(false, true, k, d.o, d.c, T(1), v + p * point_stride(k, d.c), d.c, u + p * d.o * d.c,
             d.c, T(0), m + p * point_stride(k, d.o), d.o);
      untransform_outputs(m, bias, d, t, n0, nb, y);
      const int64_t image = d.o * d.oh * d.ow;
      if (relu) relu_in_place(y + n0 * image, nb * image);
    }
  }
}

template <typename T>
void winograd_conv_backward(const T* x, const T* w, const T* dy, const WindowDims& d, T* dx, T* dw,
                            T* db) {
  const int team = threads_for(d.n, d.o * d.c * 9 * d.oh * d.ow * (dx ? 2 : 1));
  const Tiling t = plan_tiling(d, team);
  const int64_t u_size = kPoints * d.o * d.c;
  // Fixed chunks of consecutive groups, each summing its weight gradient (in
  // the transformed domain) into its own buffer; the buffers are added in
  // chunk order, so dw is bitwise reproducible for a given thread count.
  const int64_t chunks = team == 1 ? 1 : std::min<int64_t>(t.groups, kChunksPerThread * team);
  T* acc = scratch<T>(Scratch::WeightGrad, chunks * u_size);
  T* u = dx ? scratch<T>(Scratch::Weights, u_size) : nullptr;
  SingleThreadedBlas guard(team > 1);
#pragma omp parallel num_threads(team)
  {
    if (dx) winograd_transform_kernels(w, d, u);
    const int64_t cols = t.group * t.per_image;
    T* v = scratch<T>(Scratch::Col, kPoints * point_stride(cols, d.c));
    T* z = scratch<T>(Scratch::Gather, kPoints * point_stride(cols, d.o));
    T* xg = dx ? scratch<T>(Scratch::ColGrad, kPoints * point_stride(cols, d.c)) : nullptr;
#pragma omp for schedule(dynamic, 1)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      T* a = acc + chunk * u_size;
      const int64_t first = chunk * t.groups / chunks, last = (chunk + 1) * t.groups / chunks;
      if (first == last) std::fill(a, a + u_size, T(0));
      for (int64_t g = first; g < last; ++g) {
        const int64_t n0 = t.first(g), nb = t.images(g, d.n), k = nb * t.per_image;
        transform_inputs(x, d, t, n0, nb, v);
        transform_output_grads(dy, d, t, n0, nb, z);
        for (int p = 0; p < kPoints; ++p) {
          // M[p] [O, C] (+)= Z[p]^T [O, k] * V[p] [k, C]
          gemm(true, false, d.o, d.c, k, T(1), z + p * point_stride(k, d.o), d.o,
               v + p * point_stride(k, d.c), d.c, T(g == first ? 0 : 1), a + p * d.o * d.c, d.c);
          // X[p] [k, C] = Z[p] [k, O] * U[p] [O, C]
          if (dx)
            gemm(false, false, k, d.c, d.o, T(1), z + p * point_stride(k, d.o), d.o,
                 u + p * d.o * d.c, d.c, T(0), xg + p * point_stride(k, d.c), d.c);
        }
        if (dx) untransform_input_grads(xg, d, t, n0, nb, dx);
      }
    }
    winograd_untransform_weight_grads(acc, chunks, d, dw);
    if (db) conv_bias_grad(dy, d, db);
  }
}

template void winograd_conv_forward<float>(const float*, const float*, const float*,
                                           const WindowDims&, bool, float*);
template void winograd_conv_forward<double>(const double*, const double*, const double*,
                                            const WindowDims&, bool, double*);
template void winograd_conv_backward<float>(const float*, const float*, const float*,
                                            const WindowDims&, float*, float*, float*);
template void winograd_conv_backward<double>(const double*, const double*, const double*,
                                             const WindowDims&, double*, double*, double*);

#define ST_WINOGRAD_SHARED(T)                                                                   \
  template void winograd_transform_kernels<T>(const T*, const WindowDims&, T*);                 \
  template void winograd_untransform_weight_grads<T>(const T*, int64_t, const WindowDims&, T*); \
  template void conv_bias_grad<T>(const T*, const WindowDims&, T*);
ST_WINOGRAD_SHARED(float)
ST_WINOGRAD_SHARED(double)
#undef ST_WINOGRAD_SHARED

}  // namespace st::cpu
