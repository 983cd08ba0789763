#include "io/validate.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace st {

using json = nlohmann::json;

uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& what) {
  uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r))
    throw InputError(what + ": size " + std::to_string(a) + " x " + std::to_string(b) +
                     " overflows 64 bits");
  return r;
}

uint64_t checked_product(std::initializer_list<uint64_t> factors, const std::string& what) {
  uint64_t r = 1;
  for (uint64_t f : factors) r = checked_mul(r, f, what);
  return r;
}

void check_range(int64_t value, int64_t lo, int64_t hi, const std::string& what) {
  if (value < lo || value > hi)
    throw InputError(what + ": " + std::to_string(value) + " is outside [" + std::to_string(lo) +
                     ", " + std::to_string(hi) + "]");
}

json parse_json_checked(std::string_view text, const std::string& origin, int max_depth) {
  try {
    return parse_json_strict(text, max_depth);
  } catch (const JsonTextError& e) {
    throw InputError(origin + ": " + (e.path.empty() ? "" : e.path + ": ") + e.what());
  }
}

namespace {

template <typename T>
void check_finite_values(const T* p, int64_t n, const std::string& name,
                         const std::string& origin) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i]))
      throw InputError(origin + ": tensor '" + name + "' holds " +
                       (std::isnan(p[i]) ? "NaN" : "an infinite value") + " at index " +
                       std::to_string(i) + " (weights must be finite)");
  }
}

}  // namespace

void check_finite(const Tensor& t, const std::string& name, const std::string& origin) {
  if (!t.defined()) return;
  const Tensor host = t.device() == Device::CPU ? t : t.to(Device::CPU);
  if (host.dtype() == DType::F32)
    check_finite_values(host.data<float>(), host.numel(), name, origin);
  else if (host.dtype() == DType::F64)
    check_finite_values(host.data<double>(), host.numel(), name, origin);
}

}  // namespace st
