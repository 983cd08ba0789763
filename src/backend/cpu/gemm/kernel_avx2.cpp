// AVX2+FMA micro-kernels: a 6 x 16 tile of C in 12 ymm accumulators (one
// broadcast of A per row and two loads of B per step of k), and a 12 x 8 tile
// in 12 for products at most 8 columns wide. Compiled with
// -mavx2 -mfma (src/CMakeLists.txt); only called when the CPU and OS support both.
#include "backend/cpu/gemm/gemm_kernels.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "backend/cpu/gemm/dot_kernel.h"
#include "backend/cpu/gemm/macro_kernel.h"

namespace st::cpu::gemm_detail {
namespace {

// Lanes [0, n) set, for the masked loads and stores of a partial tile.
__m256i lane_mask(int n) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), iota);
}

// C = alpha * tile + beta * C for the top-left m x n of an mr x nr tile. Out
// of line, so that its constants do not take registers from the
// accumulators of the k loop (16 ymm registers: 12 accumulators, a broadcast).
template <int kMr, int kNv>
__attribute__((noinline)) void store_tile(const float* tile, float* c, int64_t ldc, int m, int n,
                                          float alpha, float beta) {
  constexpr int kNr = 8 * kNv;
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (n == kNr) {
    for (int i = 0; i < m; ++i) {
      float* row = c + i * ldc;
#pragma GCC unroll 2
      for (int v = 0; v < kNv; ++v) {
        __m256 r = _mm256_mul_ps(va, _mm256_load_ps(tile + i * kNr + 8 * v));
        if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8 * v), r);
        _mm256_storeu_ps(row + 8 * v, r);
      }
    }
    return;
  }
  __m256i mask[kNv];
#pragma GCC unroll 2
  for (int v = 0; v < kNv; ++v) mask[v] = lane_mask(n - 8 * v);
  for (int i = 0; i < m; ++i) {
    float* row = c + i * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < kNv; ++v) {
      __m256 r = _mm256_mul_ps(va, _mm256_load_ps(tile + i * kNr + 8 * v));
      if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row + 8 * v, mask[v]), r);
      _mm256_maskstore_ps(row + 8 * v, mask[v], r);
    }
  }
}

template <int kMr, int kNv>
inline __attribute__((always_inline)) void micro(int64_t kc, const float* a, int64_t a_step,
                                                 const float* b, int64_t b_step, float* c,
                                                 int64_t ldc, int m, int n, float alpha,
                                                 float beta) {
  constexpr int kNr = 8 * kNv;
  __m256 acc[kMr][kNv];
#pragma GCC unroll 12
  for (int i = 0; i < kMr; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < kNv; ++v) acc[i][v] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p, a += a_step, b += b_step) {
    __m256 bv[kNv];
#pragma GCC unroll 2
    for (int v = 0; v < kNv; ++v) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 12
    for (int i = 0; i < kMr; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 2
      for (int v = 0; v < kNv; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  if (m == kMr && n == kNr) {
    // A full tile is stored straight from the accumulators (the same
    // arithmetic as store_tile's): with the short sums of thin layers
    // (k = 8 to 24) the round trip through `tile` cost a fifth of the kernel.
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < kMr; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < kNv; ++v) {
        float* dst = c + i * ldc + 8 * v;
        __m256 r = _mm256_mul_ps(va, acc[i][v]);
        if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(dst), r);
        _mm256_storeu_ps(dst, r);
      }
    return;
  }
  alignas(32) float tile[kMr * kNr];
#pragma GCC unroll 12
  for (int i = 0; i < kMr; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < kNv; ++v) _mm256_store_ps(tile + i * kNr + 8 * v, acc[i][v]);
  store_tile<kMr, kNv>(tile, c, ldc, m, n, alpha, beta);
}

void macro_wide(int64_t mc, int64_t nc, int64_t kc, Operand ap, Operand bp, float* c, int64_t ldc,
                float alpha, float beta) {
  macro_loop<6, 16>(mc, nc, kc, ap, bp, c, ldc, alpha, beta, micro<6, 2>);
}

void macro_narrow(int64_t mc, int64_t nc, int64_t kc, Operand ap, Operand bp, float* c, int64_t ldc,
                  float alpha, float beta) {
  macro_loop<12, 8>(mc, nc, kc, ap, bp, c, ldc, alpha, beta, micro<12, 1>);
}

// Row dot products: 2 x 4 tiles, 8 accumulators, 2 + 4 loads per 8 FMAs.
struct DotOps {
  using V = __m256;
  static constexpr int kWidth = 8, kRm = 2, kRn = 4;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
};

}  // namespace

const KernelSet kAvx2Kernels{"avx2", {6, 16, 120, macro_wide}, {12, 8, 120, macro_narrow}, 256,
                             2048,   DotOps::kWidth,           dot_accumulate<DotOps>};

}  // namespace st::cpu::gemm_detail

#else

namespace st::cpu::gemm_detail {
const KernelSet kAvx2Kernels{"avx2", {6, 16, 120, nullptr}, {12, 8, 120, nullptr}, 256, 2048, 8,
                             nullptr};
}

#endif
