// The op interface. Every op has a forward and a backward; both backends
// implement all of them, so no feature exists on one backend only.
//
// Conventions (PyTorch's): NCHW activations, OIHW conv weights, linear weight
// [out, in]. Backward ops overwrite their outputs (dx, dw, db); the graph sums
// gradients where one activation feeds several consumers. The CPU backend runs
// F32 and F64 (for finite-difference checks); the CUDA backend runs F32.
#pragma once

#include <cstdint>
#include <memory>
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

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;
  // Blocks until queued work is done (a no-op on the CPU).
  virtual void synchronize() {}

  // x [N,C,H,W], w [O,C,kh,kw], bias [O] or null -> y [N,O,OH,OW]
  virtual void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* bias,
                              const ConvGeom& g, Tensor& y) = 0;
  // dx may be null (nothing upstream needs it); db null when the conv has no bias.
  virtual void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy,
                               const ConvGeom& g, Tensor* dx, Tensor& dw, Tensor* db) = 0;

  // Train mode: normalizes with the batch statistics (biased variance), updates the
  // running statistics with `momentum` (unbiased variance), and saves mean and
  // 1/sqrt(var+eps) per channel for the backward.
  virtual void batchnorm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       Tensor& running_mean, Tensor& running_var,
                                       double momentum, double eps, Tensor& y,
                                       Tensor& save_mean, Tensor& save_invstd) = 0;
  virtual void batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                      const Tensor& running_mean, const Tensor& running_var,
                                      double eps, Tensor& y) = 0;
  virtual void batchnorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                                  const Tensor& save_invstd, const Tensor& dy, Tensor& dx,
                                  Tensor& dgamma, Tensor& dbeta) = 0;

  virtual void relu_forward(const Tensor& x, Tensor& y) = 0;
  // Uses the forward output: dx = dy where y > 0.
  virtual void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) = 0;

  // argmax (I32, same shape as y) holds the flat index into each image's input plane.
  virtual void maxpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y,
                                 Tensor& argmax) = 0;
  virtual void maxpool2d_backward(const Tensor& dy, const Tensor& argmax, Tensor& dx) = 0;
  // Zero padding counts in the divisor (PyTorch's count_include_pad=True).
  virtual void avgpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y) = 0;
  virtual void avgpool2d_backward(const Tensor& dy, const PoolGeom& g, Tensor& dx) = 0;
  // x [N,C,H,W] -> y [N,C]
  virtual void global_avgpool_forward(const Tensor& x, Tensor& y) = 0;
  virtual void global_avgpool_backward(const Tensor& dy, Tensor& dx) = 0;

  // x [N,in], w [out,in], bias [out] or null -> y [N,out]
  virtual void linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias,
                              Tensor& y) = 0;
  virtual void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx,
                               Tensor& dw, Tensor* db) = 0;

  // logits [N,K], labels I32 [N] -> probs [N,K]; returns the mean loss over the batch.
  virtual double softmax_xent_forward(const Tensor& logits, const Tensor& labels,
                                      Tensor& probs) = 0;
  // dlogits = (probs - onehot(labels)) / N
  virtual void softmax_xent_backward(const Tensor& probs, const Tensor& labels,
                                     Tensor& dlogits) = 0;
  // Number of rows whose argmax equals the label.
  virtual int64_t count_correct(const Tensor& logits, const Tensor& labels) = 0;

  virtual void add(const Tensor& a, const Tensor& b, Tensor& y) = 0;
  virtual void add_inplace(Tensor& y, const Tensor& x) = 0;  // y += x

  // Inverted dropout: keeps each element with probability 1-p and scales it by
  // 1/(1-p). The mask (same shape and dtype as x: 0 or 1/(1-p)) comes from
  // uniform01(seed, element index), so it is the same on every backend.
  virtual void dropout_forward(const Tensor& x, double p, uint64_t seed, Tensor& mask,
                               Tensor& y) = 0;
  virtual void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx) = 0;

  // Sparsity statistics: out[n, c] = max over (h, w) of |h[n, c, h, w]|, out F32 [N, C].
  virtual void channel_absmax(const Tensor& h, Tensor& out) = 0;

  // One update of the whole flat parameter buffer. `state` holds
  // optimizer_state_count(hyper) buffers shaped like `params`.
  virtual void optimizer_step(const OptimStep& s, Tensor& params, const Tensor& grads,
                              std::vector<Tensor>& state,
                              const std::vector<UpdateSegment>& segments) = 0;
};

// "cpu", "cuda" or "auto" (CUDA when a device exists). Throws with a clear message
// when CUDA is asked for and there is none.
std::unique_ptr<Backend> make_backend(const std::string& device);
bool cuda_device_available();

}  // namespace st
