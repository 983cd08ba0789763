#include "bench/profiling_backend.h"

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

}  // namespace st
