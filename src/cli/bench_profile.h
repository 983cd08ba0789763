// A Backend that forwards every op to another backend and times it, for
// `sparsetrain bench --profile`. Each op is bracketed by synchronize() so that
// asynchronous (CUDA) work is charged to the op that queued it; that costs a
// little throughput, so the profile is taken in its own timed pass.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/backend.h"

namespace st {

struct OpTime {
  double seconds = 0;
  int64_t calls = 0;
};

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}

  // Time per op kind ("conv2d_backward") and per op kind and input shape
  // ("conv2d_backward [64,128,16,16]"), summed since the last reset().
  const std::map<std::string, OpTime>& by_kind() const { return by_kind_; }
  const std::map<std::string, OpTime>& by_shape() const { return by_shape_; }
  void reset();

  Device device() const override { return inner_.device(); }
  std::string name() const override { return inner_.name(); }
  void synchronize() override { inner_.synchronize(); }

  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvGeom& g,
                      Tensor& y) override;
  void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const ConvGeom& g,
                       Tensor* dx, Tensor& dw, Tensor* db) override;
  void batchnorm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                               Tensor& running_mean, Tensor& running_var, double momentum,
                               double eps, Tensor& y, Tensor& save_mean,
                               Tensor& save_invstd) override;
  void batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              const Tensor& running_mean, const Tensor& running_var, double eps,
                              Tensor& y) override;
  void batchnorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                          const Tensor& save_invstd, const Tensor& dy, Tensor& dx, Tensor& dgamma,
                          Tensor& dbeta) override;
  void relu_forward(const Tensor& x, Tensor& y) override;
  void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void maxpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y, Tensor& argmax) override;
  void maxpool2d_backward(const Tensor& dy, const Tensor& argmax, Tensor& dx) override;
  void avgpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y) override;
  void avgpool2d_backward(const Tensor& dy, const PoolGeom& g, Tensor& dx) override;
  void global_avgpool_forward(const Tensor& x, Tensor& y) override;
  void global_avgpool_backward(const Tensor& dy, Tensor& dx) override;
  void linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                       Tensor* db) override;
  double softmax_xent_forward(const Tensor& logits, const Tensor& labels, Tensor& probs) override;
  void softmax_xent_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits) override;
  int64_t count_correct(const Tensor& logits, const Tensor& labels) override;
  void add(const Tensor& a, const Tensor& b, Tensor& y) override;
  void add_inplace(Tensor& y, const Tensor& x) override;
  void dropout_forward(const Tensor& x, double p, uint64_t seed, Tensor& mask, Tensor& y) override;
  void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx) override;
  void channel_absmax(const Tensor& h, Tensor& out) override;
  void optimizer_step(const OptimStep& s, Tensor& params, const Tensor& grads,
                      std::vector<Tensor>& state,
                      const std::vector<UpdateSegment>& segments) override;

 private:
  // Runs f() between two synchronize() calls and charges its time to `op` and
  // to `op` with the shape of `x`.
  template <typename F>
  auto timed(const char* op, const Tensor& x, F&& f) {
    inner_.synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      inner_.synchronize();
      charge(op, x, std::chrono::steady_clock::now() - t0);
    } else {
      auto result = f();
      inner_.synchronize();
      charge(op, x, std::chrono::steady_clock::now() - t0);
      return result;
    }
  }
  void charge(const char* op, const Tensor& x, std::chrono::steady_clock::duration d);

  Backend& inner_;
  std::map<std::string, OpTime> by_kind_, by_shape_;
};

}  // namespace st
