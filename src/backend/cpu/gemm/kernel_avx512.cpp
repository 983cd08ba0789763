// AVX-512F micro-kernel: an 8 x 32 tile of C in 16 zmm accumulators, one
// broadcast of A per row and two loads of B per step of k. Compiled with
// -mavx512f -mfma (src/CMakeLists.txt); only called when the CPU and OS
// support AVX-512F.
#include "backend/cpu/gemm/gemm_kernels.h"

#if defined(__AVX512F__)
#include <immintrin.h>

#include "backend/cpu/gemm/macro_kernel.h"

namespace st::cpu::gemm_detail {
namespace {

constexpr int kMr = 8, kNr = 32;

__mmask16 lane_mask(int n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

inline __attribute__((always_inline)) void micro(int64_t kc, const float* a, const float* b,
                                                 float* c, int64_t ldc, int m, int n, float alpha,
                                                 float beta) {
  __m512 acc[kMr][2];
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p, a += kMr, b += kNr) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  const __mmask16 m0 = lane_mask(n), m1 = lane_mask(n - 16);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) {
    if (i >= m) break;
    float* row = c + i * ldc;
    __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
    if (beta != 0.0f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), r1);
    }
    _mm512_mask_storeu_ps(row, m0, r0);
    _mm512_mask_storeu_ps(row + 16, m1, r1);
  }
}

void macro(int64_t mc, int64_t nc, int64_t kc, const float* ap, const float* bp, float* c,
           int64_t ldc, float alpha, float beta) {
  macro_loop<kMr, kNr>(mc, nc, kc, ap, bp, c, ldc, alpha, beta, micro);
}

}  // namespace

const KernelSet kAvx512fKernels{"avx512f", kMr, kNr, 128, 256, 2048, macro};

}  // namespace st::cpu::gemm_detail

#else

namespace st::cpu::gemm_detail {
const KernelSet kAvx512fKernels{"avx512f", 8, 32, 128, 256, 2048, nullptr};
}

#endif
