// AVX2+FMA micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators, one
// broadcast of A per row and two loads of B per step of k. Compiled with
// -mavx2 -mfma (src/CMakeLists.txt); only called when the CPU and OS support both.
#include "backend/cpu/gemm/gemm_kernels.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "backend/cpu/gemm/macro_kernel.h"

namespace st::cpu::gemm_detail {
namespace {

constexpr int kMr = 6, kNr = 16;

// Lanes [0, n) set, for the masked loads and stores of a partial tile.
__m256i lane_mask(int n) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), iota);
}

inline __attribute__((always_inline)) void micro(int64_t kc, const float* a, const float* b,
                                                 float* c, int64_t ldc, int m, int n, float alpha,
                                                 float beta) {
  __m256 acc[kMr][2];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p, a += kMr, b += kNr) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (n == kNr) {
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      if (i >= m) break;
      float* row = c + i * ldc;
      __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
      if (beta != 0.0f) {
        r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), r0);
        r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), r1);
      }
      _mm256_storeu_ps(row, r0);
      _mm256_storeu_ps(row + 8, r1);
    }
    return;
  }
  const __m256i m0 = lane_mask(n), m1 = lane_mask(n - 8);
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) {
    if (i >= m) break;
    float* row = c + i * ldc;
    __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
    if (beta != 0.0f) {
      r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row, m0), r0);
      r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row + 8, m1), r1);
    }
    _mm256_maskstore_ps(row, m0, r0);
    _mm256_maskstore_ps(row + 8, m1, r1);
  }
}

void macro(int64_t mc, int64_t nc, int64_t kc, const float* ap, const float* bp, float* c,
           int64_t ldc, float alpha, float beta) {
  macro_loop<kMr, kNr>(mc, nc, kc, ap, bp, c, ldc, alpha, beta, micro);
}

}  // namespace

const KernelSet kAvx2Kernels{"avx2", kMr, kNr, 120, 256, 2048, macro};

}  // namespace st::cpu::gemm_detail

#else

namespace st::cpu::gemm_detail {
const KernelSet kAvx2Kernels{"avx2", 6, 16, 120, 256, 2048, nullptr};
}

#endif
