// Element-wise ops and the per-channel statistics.
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_runtime.h"
#include "tensor/random.h"

namespace st::cpu {

template <typename T>
void relu_forward(const T* x, int64_t n, T* y) {
#pragma omp parallel for simd schedule(static) num_threads(threads_for(n))
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

// dy is read unconditionally so the select compiles to a blend: the branchy
// form mispredicted on every other element (half the units are active).
template <typename T>
void relu_backward(const T* y, const T* dy, int64_t n, T* dx) {
#pragma omp parallel for simd schedule(static) num_threads(threads_for(n))
  for (int64_t i = 0; i < n; ++i) {
    const T g = dy[i];
    dx[i] = y[i] > T(0) ? g : T(0);
  }
}

template <typename T>
void add(const T* a, const T* b, int64_t n, T* y) {
#pragma omp parallel for schedule(static) num_threads(threads_for(n))
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

template <typename T>
void add_inplace(T* y, const T* x, int64_t n) {
#pragma omp parallel for schedule(static) num_threads(threads_for(n))
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

template <typename T>
void multiply(const T* a, const T* b, int64_t n, T* y) {
#pragma omp parallel for schedule(static) num_threads(threads_for(n))
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

// Keeps element i when uniform01(seed, i) >= p, the comparison made in float so
// that every backend draws the identical mask.
template <typename T>
void dropout_forward(const T* x, int64_t n, double p, uint64_t seed, T* mask, T* y) {
  const float threshold = static_cast<float>(p);
  const T keep = static_cast<T>(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static) num_threads(threads_for(n))
  for (int64_t i = 0; i < n; ++i) {
    mask[i] = uniform01(seed, static_cast<uint64_t>(i)) >= threshold ? keep : T(0);
    y[i] = x[i] * mask[i];
  }
}

template <typename T>
void channel_absmax(const T* h, int64_t planes, int64_t plane, float* out) {
#pragma omp parallel for schedule(static) num_threads(threads_for(planes, plane))
  for (int64_t pl = 0; pl < planes; ++pl) {
    T m = 0;
    for (int64_t i = 0; i < plane; ++i) m = std::max(m, std::abs(h[pl * plane + i]));
    out[pl] = static_cast<float>(m);
  }
}

#define ST_INSTANTIATE_POINTWISE(T)                                              \
  template void relu_forward<T>(const T*, int64_t, T*);                          \
  template void relu_backward<T>(const T*, const T*, int64_t, T*);               \
  template void add<T>(const T*, const T*, int64_t, T*);                         \
  template void add_inplace<T>(T*, const T*, int64_t);                           \
  template void multiply<T>(const T*, const T*, int64_t, T*);                    \
  template void dropout_forward<T>(const T*, int64_t, double, uint64_t, T*, T*); \
  template void channel_absmax<T>(const T*, int64_t, int64_t, float*);
ST_INSTANTIATE_POINTWISE(float)
ST_INSTANTIATE_POINTWISE(double)
#undef ST_INSTANTIATE_POINTWISE

}  // namespace st::cpu
