// A Backend that forwards every op to another backend and times it, for
// `sparsetrain bench --profile`. The overrides are generated from the op list
// (ST_BACKEND_OPS), so a new op is profiled without an edit here; the inner
// backend's public op checks the arguments again, which costs nothing measurable.
// Each op is bracketed by synchronize() so that
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
  bool supports(DType dtype) const override { return inner_.supports(dtype); }
  void synchronize() override { inner_.synchronize(); }

 private:
  // Runs f() between two synchronize() calls (defined before the generated
  // overrides, which need its deduced return type) and charges its time to `op` and
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

 protected:
  // Every op: inner_.<op>(...) timed under the op's name and its key tensor's shape.
#define ST_PROFILE_OP(R, name, params, args, key)               \
  R do_##name params override {                                 \
    return timed(#name, key, [&] { return inner_.name args; }); \
  }
  ST_BACKEND_OPS(ST_PROFILE_OP)
#undef ST_PROFILE_OP
};

}  // namespace st
