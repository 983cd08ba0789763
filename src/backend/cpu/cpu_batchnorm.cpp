// Batch normalization over (N, H, W) per channel, PyTorch's conventions. Sums
// are accumulated in double for either element type; channels are independent,
// so they are split across threads (deterministic, no cross-thread reduction).
#include <cmath>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_runtime.h"

namespace st::cpu {
namespace {

// Calls f(ptr, len) for each image's plane of channel c.
template <typename T, typename F>
void for_channel(T* base, const ChannelDims& d, int64_t c, F&& f) {
  for (int64_t n = 0; n < d.n; ++n) f(base + (n * d.c + c) * d.plane, d.plane);
}

}  // namespace

template <typename T>
void batchnorm_forward_train(const T* x, const T* gamma, const T* beta, T* running_mean,
                             T* running_var, double momentum, double eps, const ChannelDims& d,
                             T* y, T* save_mean, T* save_invstd) {
  const double count = static_cast<double>(d.n * d.plane);
#pragma omp parallel for schedule(static) num_threads(threads_for(d.c, d.n* d.plane))
  for (int64_t c = 0; c < d.c; ++c) {
    double sum = 0;
    for_channel(x, d, c, [&](const T* p, int64_t len) {
      for (int64_t i = 0; i < len; ++i) sum += p[i];
    });
    const double mean = sum / count;
    // Two passes: the centred sum of squares does not cancel catastrophically.
    double sq = 0;
    for_channel(x, d, c, [&](const T* p, int64_t len) {
      for (int64_t i = 0; i < len; ++i) sq += (p[i] - mean) * (p[i] - mean);
    });
    const double var = sq / count;
    const double invstd = 1.0 / std::sqrt(var + eps);
    const double scale = gamma[c] * invstd;
    const double shift = beta[c] - mean * scale;
    for (int64_t n = 0; n < d.n; ++n) {
      const T* xp = x + (n * d.c + c) * d.plane;
      T* yp = y + (n * d.c + c) * d.plane;
      for (int64_t i = 0; i < d.plane; ++i) yp[i] = static_cast<T>(xp[i] * scale + shift);
    }
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    const double unbiased = var * count / (count - 1);
    running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * mean);
    running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * unbiased);
  }
}

template <typename T>
void batchnorm_forward_eval(const T* x, const T* gamma, const T* beta, const T* running_mean,
                            const T* running_var, double eps, const ChannelDims& d, T* y) {
#pragma omp parallel for schedule(static) num_threads(threads_for(d.c, d.n* d.plane))
  for (int64_t c = 0; c < d.c; ++c) {
    const double scale = gamma[c] / std::sqrt(static_cast<double>(running_var[c]) + eps);
    const double shift = beta[c] - running_mean[c] * scale;
    for (int64_t n = 0; n < d.n; ++n) {
      const T* xp = x + (n * d.c + c) * d.plane;
      T* yp = y + (n * d.c + c) * d.plane;
      for (int64_t i = 0; i < d.plane; ++i) yp[i] = static_cast<T>(xp[i] * scale + shift);
    }
  }
}

// With xhat = (x - mean) * invstd and m elements per channel:
//   dbeta = sum dy, dgamma = sum dy * xhat,
//   dx = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma).
template <typename T>
void batchnorm_backward(const T* x, const T* gamma, const T* save_mean, const T* save_invstd,
                        const T* dy, const ChannelDims& d, T* dx, T* dgamma, T* dbeta) {
  const double count = static_cast<double>(d.n * d.plane);
#pragma omp parallel for schedule(static) num_threads(threads_for(d.c, d.n* d.plane))
  for (int64_t c = 0; c < d.c; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t n = 0; n < d.n; ++n) {
      const T* xp = x + (n * d.c + c) * d.plane;
      const T* dyp = dy + (n * d.c + c) * d.plane;
      for (int64_t i = 0; i < d.plane; ++i) {
        sum_dy += dyp[i];
        sum_dy_xhat += dyp[i] * (xp[i] - mean);
      }
    }
    sum_dy_xhat *= invstd;
    dbeta[c] = static_cast<T>(sum_dy);
    dgamma[c] = static_cast<T>(sum_dy_xhat);
    const double k = gamma[c] * invstd / count;
    for (int64_t n = 0; n < d.n; ++n) {
      const T* xp = x + (n * d.c + c) * d.plane;
      const T* dyp = dy + (n * d.c + c) * d.plane;
      T* dxp = dx + (n * d.c + c) * d.plane;
      for (int64_t i = 0; i < d.plane; ++i) {
        const double xhat = (xp[i] - mean) * invstd;
        dxp[i] = static_cast<T>(k * (count * dyp[i] - sum_dy - xhat * sum_dy_xhat));
      }
    }
  }
}

#define ST_INSTANTIATE_BN(T)                                                                     \
  template void batchnorm_forward_train<T>(const T*, const T*, const T*, T*, T*, double, double, \
                                           const ChannelDims&, T*, T*, T*);                      \
  template void batchnorm_forward_eval<T>(const T*, const T*, const T*, const T*, const T*,      \
                                          double, const ChannelDims&, T*);                       \
  template void batchnorm_backward<T>(const T*, const T*, const T*, const T*, const T*,          \
                                      const ChannelDims&, T*, T*, T*);
ST_INSTANTIATE_BN(float)
ST_INSTANTIATE_BN(double)
#undef ST_INSTANTIATE_BN

}  // namespace st::cpu
