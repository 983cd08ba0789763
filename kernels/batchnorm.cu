// Batch normalization over [N, C, *]: one block per channel. Channel statistics
// are block reductions in double, in a fixed order (bitwise reproducible); the
// variance takes a second pass over (x - mean)^2 rather than E[x^2] - mean^2.
// Each kernel optionally folds in the ReLU that follows (kRelu): the forward
// writes relu(bn(x)), the backward masks dy by that output as it reads it.
#include <initializer_list>
#include <string>
#include <utility>

#include "cuda_common.cuh"

namespace st::cuda {
namespace {

struct ChannelLayout {
  int64_t n = 0, channels = 0, inner = 0;  // x is [n, channels, inner]
  __device__ int64_t at(int64_t c, int64_t i) const {
    const int64_t ni = i / inner, p = i - ni * inner;
    return (ni * channels + c) * inner + p;
  }
};

ChannelLayout channel_layout(const Tensor& x) {
  ChannelLayout l;
  l.n = x.dim(0);
  l.channels = x.dim(1);
  l.inner = 1;
  for (int d = 2; d < x.ndim(); ++d) l.inner *= x.dim(d);
  return l;
}

__global__ void channel_sum_kernel(const float* x, ChannelLayout l, float* out) {
  __shared__ double scratch[32];
  const int64_t c = blockIdx.x, count = l.n * l.inner;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += x[l.at(c, i)];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[c] = static_cast<float>(s);
}

// With kRelu, max(v, 0); the same float select as relu_forward_kernel.
template <bool kRelu>
__device__ float bn_out(float v) {
  if constexpr (kRelu) return v > 0.0f ? v : 0.0f;
  return v;
}

// The gradient reaching BN: dy, or dy where the fused ReLU's output is positive.
template <bool kRelu>
__device__ float bn_grad(const float* y, const float* dy, int64_t at) {
  if constexpr (kRelu) return y[at] > 0.0f ? dy[at] : 0.0f;
  return dy[at];
}

template <bool kRelu>
__global__ void bn_train_kernel(const float* x, const float* gamma, const float* beta,
                                float* running_mean, float* running_var, double momentum,
                                double eps, float* y, float* save_mean, float* save_invstd,
                                ChannelLayout l) {
  __shared__ double scratch[32];
  const int64_t c = blockIdx.x, count = l.n * l.inner;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += x[l.at(c, i)];
  const double mean = block_sum(s, scratch) / static_cast<double>(count);
  double q = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const double d = x[l.at(c, i)] - mean;
    q += d * d;
  }
  const double var = block_sum(q, scratch) / static_cast<double>(count);
  const double invstd = 1.0 / sqrt(var + eps);

  const float mean_f = static_cast<float>(mean), invstd_f = static_cast<float>(invstd);
  const float g = gamma[c], b = beta[c];
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const int64_t at = l.at(c, i);
    y[at] = bn_out<kRelu>((x[at] - mean_f) * invstd_f * g + b);
  }
  if (threadIdx.x == 0) {
    save_mean[c] = mean_f;
    save_invstd[c] = invstd_f;
    const double unbiased = var * static_cast<double>(count) / static_cast<double>(count - 1);
    running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
    running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
  }
}

template <bool kRelu>
__global__ void bn_eval_kernel(const float* x, const float* gamma, const float* beta,
                               const float* running_mean, const float* running_var, float eps,
                               float* y, ChannelLayout l) {
  const int64_t total = l.n * l.channels * l.inner;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i / l.inner) % l.channels;
    const float invstd = 1.0f / sqrtf(running_var[c] + eps);
    y[i] = bn_out<kRelu>((x[i] - running_mean[c]) * invstd * gamma[c] + beta[c]);
  }
}

// dbeta = sum dy, dgamma = sum dy * xhat, dx = gamma * invstd * (dy - (dbeta + xhat * dgamma) / M).
// y: the fused ReLU's output (unused without kRelu).
template <bool kRelu>
__global__ void bn_backward_kernel(const float* x, const float* y, const float* gamma,
                                   const float* save_mean, const float* save_invstd,
                                   const float* dy, float* dx, float* dgamma, float* dbeta,
                                   ChannelLayout l) {
  __shared__ double scratch[32];
  const int64_t c = blockIdx.x, count = l.n * l.inner;
  const float mean = save_mean[c], invstd = save_invstd[c];
  double sdy = 0.0, sdyx = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const int64_t at = l.at(c, i);
    const float xhat = (x[at] - mean) * invstd;
    const float g = bn_grad<kRelu>(y, dy, at);
    sdy += g;
    sdyx += static_cast<double>(g) * xhat;
  }
  sdy = block_sum(sdy, scratch);
  sdyx = block_sum(sdyx, scratch);
  const float mean_dy = static_cast<float>(sdy / static_cast<double>(count));
  const float mean_dyx = static_cast<float>(sdyx / static_cast<double>(count));
  const float k = gamma[c] * invstd;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const int64_t at = l.at(c, i);
    const float xhat = (x[at] - mean) * invstd;
    dx[at] = k * (bn_grad<kRelu>(y, dy, at) - mean_dy - xhat * mean_dyx);
  }
  if (threadIdx.x == 0) {
    dbeta[c] = static_cast<float>(sdy);
    dgamma[c] = static_cast<float>(sdyx);
  }
}

}  // namespace

void channel_sum(Context& c, const float* x, int64_t n, int64_t channels, int64_t hw, float* out,
                 const char* op) {
  if (channels == 0) return;
  ChannelLayout l;
  l.n = n;
  l.channels = channels;
  l.inner = hw;
  channel_sum_kernel<<<static_cast<unsigned>(channels), kBlock, 0, c.stream>>>(x, l, out);
  check_launch(op, c.stream);
}

namespace {

template <bool kRelu>
void bn_forward_train(const char* op, Context& c, const Tensor& x, const Tensor& gamma,
                      const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                      double momentum, double eps, Tensor& y, Tensor& save_mean,
                      Tensor& save_invstd) {
  const ChannelLayout l = channel_layout(x);
  if (l.channels == 0) return;
  bn_train_kernel<kRelu><<<static_cast<unsigned>(l.channels), kBlock, 0, c.stream>>>(
      f32_in(x), f32_in(gamma), f32_in(beta), f32_out(running_mean), f32_out(running_var), momentum,
      eps, f32_out(y), f32_out(save_mean), f32_out(save_invstd), l);
  check_launch(op, c.stream);
}

template <bool kRelu>
void bn_forward_eval(const char* op, Context& c, const Tensor& x, const Tensor& gamma,
                     const Tensor& beta, const Tensor& running_mean, const Tensor& running_var,
                     double eps, Tensor& y) {
  const ChannelLayout l = channel_layout(x);
  if (x.numel() == 0) return;
  bn_eval_kernel<kRelu><<<grid_for(x.numel()), kBlock, 0, c.stream>>>(
      f32_in(x), f32_in(gamma), f32_in(beta), f32_in(running_mean), f32_in(running_var),
      static_cast<float>(eps), f32_out(y), l);
  check_launch(op, c.stream);
}

template <bool kRelu>
void bn_backward(const char* op, Context& c, const Tensor& x, const float* y, const Tensor& gamma,
                 const Tensor& save_mean, const Tensor& save_invstd, const Tensor& dy, Tensor& dx,
                 Tensor& dgamma, Tensor& dbeta) {
  const ChannelLayout l = channel_layout(x);
  if (l.channels == 0) return;
  bn_backward_kernel<kRelu><<<static_cast<unsigned>(l.channels), kBlock, 0, c.stream>>>(
      f32_in(x), y, f32_in(gamma), f32_in(save_mean), f32_in(save_invstd), f32_in(dy), f32_out(dx),
      f32_out(dgamma), f32_out(dbeta), l);
  check_launch(op, c.stream);
}

}  // namespace

void batchnorm_forward_train(Context& c, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             Tensor& running_mean, Tensor& running_var, double momentum, double eps,
                             Tensor& y, Tensor& save_mean, Tensor& save_invstd) {
  bn_forward_train<false>("cuda batchnorm_forward_train", c, x, gamma, beta, running_mean,
                          running_var, momentum, eps, y, save_mean, save_invstd);
}

void batchnorm_relu_forward_train(Context& c, const Tensor& x, const Tensor& gamma,
                                  const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                                  double momentum, double eps, Tensor& y, Tensor& save_mean,
                                  Tensor& save_invstd) {
  bn_forward_train<true>("cuda batchnorm_relu_forward_train", c, x, gamma, beta, running_mean,
                         running_var, momentum, eps, y, save_mean, save_invstd);
}

void batchnorm_forward_eval(Context& c, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var, double eps,
                            Tensor& y) {
  bn_forward_eval<false>("cuda batchnorm_forward_eval", c, x, gamma, beta, running_mean,
                         running_var, eps, y);
}

void batchnorm_relu_forward_eval(Context& c, const Tensor& x, const Tensor& gamma,
                                 const Tensor& beta, const Tensor& running_mean,
                                 const Tensor& running_var, double eps, Tensor& y) {
  bn_forward_eval<true>("cuda batchnorm_relu_forward_eval", c, x, gamma, beta, running_mean,
                        running_var, eps, y);
}

void batchnorm_backward(Context& c, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                        const Tensor& save_invstd, const Tensor& dy, Tensor& dx, Tensor& dgamma,
                        Tensor& dbeta) {
  bn_backward<false>("cuda batchnorm_backward", c, x, nullptr, gamma, save_mean, save_invstd, dy,
                     dx, dgamma, dbeta);
}

void batchnorm_relu_backward(Context& c, const Tensor& x, const Tensor& y, const Tensor& gamma,
                             const Tensor& save_mean, const Tensor& save_invstd, const Tensor& dy,
                             Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  bn_backward<true>("cuda batchnorm_relu_backward", c, x, f32_in(y), gamma, save_mean, save_invstd,
                    dy, dx, dgamma, dbeta);
}

}  // namespace st::cuda
