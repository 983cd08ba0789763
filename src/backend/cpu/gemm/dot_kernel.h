// Row dot products kept in vector lanes, included by each ISA translation
// unit with its own vector operations (as macro_kernel.h is), so that the
// loop compiles to that unit's target code. Everything here has internal
// linkage.
//
// acc[(i * n + j) * W + l] += sum over p = l (mod W) of a[i][p] * b[j][p]:
// each of the m x n dot products of A's and B's rows (both k-contiguous) is
// summed in W lanes, which the caller adds once at the end. This is the
// reduction of a thin layer's weight gradient over tile slots (k long, m and
// n small): no packing, and no per-call horizontal sums.
#pragma once

#include <cstdint>

namespace st::cpu::gemm_detail {
namespace {

// Ops: V, kWidth, kRm, kRn (register tile), zero(), load(const float*),
// fma(a, b, c) = a * b + c, store(float*, V).
template <class Ops, int Rm, int Rn>
inline __attribute__((always_inline)) void dot_tile(int64_t k, const float* a, int64_t lda,
                                                    const float* b, int64_t ldb, float* acc,
                                                    int64_t n) {
  using V = typename Ops::V;
  constexpr int W = Ops::kWidth;
  V s[Rm][Rn];
#pragma GCC unroll 4
  for (int i = 0; i < Rm; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < Rn; ++j) s[i][j] = Ops::load(acc + (i * n + j) * W);
  for (int64_t p = 0; p < k; p += W) {
    V av[Rm];
#pragma GCC unroll 4
    for (int i = 0; i < Rm; ++i) av[i] = Ops::load(a + i * lda + p);
#pragma GCC unroll 4
    for (int j = 0; j < Rn; ++j) {
      const V bv = Ops::load(b + j * ldb + p);
#pragma GCC unroll 4
      for (int i = 0; i < Rm; ++i) s[i][j] = Ops::fma(av[i], bv, s[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < Rm; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < Rn; ++j) Ops::store(acc + (i * n + j) * W, s[i][j]);
}

// The edge tiles, fewer than kRm rows or kRn columns, one size at a time.
template <class Ops, int Rm, int Rn>
void dot_edge(int rm, int rn, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
              float* acc, int64_t n) {
  if constexpr (Rm > 1) {
    if (rm < Rm) return dot_edge<Ops, Rm - 1, Rn>(rm, rn, k, a, lda, b, ldb, acc, n);
  }
  if constexpr (Rn > 1) {
    if (rn < Rn) return dot_edge<Ops, Rm, Rn - 1>(rm, rn, k, a, lda, b, ldb, acc, n);
  }
  dot_tile<Ops, Rm, Rn>(k, a, lda, b, ldb, acc, n);
}

template <class Ops>
void dot_accumulate(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float* acc) {
  constexpr int Rm = Ops::kRm, Rn = Ops::kRn, W = Ops::kWidth;
  for (int64_t i = 0; i < m; i += Rm)
    for (int64_t j = 0; j < n; j += Rn) {
      const float* ai = a + i * lda;
      const float* bj = b + j * ldb;
      float* cij = acc + (i * n + j) * W;
      if (i + Rm <= m && j + Rn <= n) {
        dot_tile<Ops, Rm, Rn>(k, ai, lda, bj, ldb, cij, n);
      } else {
        const int rm = static_cast<int>(m - i < Rm ? m - i : Rm);
        const int rn = static_cast<int>(n - j < Rn ? n - j : Rn);
        dot_edge<Ops, Rm, Rn>(rm, rn, k, ai, lda, bj, ldb, cij, n);
      }
    }
}

}  // namespace
}  // namespace st::cpu::gemm_detail
