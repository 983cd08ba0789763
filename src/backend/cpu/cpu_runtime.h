// Building blocks of the CPU kernels: typed GEMM (float on the engine's own
// kernels, double on OpenBLAS for the F64 reference path), the thread count, a
// guard against OpenBLAS threads inside OpenMP regions, and reusable scratch.
#pragma once

#include <cblas.h>

#include <cstdint>
#include <vector>

#include "backend/cpu/gemm/gemm.h"

namespace st::cpu {

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
// Float runs on the engine's kernels (gemm/gemm.h), whichever CPU OpenBLAS
// detects; double on OpenBLAS, which keeps the F64 reference independent of them.
// Empty products are skipped, and leading dimensions are kept >= 1 as BLAS demands.
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc) {
  sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                 const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
                 int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  lda = lda < 1 ? 1 : lda, ldb = ldb < 1 ? 1 : ldb;
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

// The configured thread count (see set_cpu_threads).
int threads();

// Threads for a parallel loop over `work` independent items of roughly `cost`
// flops each: one thread when the loop is too small to amortize a fork.
int threads_for(int64_t work, int64_t cost = 1);

// OpenBLAS (pthread build) does not notice it is called from inside an OpenMP
// region, so each call would fork its own threads onto the busy cores. This
// keeps it single-threaded for the guard's lifetime when `active`.
class SingleThreadedBlas {
 public:
  explicit SingleThreadedBlas(bool active);
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_ = 0;
};

// Per-thread, grow-only scratch buffers so the hot path does not allocate.
// Each slot is an independent buffer; the pointer is valid until the same
// thread asks for the same slot and type again.
enum class Scratch {
  Col,
  ColGrad,
  WeightGrad,
  Gather,
  Weights,
  Rows,
  Plane,
  OutPlane,
  Bias,
  PlaneGrad,
  Tile,
  Lanes,
  Packed,
  TurnedWeights,  // the backward's kernels for its input gradient as a forward (cpu_conv.cpp)
  kCount
};

template <typename T>
T* scratch(Scratch slot, int64_t count) {
  thread_local std::vector<T> buffers[static_cast<int>(Scratch::kCount)];
  std::vector<T>& b = buffers[static_cast<int>(slot)];
  if (static_cast<int64_t>(b.size()) < count) b.resize(static_cast<std::size_t>(count));
  return b.data();
}

}  // namespace st::cpu
