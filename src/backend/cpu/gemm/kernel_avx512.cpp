// AVX-512F micro-kernels: an 8 x 32 tile of C in 16 zmm accumulators (one
// broadcast of A per row and two loads of B per step of k), and a 12 x 16
// tile in 12 for products at most 16 columns wide (thin layers' channels). Compiled with
// -mavx512f -mfma (src/CMakeLists.txt); only called when the CPU and OS
// support AVX-512F.
#include "backend/cpu/gemm/gemm_kernels.h"

#if defined(__AVX512F__)
#include <immintrin.h>

#include "backend/cpu/gemm/dot_kernel.h"
#include "backend/cpu/gemm/macro_kernel.h"

namespace st::cpu::gemm_detail {
namespace {

__mmask16 lane_mask(int n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

template <int kMr, int kNv>
inline __attribute__((always_inline)) void micro(int64_t kc, const float* a, int64_t a_step,
                                                 const float* b, int64_t b_step, float* c,
                                                 int64_t ldc, int m, int n, float alpha,
                                                 float beta) {
  __m512 acc[kMr][kNv];
#pragma GCC unroll 12
  for (int i = 0; i < kMr; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < kNv; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p, a += a_step, b += b_step) {
    __m512 bv[kNv];
#pragma GCC unroll 2
    for (int v = 0; v < kNv; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 12
    for (int i = 0; i < kMr; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 2
      for (int v = 0; v < kNv; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  __mmask16 mask[kNv];
#pragma GCC unroll 2
  for (int v = 0; v < kNv; ++v) mask[v] = lane_mask(n - 16 * v);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
  for (int i = 0; i < kMr; ++i) {
    if (i >= m) break;
    float* row = c + i * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < kNv; ++v) {
      __m512 r = _mm512_mul_ps(va, acc[i][v]);
      if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[v], row + 16 * v), r);
      _mm512_mask_storeu_ps(row + 16 * v, mask[v], r);
    }
  }
}

void macro_wide(int64_t mc, int64_t nc, int64_t kc, Operand ap, Operand bp, float* c, int64_t ldc,
                float alpha, float beta) {
  macro_loop<8, 32>(mc, nc, kc, ap, bp, c, ldc, alpha, beta, micro<8, 2>);
}

void macro_narrow(int64_t mc, int64_t nc, int64_t kc, Operand ap, Operand bp, float* c, int64_t ldc,
                  float alpha, float beta) {
  macro_loop<12, 16>(mc, nc, kc, ap, bp, c, ldc, alpha, beta, micro<12, 1>);
}

// Row dot products: 3 x 4 tiles, 12 accumulators, 3 + 4 loads per 12 FMAs.
struct DotOps {
  using V = __m512;
  static constexpr int kWidth = 16, kRm = 3, kRn = 4;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
};

}  // namespace

const KernelSet kAvx512fKernels{
    "avx512f", {8, 32, 128, macro_wide}, {12, 16, 120, macro_narrow}, 256,
    2048,      DotOps::kWidth,           dot_accumulate<DotOps>};

}  // namespace st::cpu::gemm_detail

#else

namespace st::cpu::gemm_detail {
const KernelSet kAvx512fKernels{
    "avx512f", {8, 32, 128, nullptr}, {12, 16, 120, nullptr}, 256, 2048, 16, nullptr};
}

#endif
