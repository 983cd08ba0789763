// The op interface. Every op has a forward and a backward; both backends
// implement all of them, so no feature exists on one backend only. Adding an op:
// one entry in ST_BACKEND_OPS, its checks in backend.cpp, and do_<op> in each
// backend (cpu/cpu_backend.cpp, kernels/); the compiler names what is missing.
//
// Conventions (PyTorch's): NCHW activations, OIHW conv weights, linear weight
// [out, in]. Backward ops overwrite their outputs (dx, dw, db); the graph sums
// gradients where one activation feeds several consumers. The CPU backend runs
// F32 and F64 (for finite-difference checks); the CUDA backend runs F32.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "optim/optim_types.h"
#include "tensor/tensor.h"

namespace st {

struct ConvGeom {
  int kh = 3, kw = 3;
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int64_t out_h(int64_t in_h) const { return (in_h + 2 * pad_h - kh) / stride_h + 1; }
  int64_t out_w(int64_t in_w) const { return (in_w + 2 * pad_w - kw) / stride_w + 1; }
};
using PoolGeom = ConvGeom;

// The op list, written once. Each entry is
//   X(return type, name, (parameters), (arguments), tensor whose shape names the call)
// and generates the public entry (argument checks, then the device's do_<name>),
// the pure virtual do_<name> and, in each backend, its override (see
// ST_BACKEND_OVERRIDES). Comments inside use /* */: a // comment would swallow the
// line continuation.
// clang-format off
#define ST_BACKEND_OPS(X)                                                                         \
  /* x [N,C,H,W], w [O,C,kh,kw], bias [O] or null -> y [N,O,OH,OW] */                             \
  X(void, conv2d_forward,                                                                         \
    (const Tensor& x, const Tensor& w, const Tensor* bias, const ConvGeom& g, Tensor& y),         \
    (x, w, bias, g, y), x)                                                                        \
  /* The same with the ReLU that follows fused in: y = relu(conv(x) + bias), applied as each      \
     part of y is written, so the convolution's own output is never stored. */                   \
  X(void, conv2d_relu_forward,                                                                    \
    (const Tensor& x, const Tensor& w, const Tensor* bias, const ConvGeom& g, Tensor& y),         \
    (x, w, bias, g, y), x)                                                                        \
  /* dx may be null (nothing upstream needs it); db null when the conv has no bias. */            \
  X(void, conv2d_backward,                                                                        \
    (const Tensor& x, const Tensor& w, const Tensor& dy, const ConvGeom& g, Tensor* dx,           \
     Tensor& dw, Tensor* db),                                                                     \
    (x, w, dy, g, dx, dw, db), x)                                                                 \
  /* Train mode: normalizes with the batch statistics (biased variance), updates the              \
     running statistics with `momentum` (unbiased variance), and saves mean and                   \
     1/sqrt(var+eps) per channel for the backward. x is [N,C] or [N,C,H,W]. */                    \
  X(void, batchnorm_forward_train,                                                                \
    (const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,              \
     Tensor& running_var, double momentum, double eps, Tensor& y, Tensor& save_mean,              \
     Tensor& save_invstd),                                                                        \
    (x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean, save_invstd), x)     \
  X(void, batchnorm_forward_eval,                                                                 \
    (const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,        \
     const Tensor& running_var, double eps, Tensor& y),                                           \
    (x, gamma, beta, running_mean, running_var, eps, y), x)                                       \
  X(void, batchnorm_backward,                                                                     \
    (const Tensor& x, const Tensor& gamma, const Tensor& save_mean, const Tensor& save_invstd,    \
     const Tensor& dy, Tensor& dx, Tensor& dgamma, Tensor& dbeta),                                \
    (x, gamma, save_mean, save_invstd, dy, dx, dgamma, dbeta), x)                                 \
  /* The same three with the ReLU that follows fused in: y = relu(bn(x)) in one pass             \
     over memory, bn(x) never stored. The backward takes that y and its gradient dy. */           \
  X(void, batchnorm_relu_forward_train,                                                           \
    (const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,              \
     Tensor& running_var, double momentum, double eps, Tensor& y, Tensor& save_mean,              \
     Tensor& save_invstd),                                                                        \
    (x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean, save_invstd), x)     \
  X(void, batchnorm_relu_forward_eval,                                                            \
    (const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,        \
     const Tensor& running_var, double eps, Tensor& y),                                           \
    (x, gamma, beta, running_mean, running_var, eps, y), x)                                       \
  X(void, batchnorm_relu_backward,                                                                \
    (const Tensor& x, const Tensor& y, const Tensor& gamma, const Tensor& save_mean,              \
     const Tensor& save_invstd, const Tensor& dy, Tensor& dx, Tensor& dgamma, Tensor& dbeta),     \
    (x, y, gamma, save_mean, save_invstd, dy, dx, dgamma, dbeta), x)                              \
  X(void, relu_forward, (const Tensor& x, Tensor& y), (x, y), x)                                  \
  /* Uses the forward output: dx = dy where y > 0. */                                             \
  X(void, relu_backward, (const Tensor& y, const Tensor& dy, Tensor& dx), (y, dy, dx), y)         \
  /* argmax (I32, same shape as y) holds the flat index into each image's input plane. */         \
  X(void, maxpool2d_forward, (const Tensor& x, const PoolGeom& g, Tensor& y, Tensor& argmax),     \
    (x, g, y, argmax), x)                                                                         \
  X(void, maxpool2d_backward, (const Tensor& dy, const Tensor& argmax, Tensor& dx),               \
    (dy, argmax, dx), dx)                                                                         \
  /* Zero padding counts in the divisor (PyTorch's count_include_pad=True). */                    \
  X(void, avgpool2d_forward, (const Tensor& x, const PoolGeom& g, Tensor& y), (x, g, y), x)       \
  X(void, avgpool2d_backward, (const Tensor& dy, const PoolGeom& g, Tensor& dx), (dy, g, dx), dx) \
  /* x [N,C,H,W] -> y [N,C] */                                                                    \
  X(void, global_avgpool_forward, (const Tensor& x, Tensor& y), (x, y), x)                        \
  X(void, global_avgpool_backward, (const Tensor& dy, Tensor& dx), (dy, dx), dx)                  \
  /* x [N,in], w [out,in], bias [out] or null -> y [N,out] */                                     \
  X(void, linear_forward, (const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y),      \
    (x, w, bias, y), x)                                                                           \
  X(void, linear_backward,                                                                        \
    (const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw, Tensor* db),     \
    (x, w, dy, dx, dw, db), x)                                                                    \
  /* logits [N,K], labels I32 [N] -> probs [N,K]; returns the mean loss over the batch. */        \
  X(double, softmax_xent_forward, (const Tensor& logits, const Tensor& labels, Tensor& probs),    \
    (logits, labels, probs), logits)                                                              \
  /* dlogits = (probs - onehot(labels)) / N */                                                    \
  X(void, softmax_xent_backward, (const Tensor& probs, const Tensor& labels, Tensor& dlogits),    \
    (probs, labels, dlogits), probs)                                                              \
  /* Number of rows whose argmax equals the label. */                                             \
  X(int64_t, count_correct, (const Tensor& logits, const Tensor& labels), (logits, labels),       \
    logits)                                                                                       \
  X(void, add, (const Tensor& a, const Tensor& b, Tensor& y), (a, b, y), a)                       \
  /* y += x */                                                                                    \
  X(void, add_inplace, (Tensor& y, const Tensor& x), (y, x), y)                                  \
  /* Inverted dropout: keeps each element with probability 1-p and scales it by                   \
     1/(1-p). The mask (same shape and dtype as x: 0 or 1/(1-p)) comes from                       \
     uniform01(seed, element index), so it is the same on every backend. */                       \
  X(void, dropout_forward, (const Tensor& x, double p, uint64_t seed, Tensor& mask, Tensor& y),   \
    (x, p, seed, mask, y), x)                                                                     \
  X(void, dropout_backward, (const Tensor& dy, const Tensor& mask, Tensor& dx), (dy, mask, dx),   \
    dy)                                                                                           \
  /* Sparsity statistics: out[n, c] = max over (h, w) of |h[n, c, h, w]|, out F32 [N, C]. */      \
  X(void, channel_absmax, (const Tensor& h, Tensor& out), (h, out), h)                            \
  /* One update of the whole flat parameter buffer. `state` holds                                 \
     optimizer_state_count(hyper) buffers shaped like `params`; the segments tile it. */          \
  X(void, optimizer_step,                                                                         \
    (const OptimStep& s, Tensor& params, const Tensor& grads, std::vector<Tensor>& state,         \
     const std::vector<UpdateSegment>& segments),                                                 \
    (s, params, grads, state, segments), params)                                                  \
  /* A training batch from the host (images F32 [N,C,H,W], labels I32 [N], both CPU)              \
     into x and y on this backend's device. The CPU copies; CUDA stages the batch in              \
     pinned memory and queues one asynchronous upload of images and labels that later             \
     ops wait for, so the host can prepare the next batch meanwhile. The host tensors             \
     may be refilled as soon as the call returns. */                                              \
  X(void, upload_batch, (const Tensor& images, const Tensor& labels, Tensor& x, Tensor& y),       \
    (images, labels, x, y), x)
// clang-format on

#define ST_BACKEND_EXPAND(...) __VA_ARGS__

// In a backend class body: declares the override of every op.
#define ST_BACKEND_DECLARE_OVERRIDE(R, name, params, args, key) R do_##name params override;
#define ST_BACKEND_OVERRIDES ST_BACKEND_OPS(ST_BACKEND_DECLARE_OVERRIDE)

// The op contract: every public op checks its arguments once, here (shapes,
// dtypes the backend supports, the backend's device, hyperparameters such as BN
// momentum and eps), then calls the device's do_<op>. Checks that need the
// values of a tensor (label ranges, argmax indices) stay with the device, which
// can read them cheaply. Conventions: see the top of this file.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;
  // The floating dtypes the ops accept (the CPU: f32 and f64; CUDA: f32).
  virtual bool supports(DType dtype) const = 0;
  // Blocks until queued work is done (a no-op on the CPU).
  virtual void synchronize() {}

#define ST_BACKEND_DECLARE_PUBLIC(R, name, params, args, key) R name params;
  ST_BACKEND_OPS(ST_BACKEND_DECLARE_PUBLIC)
#undef ST_BACKEND_DECLARE_PUBLIC

 protected:
#define ST_BACKEND_DECLARE_VIRTUAL(R, name, params, args, key) virtual R do_##name params = 0;
  ST_BACKEND_OPS(ST_BACKEND_DECLARE_VIRTUAL)
#undef ST_BACKEND_DECLARE_VIRTUAL
};

// A device the user asked for that this machine or build cannot give (a usage
// error: the CLI exits with code 2). The message names the --device flag.
class DeviceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "cpu", "cuda" or "auto" (CUDA when a device exists). Throws DeviceError when
// CUDA is asked for and there is none, saying why (no device, a driver too old
// for the toolkit, no CUDA backend in this build).
std::unique_ptr<Backend> make_backend(const std::string& device);

// What the CUDA runtime reports: the number of devices and, when there is none,
// why (no device, no driver, a driver older than the toolkit, no CUDA build).
struct CudaProbe {
  int devices = 0;
  std::string problem;
};
CudaProbe probe_cuda();
bool cuda_device_available();

}  // namespace st
