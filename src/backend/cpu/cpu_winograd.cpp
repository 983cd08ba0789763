// 3x3, stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3)
// (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//
// Each 2x2 output tile is A^T [ (G g G^T) . (B^T d B) ] A, with d the 4x4
// input tile, g the 3x3 kernel and "." the element-wise product: 16
// multiplications per tile and channel pair where the direct form needs 36.
// Summed over input channels, the 16 element-wise products become 16
// independent GEMMs, [O, C] x [C, tiles], run on OpenBLAS.
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

#include "backend/cpu/cpu_runtime.h"

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

// --- The data transforms, a row of tiles at a time. ---
//
// Every loop below runs over the tiles of one tile row (index tx), with each
// of a tile's 16 (or 4) values in its own array, so the loops are plain
// element-wise vector code. Neighbouring 4x4 input tiles overlap by two
// columns: a padded image row is split into its even and odd columns E and O,
// and tile tx's four columns are then E[tx], O[tx], E[tx + 1], O[tx + 1].

// Work arrays for the row-of-tiles loops, `half` = tiles + 1 long, in the
// calling thread's scratch (no allocation per call).
template <typename T>
struct RowWork {
  explicit RowWork(int64_t tiles) : half(tiles + 1), buf(scratch<T>(Scratch::Rows, 64 * half)) {}
  T* at(int slot) { return buf + slot * half; }
  int64_t half;
  T* buf;
};

// The k in [0, half) for which column 2k + offset lies inside [0, w).
struct SplitRange {
  int64_t lo, hi;
};
SplitRange split_range(int64_t w, int64_t offset, int64_t half) {
  const int64_t lo =
      std::clamp<int64_t>((1 - offset) / 2, 0, half);  // ceil(-offset / 2), offset <= 1
  const int64_t last = w - 1 - offset;                 // 2k <= last
  const int64_t hi = last < 0 ? lo : std::clamp<int64_t>(last / 2 + 1, lo, half);
  return {lo, hi};
}

// Row y of a plane shifted right by `pad` (pad <= 2) and zero-padded to
// 2 * half columns, split into its even and odd columns: even[k] is column
// 2k - pad of the row, odd[k] column 2k + 1 - pad.
template <typename T>
void split_row(const T* plane, int64_t h, int64_t w, int64_t y, int64_t pad, int64_t half, T* even,
               T* odd) {
  if (y < 0 || y >= h) {
    std::fill(even, even + half, T(0));
    std::fill(odd, odd + half, T(0));
    return;
  }
  const T* row = plane + y * w;
  const SplitRange e = split_range(w, -pad, half), o = split_range(w, 1 - pad, half);
  for (int64_t k = 0; k < e.lo; ++k) even[k] = T(0);
  for (int64_t k = e.lo; k < e.hi; ++k) even[k] = row[2 * k - pad];
  for (int64_t k = e.hi; k < half; ++k) even[k] = T(0);
  for (int64_t k = 0; k < o.lo; ++k) odd[k] = T(0);
  for (int64_t k = o.lo; k < o.hi; ++k) odd[k] = row[2 * k + 1 - pad];
  for (int64_t k = o.hi; k < half; ++k) odd[k] = T(0);
}

// (o0, o1, o2, o3) = (r0 - r2, r1 + r2, r2 - r1, r1 - r3), B^T's rows.
template <typename T>
void combine_rows_bt(const T* __restrict r0, const T* __restrict r1, const T* __restrict r2,
                     const T* __restrict r3, int64_t n, T* __restrict o0, T* __restrict o1,
                     T* __restrict o2, T* __restrict o3) {
  for (int64_t k = 0; k < n; ++k) {
    o0[k] = r0[k] - r2[k];
    o1[k] = r1[k] + r2[k];
    o2[k] = r2[k] - r1[k];
    o3[k] = r1[k] - r3[k];
  }
}

// Row i of the tiles' (B^T d) B from row i of B^T d, split into columns E, O:
// tile tx's columns E[tx], O[tx], E[tx+1], O[tx+1] combine as B^T's rows.
template <typename T>
void combine_columns_bt(const T* __restrict E, const T* __restrict O, int64_t tw, T* __restrict d0,
                        T* __restrict d1, T* __restrict d2, T* __restrict d3) {
  for (int64_t tx = 0; tx < tw; ++tx) {
    d0[tx] = E[tx] - E[tx + 1];
    d1[tx] = O[tx] + E[tx + 1];
    d2[tx] = E[tx + 1] - O[tx];
    d3[tx] = O[tx] - O[tx + 1];
  }
}

// (o0, o1, o2, o3) = (a, b - c + e, c + b - a, -e), B's rows.
template <typename T>
void combine_rows_b(const T* __restrict a, const T* __restrict b, const T* __restrict c,
                    const T* __restrict e, int64_t n, T* __restrict o0, T* __restrict o1,
                    T* __restrict o2, T* __restrict o3) {
  for (int64_t k = 0; k < n; ++k) {
    o0[k] = a[k];
    o1[k] = b[k] - c[k] + e[k];
    o2[k] = c[k] + b[k] - a[k];
    o3[k] = -e[k];
  }
}

// Adds tile tx's row (a, b, c, e) B^T = (a, b - c + e, c + b - a, -e) onto the
// split padded row: columns E[tx], O[tx], E[tx + 1], O[tx + 1].
template <typename T>
void add_columns_bt(const T* __restrict a, const T* __restrict b, const T* __restrict c,
                    const T* __restrict e, int64_t tw, T* __restrict E, T* __restrict O) {
  for (int64_t tx = 0; tx < tw; ++tx) {
    E[tx] += a[tx];
    O[tx] += b[tx] - c[tx] + e[tx];
  }
  for (int64_t tx = 0; tx < tw; ++tx) {
    E[tx + 1] += c[tx] + b[tx] - a[tx];
    O[tx + 1] -= e[tx];
  }
}

template <typename T>
void sum3(const T* __restrict a, const T* __restrict b, const T* __restrict c, int64_t n,
          T* __restrict out) {
  for (int64_t k = 0; k < n; ++k) out[k] = a[k] + b[k] + c[k];
}

template <typename T>
void diff3(const T* __restrict a, const T* __restrict b, const T* __restrict c, int64_t n,
           T* __restrict out) {
  for (int64_t k = 0; k < n; ++k) out[k] = a[k] - b[k] - c[k];
}

// One output row from the tile row's A^T-combined rows q0..q3: column 2 tx is
// q0 + q1 + q2, column 2 tx + 1 is q1 - q2 - q3 (A^T along columns), plus bias.
template <typename T>
void output_row(const T* __restrict q0, const T* __restrict q1, const T* __restrict q2,
                const T* __restrict q3, T bias, int64_t tw, T* __restrict even, T* __restrict odd,
                T* __restrict out) {
  for (int64_t tx = 0; tx < tw; ++tx) {
    even[tx] = q0[tx] + q1[tx] + q2[tx] + bias;
    odd[tx] = q1[tx] - q2[tx] - q3[tx] + bias;
  }
  for (int64_t tx = 0; tx < tw; ++tx) out[2 * tx] = even[tx], out[2 * tx + 1] = odd[tx];
}

// v[p][c][col] = (B^T d B)[p] for every channel and tile of images [n0, n0 + nb), with
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
template <typename T>
void transform_inputs(const T* x, const WindowDims& d, const Tiling& t, int64_t n0, int64_t nb,
                      T* v) {
  const int64_t cols = nb * t.per_image, stride = d.c * cols, tw = t.tw;
  RowWork<T> work(tw);
  const int64_t half = work.half, rows = kOut * t.th + 2;
  // The padded plane, each row split into its even and odd columns once:
  // neighbouring tile rows share two input rows.
  T* split = scratch<T>(Scratch::Plane, rows * 2 * half);
  auto even = [&](int64_t r) { return split + r * 2 * half; };
  auto odd = [&](int64_t r) { return split + r * 2 * half + half; };
  T *e[4], *o[4];  // B^T d for the tile row, even and odd columns
  for (int i = 0; i < 4; ++i) e[i] = work.at(2 + 2 * i), o[i] = work.at(3 + 2 * i);
  for (int64_t c = 0; c < d.c; ++c)
    for (int64_t im = 0; im < nb; ++im) {
      const T* plane = x + ((n0 + im) * d.c + c) * d.h * d.w;
      for (int64_t r = 0; r < rows; ++r)
        split_row(plane, d.h, d.w, r - d.g.pad_h, d.g.pad_w, half, even(r), odd(r));
      T* dst = v + c * cols + im * t.per_image;
      for (int64_t ty = 0; ty < t.th; ++ty) {
        const int64_t r = kOut * ty;
        combine_rows_bt(even(r), even(r + 1), even(r + 2), even(r + 3), half, e[0], e[1], e[2],
                        e[3]);
        combine_rows_bt(odd(r), odd(r + 1), odd(r + 2), odd(r + 3), half, o[0], o[1], o[2], o[3]);
        T* tiles = dst + ty * tw;
        for (int i = 0; i < 4; ++i) {
          T* out = tiles + i * 4 * stride;
          combine_columns_bt(e[i], o[i], tw, out, out + stride, out + 2 * stride, out + 3 * stride);
        }
      }
    }
}

// Row i of z = A g A^T for a row of 2x2 tiles g (columns e0, o0 of the first
// output row, e1, o1 of the second): (a, a + b, a - b, -b), where
// a = s0 * e0 + s1 * e1 and b = s0 * o0 + s1 * o1 with (s0, s1) row i of A.
template <typename T>
void grad_row(const T* __restrict e0, const T* __restrict o0, const T* __restrict e1,
              const T* __restrict o1, T s0, T s1, int64_t tw, T* __restrict d0, T* __restrict d1,
              T* __restrict d2, T* __restrict d3) {
  for (int64_t tx = 0; tx < tw; ++tx) {
    const T a = s0 * e0[tx] + s1 * e1[tx], b = s0 * o0[tx] + s1 * o1[tx];
    d0[tx] = a;
    d1[tx] = a + b;
    d2[tx] = a - b;
    d3[tx] = -b;
  }
}

// z[p][o][col] = (A g A^T)[p] for every 2x2 output-gradient tile g (zero where
// the tile hangs over the output's edge), with A^T = [1 1 1 0; 0 1 -1 -1].
template <typename T>
void transform_output_grads(const T* dy, const WindowDims& d, const Tiling& t, int64_t n0,
                            int64_t nb, T* z) {
  const int64_t cols = nb * t.per_image, stride = d.o * cols, tw = t.tw;
  RowWork<T> work(tw);
  const int64_t half = work.half;
  T *e0 = work.at(2), *o0 = work.at(3), *e1 = work.at(4), *o1 = work.at(5);
  for (int64_t oc = 0; oc < d.o; ++oc)
    for (int64_t im = 0; im < nb; ++im) {
      const T* plane = dy + ((n0 + im) * d.o + oc) * d.oh * d.ow;
      for (int64_t ty = 0; ty < t.th; ++ty) {
        split_row(plane, d.oh, d.ow, kOut * ty, 0, half, e0, o0);
        split_row(plane, d.oh, d.ow, kOut * ty + 1, 0, half, e1, o1);
        T* dst = z + oc * cols + im * t.per_image + ty * tw;
        // Row i of A g is (a, b) = (g00, g01), (g00 + g10, g01 + g11),
        // (g00 - g10, g01 - g11), (-g10, -g11); then z[i] = (a, a + b, a - b, -b).
        for (int i = 0; i < 4; ++i) {
          const T s0 = i == 3 ? T(0) : T(1), s1 = i == 0 ? T(0) : (i == 1 ? T(1) : T(-1));
          T* row = dst + i * 4 * stride;
          grad_row(e0, o0, e1, o1, s0, s1, tw, row, row + stride, row + 2 * stride,
                   row + 3 * stride);
        }
      }
    }
}

// y = A^T m A (+ bias) for every output channel and tile, clipped to the output plane.
template <typename T>
void untransform_outputs(const T* m, const T* bias, const WindowDims& d, const Tiling& t,
                         int64_t n0, int64_t nb, T* y) {
  const int64_t cols = nb * t.per_image, stride = d.o * cols, tw = t.tw;
  RowWork<T> work(tw);
  T *r0 = work.at(0), *r1 = work.at(2);  // two output rows, 2 * tw wide
  T* q[4] = {work.at(4), work.at(5), work.at(6), work.at(7)};
  T *even = work.at(8), *odd = work.at(9);
  for (int64_t oc = 0; oc < d.o; ++oc) {
    const T b = bias ? bias[oc] : T(0);
    for (int64_t im = 0; im < nb; ++im) {
      T* plane = y + ((n0 + im) * d.o + oc) * d.oh * d.ow;
      for (int64_t ty = 0; ty < t.th; ++ty) {
        const T* src = m + oc * cols + im * t.per_image + ty * tw;
        const T* p[16];
        for (int k = 0; k < kPoints; ++k) p[k] = src + k * stride;
        // A^T m: row 0 sums m's rows 0..2, row 1 is rows 1 - 2 - 3; then A^T along columns.
        for (int j = 0; j < 4; ++j) sum3(p[j], p[4 + j], p[8 + j], tw, q[j]);
        output_row(q[0], q[1], q[2], q[3], b, tw, even, odd, r0);
        for (int j = 0; j < 4; ++j) diff3(p[4 + j], p[8 + j], p[12 + j], tw, q[j]);
        output_row(q[0], q[1], q[2], q[3], b, tw, even, odd, r1);
        const int64_t yy = kOut * ty;
        std::copy(r0, r0 + d.ow, plane + yy * d.ow);
        if (yy + 1 < d.oh) std::copy(r1, r1 + d.ow, plane + (yy + 1) * d.ow);
      }
    }
  }
}

// dx = sum over tiles of B x B^T, added onto the overlapping 4x4 input tiles.
// The sums are gathered in a zeroed, padded copy of the plane kept as split
// even and odd columns, then written into dx (dropping the padding).
template <typename T>
void untransform_input_grads(const T* xg, const WindowDims& d, const Tiling& t, int64_t n0,
                             int64_t nb, T* dx) {
  const int64_t cols = nb * t.per_image, stride = d.c * cols, tw = t.tw;
  RowWork<T> work(tw);
  const int64_t half = work.half, rows = kOut * t.th + 2;
  const int64_t acc_size = rows * 2 * half;
  T* acc = scratch<T>(Scratch::Plane, acc_size);  // padded plane: E, O per row
  T* line = work.at(0);
  T* r[4][4];  // B x for the tile row: 4 rows of 4 columns
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) r[i][j] = work.at(2 + i * 4 + j);
  for (int64_t c = 0; c < d.c; ++c)
    for (int64_t im = 0; im < nb; ++im) {
      std::fill(acc, acc + acc_size, T(0));
      for (int64_t ty = 0; ty < t.th; ++ty) {
        const T* src = xg + c * cols + im * t.per_image + ty * tw;
        const T* p[16];
        for (int k = 0; k < kPoints; ++k) p[k] = src + k * stride;
        // B x: rows (x0, x1 - x2 + x3, x2 + x1 - x0, -x3).
        for (int j = 0; j < 4; ++j)
          combine_rows_b(p[j], p[4 + j], p[8 + j], p[12 + j], tw, r[0][j], r[1][j], r[2][j],
                         r[3][j]);
        // (B x) B^T along the columns, added onto padded row 2 ty + i.
        for (int i = 0; i < 4; ++i) {
          T* E = acc + (kOut * ty + i) * 2 * half;
          add_columns_bt(r[i][0], r[i][1], r[i][2], r[i][3], tw, E, E + half);
        }
      }
      T* plane = dx + ((n0 + im) * d.c + c) * d.h * d.w;
      for (int64_t yy = 0; yy < d.h; ++yy) {
        const T* E = acc + (yy + d.g.pad_h) * 2 * half;
        const T* O = E + half;
        for (int64_t k = 0; k < half; ++k) line[2 * k] = E[k], line[2 * k + 1] = O[k];
        std::copy(line + d.g.pad_w, line + d.g.pad_w + d.w, plane + yy * d.w);
      }
    }
}

// u[p][o][c] = (G w[o][c] G^T)[p], split across the calling team.
template <typename T>
void transform_kernels(const T* w, const WindowDims& d, T* u) {
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
void untransform_weight_grads(const T* acc, int64_t chunks, const WindowDims& d, T* dw) {
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

}  // namespace

bool winograd_applies(const WindowDims& d) {
  // Below 16 channels the GEMMs' inner dimension is too short to gain.
  return d.g.kh == 3 && d.g.kw == 3 && d.g.stride_h == 1 && d.g.stride_w == 1 && d.g.pad_h <= 2 &&
         d.g.pad_w <= 2 && d.c >= kWinogradMinChannels && d.o >= kWinogradMinChannels && d.oh > 0 &&
         d.ow > 0 && d.n > 0;
}

template <typename T>
void winograd_conv_forward(const T* x, const T* w, const T* bias, const WindowDims& d, T* y) {
  const int team = threads_for(d.n, d.o * d.c * 9 * d.oh * d.ow);
  const Tiling t = plan_tiling(d, team);
  T* u = scratch<T>(Scratch::Weights, kPoints * d.o * d.c);
  SingleThreadedBlas guard(team > 1);
#pragma omp parallel num_threads(team)
  {
    transform_kernels(w, d, u);  // ends with the for's barrier
    const int64_t cols = t.group * t.per_image;
    T* v = scratch<T>(Scratch::Col, kPoints * d.c * cols);
    T* m = scratch<T>(Scratch::Gather, kPoints * d.o * cols);
#pragma omp for schedule(dynamic, 1)
    for (int64_t g = 0; g < t.groups; ++g) {
      const int64_t n0 = t.first(g), nb = t.images(g, d.n), k = nb * t.per_image;
      transform_inputs(x, d, t, n0, nb, v);
      for (int p = 0; p < kPoints; ++p)
        gemm(false, false, d.o, k, d.c, T(1), u + p * d.o * d.c, d.c, v + p * d.c * k, k, T(0),
             m + p * d.o * k, k);
      untransform_outputs(m, bias, d, t, n0, nb, y);
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
  const int64_t y_plane = d.oh * d.ow;
  SingleThreadedBlas guard(team > 1);
#pragma omp parallel num_threads(team)
  {
    if (dx) transform_kernels(w, d, u);
    const int64_t cols = t.group * t.per_image;
    T* v = scratch<T>(Scratch::Col, kPoints * d.c * cols);
    T* z = scratch<T>(Scratch::Gather, kPoints * d.o * cols);
    T* xg = dx ? scratch<T>(Scratch::ColGrad, kPoints * d.c * cols) : nullptr;
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
          // M[p] (+)= Z[p] [O, k] * V[p]^T [k, C]
          gemm(false, true, d.o, d.c, k, T(1), z + p * d.o * k, k, v + p * d.c * k, k,
               T(g == first ? 0 : 1), a + p * d.o * d.c, d.c);
          // X[p] = U[p]^T [C, O] * Z[p] [O, k]
          if (dx)
            gemm(true, false, d.c, k, d.o, T(1), u + p * d.o * d.c, d.c, z + p * d.o * k, k, T(0),
                 xg + p * d.c * k, k);
        }
        if (dx) untransform_input_grads(xg, d, t, n0, nb, dx);
      }
    }
    untransform_weight_grads(acc, chunks, d, dw);
    if (db) {
#pragma omp for schedule(static)
      for (int64_t o = 0; o < d.o; ++o) {
        double sum = 0;
        for (int64_t n = 0; n < d.n; ++n) {
          const T* row = dy + (n * d.o + o) * y_plane;
          for (int64_t i = 0; i < y_plane; ++i) sum += row[i];
        }
        db[o] = static_cast<T>(sum);
      }
    }
  }
}

template void winograd_conv_forward<float>(const float*, const float*, const float*,
                                           const WindowDims&, float*);
template void winograd_conv_forward<double>(const double*, const double*, const double*,
                                            const WindowDims&, double*);
template void winograd_conv_backward<float>(const float*, const float*, const float*,
                                            const WindowDims&, float*, float*, float*);
template void winograd_conv_backward<double>(const double*, const double*, const double*,
                                             const WindowDims&, double*, double*, double*);

}  // namespace st::cpu
