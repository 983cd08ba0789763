// The GEMM driver (BLIS's five loops): for each nc-wide block of columns and
// kc-deep slice of K, op(B) is packed into nr-wide panels, then for each
// mc-tall block of rows op(A) is packed into mr-tall panels and the ISA's
// macro-kernel multiplies the two packed blocks. Packing makes every
// micro-kernel read contiguous, aligned-stride memory whatever the
// transposes and leading dimensions.
//
// Threads split the rows (mc blocks) and, when there are fewer blocks than
// threads, the columns of a block; never K. Each element of C is therefore
// summed by one thread in the same order for any thread count.
#include <omp.h>

#ifdef __SSE__
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "backend/cpu/cpu_runtime.h"
#include "backend/cpu/gemm/gemm.h"
#include "backend/cpu/gemm/gemm_kernels.h"

namespace st::cpu {
namespace {

using gemm_detail::Block;
using gemm_detail::kernels_of;
using gemm_detail::KernelSet;
using gemm_detail::MacroKernel;

// Multiply-adds below which a GEMM called outside a parallel region stays on
// one thread: the fork and the barriers cost more than they save, and far
// more on a loaded machine, where a descheduled thread holds the others at
// every barrier (the same threshold as the F64 linear layers' OpenBLAS guard).
constexpr int64_t kMinParallelWork = int64_t{1} << 24;

// An operand already in panel layout (A transposed, B not) is used in place
// rather than packed when the other side is at most this many rows or columns:
// each packed value would serve only a few tiles, and packing cost as much as
// the multiply (thin layers). Larger products pack, for cache and TLB locality.
constexpr int64_t kDirectMax = 64;

// Per-thread, grow-only, 64-byte aligned packing buffers.
struct PackBuffer {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data;
  int64_t size = 0;

  float* get(int64_t count) {
    if (count > size) {
      const std::size_t bytes = (static_cast<std::size_t>(count) * sizeof(float) + 63) / 64 * 64;
      data.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
      if (!data) throw std::bad_alloc();
      size = count;
    }
    return data.get();
  }
};

float* a_buffer(int64_t count) {
  thread_local PackBuffer b;
  return b.get(count);
}
float* b_buffer(int64_t count) {
  thread_local PackBuffer b;
  return b.get(count);
}

// Packs rows [0, rows) x columns [0, kc) of op(X) into panels of R rows:
// dst[(r / R) * kc * R + p * R + r % R], zero rows past `rows`. op(X)[r][p] is
// x[r * ld + p] (row-major) or x[p * ld + r] (transposed).
template <int R>
void pack_panels(const float* x, int64_t ld, bool trans, int64_t rows, int64_t kc, float* dst) {
  for (int64_t r0 = 0; r0 < rows; r0 += R, dst += kc * R) {
    const int64_t rb = std::min<int64_t>(R, rows - r0);
    if (trans) {
      // The R values of one p are contiguous in x.
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = x + p * ld + r0;
        float* d = dst + p * R;
        if (rb == R) {
          std::memcpy(d, src, R * sizeof(float));  // vector moves: src and d may not alias
        } else {
          for (int64_t i = 0; i < rb; ++i) d[i] = src[i];
          for (int64_t i = rb; i < R; ++i) d[i] = 0.0f;
        }
      }
    } else {
      int64_t i0 = 0;
#ifdef __SSE__
      // Four rows at a time by 4x4 transposes: the panel's stride-R writes
      // would otherwise go one float at a time.
      const int64_t kc4 = kc & ~int64_t{3};
      for (; i0 + 4 <= rb; i0 += 4) {
        const float* s0 = x + (r0 + i0) * ld;
        for (int64_t p = 0; p < kc4; p += 4) {
          __m128 q0 = _mm_loadu_ps(s0 + p), q1 = _mm_loadu_ps(s0 + ld + p),
                 q2 = _mm_loadu_ps(s0 + 2 * ld + p), q3 = _mm_loadu_ps(s0 + 3 * ld + p);
          _MM_TRANSPOSE4_PS(q0, q1, q2, q3);
          float* d = dst + p * R + i0;
          _mm_storeu_ps(d, q0);
          _mm_storeu_ps(d + R, q1);
          _mm_storeu_ps(d + 2 * R, q2);
          _mm_storeu_ps(d + 3 * R, q3);
        }
        for (int64_t i = i0; i < i0 + 4; ++i)
          for (int64_t p = kc4; p < kc; ++p) dst[p * R + i] = x[(r0 + i) * ld + p];
      }
#endif
      // The remaining rows one by one, each read contiguously.
      for (int64_t i = i0; i < rb; ++i) {
        const float* src = x + (r0 + i) * ld;
        for (int64_t p = 0; p < kc; ++p) dst[p * R + i] = src[p];
      }
      for (int64_t i = rb; i < R; ++i)
        for (int64_t p = 0; p < kc; ++p) dst[p * R + i] = 0.0f;
    }
  }
}

using PackFn = void (*)(const float*, int64_t, bool, int64_t, int64_t, float*);

PackFn packer(int r) {
  switch (r) {
    case 6:
      return pack_panels<6>;
    case 8:
      return pack_panels<8>;
    case 12:
      return pack_panels<12>;
    case 16:
      return pack_panels<16>;
    case 32:
      return pack_panels<32>;
    default:
      std::abort();  // every KernelSet's mr and nr is listed here
  }
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// C = beta * C for a product with nothing to sum (k == 0 or alpha == 0).
void scale(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f)
      std::fill(row, row + n, 0.0f);
    else if (beta != 1.0f)
      for (int64_t j = 0; j < n; ++j) row[j] *= beta;
  }
}

void run(const KernelSet& set, int team, bool trans_a, bool trans_b, int64_t m, int64_t n,
         int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
         float beta, float* c, int64_t ldc) {
  // Thin products take the narrow block, so the tiles are not mostly padding.
  const Block& blk = n <= set.narrow.nr ? set.narrow : set.wide;
  const struct {
    int mr, nr;
    int64_t mc, kc, nc;
    MacroKernel macro;
  } ks{blk.mr, blk.nr, blk.mc, set.kc, set.nc, blk.macro};
  const PackFn pack_a = packer(ks.mr), pack_b = packer(ks.nr);
  // Equal kc slices, so that a K just above kc does not leave a thin remainder.
  const int64_t slices = ceil_div(k, ks.kc), kc_max = ceil_div(k, slices);
  const int64_t nc_max = std::min(ks.nc, ceil_div(n, ks.nr) * ks.nr);
  const int64_t mblocks_all = ceil_div(m, ks.mc);
  float* bp = b_buffer(kc_max * nc_max);
  for (int64_t jc = 0; jc < n; jc += ks.nc) {
    const int64_t nc = std::min(ks.nc, n - jc);
    const int64_t panels = ceil_div(nc, ks.nr);
    for (int64_t s = 0; s < slices; ++s) {
      const int64_t pc = s * k / slices, kc = (s + 1) * k / slices - pc;
      const float beta_s = s == 0 ? beta : 1.0f;
      const float* bsrc = trans_b ? b + jc * ldb + pc : b + pc * ldb + jc;
      // B in place (see Operand) when few rows of A reuse each packed value.
      const bool direct_b = !trans_b && nc % ks.nr == 0 && m <= kDirectMax;
      const gemm_detail::Operand bop = direct_b ? gemm_detail::Operand{bsrc, ks.nr, ldb}
                                                : gemm_detail::Operand{bp, kc * ks.nr, ks.nr};
      // Column splits of each row block when there are fewer blocks than threads.
      const int64_t splits =
          std::min<int64_t>(panels, std::max<int64_t>(1, ceil_div(team, mblocks_all)));
      const int64_t items = mblocks_all * splits;
      const int t = static_cast<int>(std::min<int64_t>(team, items));
      auto work = [&](int64_t item) {
        const int64_t ib = item / splits, js = item % splits;
        const int64_t ic = ib * ks.mc, mc = std::min(ks.mc, m - ic);
        const int64_t p0 = js * panels / splits, p1 = (js + 1) * panels / splits;
        if (p0 == p1) return;
        const float* asrc = trans_a ? a + pc * lda + ic : a + ic * lda + pc;
        gemm_detail::Operand aop{asrc, ks.mr, lda};
        if (!(trans_a && mc % ks.mr == 0 && n <= kDirectMax)) {
          float* ap = a_buffer(ceil_div(mc, ks.mr) * ks.mr * kc);
          pack_a(asrc, lda, trans_a, mc, kc, ap);
          aop = {ap, kc * ks.mr, ks.mr};
        }
        const int64_t j0 = p0 * ks.nr, j1 = std::min(nc, p1 * ks.nr);
        gemm_detail::Operand bj = bop;
        bj.data += p0 * bop.panel;
        ks.macro(mc, j1 - j0, kc, aop, bj, c + ic * ldc + jc + j0, ldc, alpha, beta_s);
      };
      if (t <= 1) {
        if (!direct_b) pack_b(bsrc, ldb, !trans_b, nc, kc, bp);
        for (int64_t item = 0; item < items; ++item) work(item);
      } else {
#pragma omp parallel num_threads(t)
        {
          // B's panels are packed by all threads, then shared.
#pragma omp for schedule(static)
          for (int64_t p = 0; p < (direct_b ? 0 : panels); ++p) {
            const int64_t j = p * ks.nr, cols = std::min<int64_t>(ks.nr, nc - j);
            pack_b(trans_b ? bsrc + j * ldb : bsrc + j, ldb, !trans_b, cols, kc,
                   bp + p * kc * ks.nr);
          }
#pragma omp for schedule(dynamic, 1)
          for (int64_t item = 0; item < items; ++item) work(item);
        }
      }
    }
  }
}

}  // namespace

void sgemm_on(Isa isa, int threads, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
              float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
              float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) return scale(m, n, beta, c, ldc);
  const KernelSet& ks = kernels_of(isa);
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("CPU kernel set ") + isa_name(isa) +
                                " is not supported on this CPU");
  int team = threads > 0 ? threads : cpu::threads();
  if (omp_in_parallel() || m * n * k < kMinParallelWork) team = 1;
  run(ks, team, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int64_t packed_b_columns() {
  return kernels_of(active_isa()).wide.nr;
}

int64_t packed_a_size(int64_t m, int64_t k) {
  const int mr = kernels_of(active_isa()).wide.mr;
  return ceil_div(m, mr) * mr * k;
}

void pack_small_a(bool trans_a, int64_t m, int64_t k, const float* a, int64_t lda, float* packed) {
  if (m > kPackedMaxRows || k > kPackedMaxDepth)
    throw std::invalid_argument("pack_small_a: A is too large to pack whole");
  packer(kernels_of(active_isa()).wide.mr)(a, lda, trans_a, m, k, packed);
}

void sgemm_packed_a(int64_t m, int64_t n, int64_t k, const float* packed, const float* b,
                    int64_t ldb, float* c, int64_t ldc) {
  const KernelSet& ks = kernels_of(active_isa());
  const Block& blk = ks.wide;
  if (m > kPackedMaxRows || k > kPackedMaxDepth || n % blk.nr != 0)
    throw std::invalid_argument("sgemm_packed_a: A too large or n not whole register blocks");
  if (m <= 0 || n <= 0) return;
  if (k <= 0) return scale(m, n, 0.0f, c, ldc);
  // One row block (m <= mc) and one depth slice (k <= kc): the macro-kernel
  // runs over column blocks of B, read in place.
  for (int64_t jc = 0; jc < n; jc += ks.nc) {
    const int64_t nc = std::min(ks.nc, n - jc);
    blk.macro(m, nc, k, gemm_detail::Operand{packed, k * blk.mr, blk.mr},
              gemm_detail::Operand{b + jc, blk.nr, ldb}, c + jc, ldc, 1.0f, 0.0f);
  }
}

int dot_lanes() {
  return kernels_of(active_isa()).dot_lanes;
}

void sdot_accumulate(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                     int64_t ldb, float* acc) {
  const KernelSet& ks = kernels_of(active_isa());
  if (k % ks.dot_lanes != 0)
    throw std::invalid_argument("sdot_accumulate: k must be a multiple of the dot lanes");
  if (m > 0 && n > 0 && k > 0) ks.dot(m, n, k, a, lda, b, ldb, acc);
}

void sum_lanes(const float* acc, int64_t count, float* out) {
  const int lanes = dot_lanes();
  for (int64_t e = 0; e < count; ++e) {
    float s = acc[e * lanes];
    for (int l = 1; l < lanes; ++l) s += acc[e * lanes + l];
    out[e] = s;
  }
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  sgemm_on(active_isa(), 0, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace st::cpu
