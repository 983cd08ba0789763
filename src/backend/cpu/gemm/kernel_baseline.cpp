// Portable micro-kernel: a 6 x 8 tile of C in GCC/Clang vector-extension
// registers (two SSE2 registers per row on x86-64, NEON on Arm), multiply and
// add without FMA. Compiled with the project's default flags: it runs on every
// CPU the build targets.
#include "backend/cpu/gemm/dot_kernel.h"
#include "backend/cpu/gemm/gemm_kernels.h"
#include "backend/cpu/gemm/macro_kernel.h"

namespace st::cpu::gemm_detail {
namespace {

constexpr int kMr = 6, kNr = 8;

typedef float v4 __attribute__((vector_size(16)));
// The same for loads and stores at any float alignment.
typedef float v4u __attribute__((vector_size(16), aligned(4)));

inline v4 load(const float* p) {
  return *reinterpret_cast<const v4u*>(p);
}
inline void store(float* p, v4 v) {
  *reinterpret_cast<v4u*>(p) = v;
}

inline __attribute__((always_inline)) void micro(int64_t kc, const float* a, int64_t a_step,
                                                 const float* b, int64_t b_step, float* c,
                                                 int64_t ldc, int m, int n, float alpha,
                                                 float beta) {
  v4 acc[kMr][2];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) acc[i][0] = acc[i][1] = v4{0, 0, 0, 0};
  for (int64_t p = 0; p < kc; ++p, a += a_step, b += b_step) {
    const v4 b0 = load(b), b1 = load(b + 4);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      const v4 ai = v4{a[i], a[i], a[i], a[i]};
      acc[i][0] += ai * b0;
      acc[i][1] += ai * b1;
    }
  }
  if (n == kNr) {
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      if (i >= m) break;
      float* row = c + i * ldc;
      v4 r0 = alpha * acc[i][0], r1 = alpha * acc[i][1];
      if (beta != 0.0f) r0 += beta * load(row), r1 += beta * load(row + 4);
      store(row, r0);
      store(row + 4, r1);
    }
    return;
  }
  float tile[kMr][kNr];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) store(tile[i], acc[i][0]), store(tile[i] + 4, acc[i][1]);
  for (int i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    for (int j = 0; j < n; ++j) {
      const float r = alpha * tile[i][j];
      row[j] = beta != 0.0f ? r + beta * row[j] : r;
    }
  }
}

void macro(int64_t mc, int64_t nc, int64_t kc, Operand ap, Operand bp, float* c, int64_t ldc,
           float alpha, float beta) {
  macro_loop<kMr, kNr>(mc, nc, kc, ap, bp, c, ldc, alpha, beta, micro);
}

// Row dot products: 2 x 4 tiles of 4-lane vectors, multiply and add.
struct DotOps {
  using V = v4;
  static constexpr int kWidth = 4, kRm = 2, kRn = 4;
  static V load(const float* p) { return ::st::cpu::gemm_detail::load(p); }
  static void store(float* p, V v) { ::st::cpu::gemm_detail::store(p, v); }
  static V fma(V a, V b, V c) { return a * b + c; }
};

}  // namespace

// One register block: 8 columns are already narrow.
const KernelSet kBaselineKernels{"baseline", {kMr, kNr, 120, macro}, {kMr, kNr, 120, macro}, 256,
                                 2048,       DotOps::kWidth,         dot_accumulate<DotOps>};

}  // namespace st::cpu::gemm_detail
