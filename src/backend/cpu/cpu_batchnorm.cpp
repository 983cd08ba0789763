// Batch normalization over (N, H, W) per channel, PyTorch's conventions. Sums
// are accumulated in double for either element type; channels are independent,
// so they are split across threads (deterministic, no cross-thread reduction).
// Each pass optionally folds in the ReLU that follows (kRelu): the fused forward
// writes relu(bn(x)) without storing bn(x), and the fused backward masks dy by
// the ReLU's output inside its own passes. Both compute the same float
// expressions as BN then ReLU, so fused and separate results are bitwise equal.
#include <omp.h>

#include <cmath>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_runtime.h"

namespace st::cpu {
namespace {

// The channels [lo, hi) of the calling thread in its team.
struct ChannelRange {
  int64_t lo, hi;
};
ChannelRange this_threads_channels(int64_t channels) {
  const int64_t t = omp_get_thread_num(), team = omp_get_num_threads();
  return {channels * t / team, channels * (t + 1) / team};
}

// Calls f(c, offset) for the plane of each channel in r of each image, in
// memory order: the passes stream through the tensor, which the hardware
// prefetcher follows. (Channel-major order, plane by plane with the images'
// planes a whole image apart, missed the cache on every plane.) Per channel,
// the planes still come in image order, so the sums are the same.
template <typename F>
void for_planes(const ChannelDims& d, ChannelRange r, F&& f) {
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = r.lo; c < r.hi; ++c) f(c, (n * d.c + c) * d.plane);
}

// The plane loops below are `omp simd` reductions: the pragma lets the
// compiler split each double sum into vector lanes (a reordering plain C++
// forbids), which makes them several times faster than one serial chain.
template <typename T>
double plane_sum(const T* p, int64_t len) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < len; ++i) s += static_cast<double>(p[i]);
  return s;
}

template <typename T>
double plane_centred_squares(const T* p, int64_t len, double mean) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < len; ++i) {
    const double v = static_cast<double>(p[i]) - mean;
    s += v * v;
  }
  return s;
}

struct PlaneSums {
  double dy = 0, dy_xc = 0;  // sum dy, sum dy * (x - mean)
};

// The gradient reaching BN, g, is dy itself or, with the fused ReLU, dy where
// the ReLU's output y is positive. dy is read unconditionally so the select
// compiles to a blend; the loops spell it out (a helper taking the index kept
// GCC from vectorizing them).
template <bool kRelu, typename T>
PlaneSums plane_grad_sums(const T* x, const T* y, const T* dy, int64_t len, double mean) {
  double s = 0, sx = 0;
#pragma omp simd reduction(+ : s, sx)
  for (int64_t i = 0; i < len; ++i) {
    T gt = dy[i];
    if constexpr (kRelu) gt = y[i] > T(0) ? gt : T(0);
    const double g = static_cast<double>(gt);
    s += g;
    sx += g * (static_cast<double>(x[i]) - mean);
  }
  return {s, sx};
}

// y = (x - mean) * scale + shift in T arithmetic (float, as PyTorch's CPU
// kernel); centring first keeps a large mean from cancelling in float.
// With kRelu, y = max(that, 0).
template <bool kRelu, typename T>
void normalize(const T* x, int64_t len, double mean, double scale, double shift, T* y) {
  const T m = static_cast<T>(mean), s = static_cast<T>(scale), t = static_cast<T>(shift);
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    const T v = (x[i] - m) * s + t;
    if constexpr (kRelu)
      y[i] = v > T(0) ? v : T(0);
    else
      y[i] = v;
  }
}

// dx = a * g + b * (x - mean) + c, in T arithmetic, g the gradient reaching BN.
template <bool kRelu, typename T>
void grad_combine(const T* y, const T* dy, const T* x, int64_t len, double mean, double a, double b,
                  double c, T* dx) {
  const T m = static_cast<T>(mean), ta = static_cast<T>(a), tb = static_cast<T>(b),
          tc = static_cast<T>(c);
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    T g = dy[i];
    if constexpr (kRelu) g = y[i] > T(0) ? g : T(0);
    dx[i] = ta * g + tb * (x[i] - m) + tc;
  }
}

}  // namespace

template <bool kRelu, typename T>
void batchnorm_forward_train(const T* x, const T* gamma, const T* beta, T* running_mean,
                             T* running_var, double momentum, double eps, const ChannelDims& d,
                             T* y, T* save_mean, T* save_invstd) {
  const double count = static_cast<double>(d.n * d.plane);
  std::vector<double> sum(d.c, 0.0), sq(d.c, 0.0);
#pragma omp parallel num_threads(threads_for(d.c, d.n* d.plane))
  {
    const ChannelRange r = this_threads_channels(d.c);
    for_planes(d, r, [&](int64_t c, int64_t at) { sum[c] += plane_sum(x + at, d.plane); });
    for (int64_t c = r.lo; c < r.hi; ++c) sum[c] /= count;  // now the mean
    // Two passes: the centred sum of squares does not cancel catastrophically.
    for_planes(d, r, [&](int64_t c, int64_t at) {
      sq[c] += plane_centred_squares(x + at, d.plane, sum[c]);
    });
    for (int64_t c = r.lo; c < r.hi; ++c) {
      const double mean = sum[c], var = sq[c] / count;
      const double invstd = 1.0 / std::sqrt(var + eps);
      sq[c] = gamma[c] * invstd;  // now the scale
      save_mean[c] = static_cast<T>(mean);
      save_invstd[c] = static_cast<T>(invstd);
      const double unbiased = var * count / (count - 1);
      running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * mean);
      running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * unbiased);
    }
    for_planes(d, r, [&](int64_t c, int64_t at) {
      normalize<kRelu>(x + at, d.plane, sum[c], sq[c], static_cast<double>(beta[c]), y + at);
    });
  }
}

template <bool kRelu, typename T>
void batchnorm_forward_eval(const T* x, const T* gamma, const T* beta, const T* running_mean,
                            const T* running_var, double eps, const ChannelDims& d, T* y) {
#pragma omp parallel for schedule(static) num_threads(threads_for(d.c, d.n* d.plane))
  for (int64_t c = 0; c < d.c; ++c) {
    const double scale = gamma[c] / std::sqrt(static_cast<double>(running_var[c]) + eps);
    for (int64_t n = 0; n < d.n; ++n) {
      const int64_t at = (n * d.c + c) * d.plane;
      normalize<kRelu>(x + at, d.plane, static_cast<double>(running_mean[c]), scale,
                       static_cast<double>(beta[c]), y + at);
    }
  }
}

// With xhat = (x - mean) * invstd and m elements per channel:
//   dbeta = sum dy, dgamma = sum dy * xhat,
//   dx = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma).
// y is the fused ReLU's output (unused without kRelu).
template <bool kRelu, typename T>
void batchnorm_backward(const T* x, const T* y, const T* gamma, const T* save_mean,
                        const T* save_invstd, const T* dy, const ChannelDims& d, T* dx, T* dgamma,
                        T* dbeta) {
  const double count = static_cast<double>(d.n * d.plane);
  std::vector<double> sum_dy(d.c, 0.0), sum_dy_xc(d.c, 0.0);
#pragma omp parallel num_threads(threads_for(d.c, d.n* d.plane))
  {
    const ChannelRange r = this_threads_channels(d.c);
    for_planes(d, r, [&](int64_t c, int64_t at) {
      const PlaneSums s =
          plane_grad_sums<kRelu>(x + at, kRelu ? y + at : nullptr, dy + at, d.plane, save_mean[c]);
      sum_dy[c] += s.dy;
      sum_dy_xc[c] += s.dy_xc;
    });
    for (int64_t c = r.lo; c < r.hi; ++c) {
      const double sum_dy_xhat = sum_dy_xc[c] * save_invstd[c];
      dbeta[c] = static_cast<T>(sum_dy[c]);
      dgamma[c] = static_cast<T>(sum_dy_xhat);
    }
    // dx = k * (count * dy - sum_dy - (x - mean) * invstd * sum_dy_xhat)
    //    = a * dy + b * (x - mean) + c0, the per-channel constants folded once.
    for_planes(d, r, [&](int64_t c, int64_t at) {
      const double invstd = save_invstd[c], k = gamma[c] * invstd / count;
      const double sum_dy_xhat = sum_dy_xc[c] * invstd;
      const double a = k * count, b = -k * invstd * sum_dy_xhat, c0 = -k * sum_dy[c];
      grad_combine<kRelu>(kRelu ? y + at : nullptr, dy + at, x + at, d.plane,
                          static_cast<double>(save_mean[c]), a, b, c0, dx + at);
    });
  }
}

#define ST_INSTANTIATE_BN(R, T)                                                                \
  template void batchnorm_forward_train<R, T>(const T*, const T*, const T*, T*, T*, double,    \
                                              double, const ChannelDims&, T*, T*, T*);         \
  template void batchnorm_forward_eval<R, T>(const T*, const T*, const T*, const T*, const T*, \
                                             double, const ChannelDims&, T*);                  \
  template void batchnorm_backward<R, T>(const T*, const T*, const T*, const T*, const T*,     \
                                         const T*, const ChannelDims&, T*, T*, T*);
ST_INSTANTIATE_BN(false, float)
ST_INSTANTIATE_BN(true, float)
ST_INSTANTIATE_BN(false, double)
ST_INSTANTIATE_BN(true, double)
#undef ST_INSTANTIATE_BN

}  // namespace st::cpu
