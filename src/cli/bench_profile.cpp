#include "cli/bench_profile.h"

namespace st {

void ProfilingBackend::reset() {
  by_kind_.clear();
  by_shape_.clear();
}

void ProfilingBackend::charge(const char* op, const Tensor& x,
                              std::chrono::steady_clock::duration d) {
  const double s = std::chrono::duration<double>(d).count();
  OpTime& k = by_kind_[op];
  k.seconds += s, ++k.calls;
  OpTime& sh = by_shape_[std::string(op) + " " + shape_str(x.shape())];
  sh.seconds += s, ++sh.calls;
}

void ProfilingBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* bias,
                                      const ConvGeom& g, Tensor& y) {
  timed("conv2d_forward", x, [&] { inner_.conv2d_forward(x, w, bias, g, y); });
}

void ProfilingBackend::conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy,
                                       const ConvGeom& g, Tensor* dx, Tensor& dw, Tensor* db) {
  timed("conv2d_backward", x, [&] { inner_.conv2d_backward(x, w, dy, g, dx, dw, db); });
}

void ProfilingBackend::batchnorm_forward_train(const Tensor& x, const Tensor& gamma,
                                               const Tensor& beta, Tensor& running_mean,
                                               Tensor& running_var, double momentum, double eps,
                                               Tensor& y, Tensor& save_mean, Tensor& save_invstd) {
  timed("batchnorm_forward_train", x, [&] {
    inner_.batchnorm_forward_train(x, gamma, beta, running_mean, running_var, momentum, eps, y,
                                   save_mean, save_invstd);
  });
}

void ProfilingBackend::batchnorm_forward_eval(const Tensor& x, const Tensor& gamma,
                                              const Tensor& beta, const Tensor& running_mean,
                                              const Tensor& running_var, double eps, Tensor& y) {
  timed("batchnorm_forward_eval", x,
        [&] { inner_.batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, eps, y); });
}

void ProfilingBackend::batchnorm_backward(const Tensor& x, const Tensor& gamma,
                                          const Tensor& save_mean, const Tensor& save_invstd,
                                          const Tensor& dy, Tensor& dx, Tensor& dgamma,
                                          Tensor& dbeta) {
  timed("batchnorm_backward", x, [&] {
    inner_.batchnorm_backward(x, gamma, save_mean, save_invstd, dy, dx, dgamma, dbeta);
  });
}

void ProfilingBackend::relu_forward(const Tensor& x, Tensor& y) {
  timed("relu_forward", x, [&] { inner_.relu_forward(x, y); });
}

void ProfilingBackend::relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  timed("relu_backward", y, [&] { inner_.relu_backward(y, dy, dx); });
}

void ProfilingBackend::maxpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y,
                                         Tensor& argmax) {
  timed("maxpool2d_forward", x, [&] { inner_.maxpool2d_forward(x, g, y, argmax); });
}

void ProfilingBackend::maxpool2d_backward(const Tensor& dy, const Tensor& argmax, Tensor& dx) {
  timed("maxpool2d_backward", dx, [&] { inner_.maxpool2d_backward(dy, argmax, dx); });
}

void ProfilingBackend::avgpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y) {
  timed("avgpool2d_forward", x, [&] { inner_.avgpool2d_forward(x, g, y); });
}

void ProfilingBackend::avgpool2d_backward(const Tensor& dy, const PoolGeom& g, Tensor& dx) {
  timed("avgpool2d_backward", dx, [&] { inner_.avgpool2d_backward(dy, g, dx); });
}

void ProfilingBackend::global_avgpool_forward(const Tensor& x, Tensor& y) {
  timed("global_avgpool_forward", x, [&] { inner_.global_avgpool_forward(x, y); });
}

void ProfilingBackend::global_avgpool_backward(const Tensor& dy, Tensor& dx) {
  timed("global_avgpool_backward", dx, [&] { inner_.global_avgpool_backward(dy, dx); });
}

void ProfilingBackend::linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias,
                                      Tensor& y) {
  timed("linear_forward", x, [&] { inner_.linear_forward(x, w, bias, y); });
}

void ProfilingBackend::linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy,
                                       Tensor* dx, Tensor& dw, Tensor* db) {
  timed("linear_backward", x, [&] { inner_.linear_backward(x, w, dy, dx, dw, db); });
}

double ProfilingBackend::softmax_xent_forward(const Tensor& logits, const Tensor& labels,
                                              Tensor& probs) {
  return timed("softmax_xent_forward", logits,
               [&] { return inner_.softmax_xent_forward(logits, labels, probs); });
}

void ProfilingBackend::softmax_xent_backward(const Tensor& probs, const Tensor& labels,
                                             Tensor& dlogits) {
  timed("softmax_xent_backward", probs,
        [&] { inner_.softmax_xent_backward(probs, labels, dlogits); });
}

int64_t ProfilingBackend::count_correct(const Tensor& logits, const Tensor& labels) {
  return timed("count_correct", logits, [&] { return inner_.count_correct(logits, labels); });
}

void ProfilingBackend::add(const Tensor& a, const Tensor& b, Tensor& y) {
  timed("add", a, [&] { inner_.add(a, b, y); });
}

void ProfilingBackend::add_inplace(Tensor& y, const Tensor& x) {
  timed("add_inplace", y, [&] { inner_.add_inplace(y, x); });
}

void ProfilingBackend::dropout_forward(const Tensor& x, double p, uint64_t seed, Tensor& mask,
                                       Tensor& y) {
  timed("dropout_forward", x, [&] { inner_.dropout_forward(x, p, seed, mask, y); });
}

void ProfilingBackend::dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx) {
  timed("dropout_backward", dy, [&] { inner_.dropout_backward(dy, mask, dx); });
}

void ProfilingBackend::channel_absmax(const Tensor& h, Tensor& out) {
  timed("channel_absmax", h, [&] { inner_.channel_absmax(h, out); });
}

void ProfilingBackend::optimizer_step(const OptimStep& s, Tensor& params, const Tensor& grads,
                                      std::vector<Tensor>& state,
                                      const std::vector<UpdateSegment>& segments) {
  timed("optimizer_step", params,
        [&] { inner_.optimizer_step(s, params, grads, state, segments); });
}

}  // namespace st
