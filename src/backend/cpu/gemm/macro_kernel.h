// The two inner loops around a micro-kernel, included by each ISA translation
// unit so that the micro-kernel inlines into its own target code. Everything
// here has internal linkage: no function compiled with one unit's target
// flags can be picked by the linker for another unit.
#pragma once

#include <cstdint>

namespace st::cpu::gemm_detail {
namespace {

// Micro(kc, a, a_step, b, b_step, c, ldc, m, n, alpha, beta) computes one
// mr x nr tile, of which the top-left m x n is stored.
template <int MR, int NR, typename Micro>
inline void macro_loop(int64_t mc, int64_t nc, int64_t kc, Operand a, Operand b, float* c,
                       int64_t ldc, float alpha, float beta, Micro micro) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int n = nc - jr < NR ? static_cast<int>(nc - jr) : NR;
    const float* bj = b.data + (jr / NR) * b.panel;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const int m = mc - ir < MR ? static_cast<int>(mc - ir) : MR;
      micro(kc, a.data + (ir / MR) * a.panel, a.step, bj, b.step, c + ir * ldc + jr, ldc, m, n,
            alpha, beta);
    }
  }
}

}  // namespace
}  // namespace st::cpu::gemm_detail
