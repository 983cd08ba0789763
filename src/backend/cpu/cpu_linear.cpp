// The fully connected layer (one GEMM per product, multi-threaded only when
// large) and the softmax cross-entropy head.
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_runtime.h"

namespace st::cpu {
namespace {

// Multiply-accumulates below which a linear layer's GEMM runs on one thread.
constexpr int64_t kBlasThreadsMinWork = int64_t{1} << 24;

}  // namespace

// The classifier's GEMMs are tiny (64 x 512 x 10 in BasicNet). In F64 they
// are above OpenBLAS's threading threshold: its worker thread would wake for
// microseconds of work and then spin, competing with the OpenMP threads. (The
// F32 GEMM stays on one thread below its own, larger threshold.)
template <typename T>
void linear_forward(const T* x, const T* w, const T* bias, int64_t n, int64_t in, int64_t out,
                    T* y) {
  SingleThreadedBlas guard(n * in * out < kBlasThreadsMinWork);
  gemm(false, true, n, out, in, T(1), x, in, w, in, T(0), y, out);
  if (bias)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t o = 0; o < out; ++o) y[r * out + o] += bias[o];
}

template <typename T>
void linear_backward(const T* x, const T* w, const T* dy, int64_t n, int64_t in, int64_t out, T* dx,
                     T* dw, T* db) {
  SingleThreadedBlas guard(n * in * out < kBlasThreadsMinWork);
  if (dx) gemm(false, false, n, in, out, T(1), dy, out, w, in, T(0), dx, in);  // dY W
  gemm(true, false, out, in, n, T(1), dy, out, x, in, T(0), dw, in);           // dY^T X
  if (db) {
    for (int64_t o = 0; o < out; ++o) {
      double sum = 0;
      for (int64_t r = 0; r < n; ++r) sum += dy[r * out + o];
      db[o] = static_cast<T>(sum);
    }
  }
}

// Per row: loss = logsumexp(z) - z[label], computed around the row maximum so
// exp never overflows.
template <typename T>
double softmax_xent_forward(const T* logits, const int32_t* labels, int64_t n, int64_t k,
                            T* probs) {
  double total = 0;
  for (int64_t r = 0; r < n; ++r) {
    const T* z = logits + r * k;
    const double zmax = *std::max_element(z, z + k);
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += std::exp(z[j] - zmax);
    for (int64_t j = 0; j < k; ++j) probs[r * k + j] = static_cast<T>(std::exp(z[j] - zmax) / sum);
    total += zmax + std::log(sum) - z[labels[r]];
  }
  return n ? total / static_cast<double>(n) : 0.0;
}

template <typename T>
void softmax_xent_backward(const T* probs, const int32_t* labels, int64_t n, int64_t k,
                           T* dlogits) {
  const double inv_n = 1.0 / static_cast<double>(n);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j)
      dlogits[r * k + j] =
          static_cast<T>((probs[r * k + j] - (j == labels[r] ? 1.0 : 0.0)) * inv_n);
}

template <typename T>
int64_t count_correct(const T* logits, const int32_t* labels, int64_t n, int64_t k) {
  int64_t correct = 0;
  for (int64_t r = 0; r < n; ++r) {
    const T* z = logits + r * k;
    if (std::max_element(z, z + k) - z == labels[r]) ++correct;
  }
  return correct;
}

#define ST_INSTANTIATE_LINEAR(T)                                                                \
  template void linear_forward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, T*); \
  template void linear_backward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, T*, \
                                   T*, T*);                                                     \
  template double softmax_xent_forward<T>(const T*, const int32_t*, int64_t, int64_t, T*);      \
  template void softmax_xent_backward<T>(const T*, const int32_t*, int64_t, int64_t, T*);       \
  template int64_t count_correct<T>(const T*, const int32_t*, int64_t, int64_t);
ST_INSTANTIATE_LINEAR(float)
ST_INSTANTIATE_LINEAR(double)
#undef ST_INSTANTIATE_LINEAR

}  // namespace st::cpu
