#include "io/validate.h"

#include <algorithm>
#include <cmath>
#include <set>
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

namespace {

// Thrown from inside the parser callback to stop parsing at once.
struct JsonRefused {
  std::string why;
};

}  // namespace

json parse_json_checked(std::string_view text, const std::string& origin, int max_depth) {
  // One key set per open object; arrays hold no keys, so the innermost object is on top.
  std::vector<std::set<std::string>> open_objects;
  const auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // `depth` counts the containers already open; this one is one deeper.
        if (depth + 1 > max_depth)
          throw JsonRefused{"nests deeper than " + std::to_string(max_depth) + " levels"};
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second)
          throw JsonRefused{"key '" + parsed.get<std::string>() + "' appears twice in one object"};
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), on_event);
  } catch (const JsonRefused& r) {
    throw InputError(origin + ": " + r.why);
  } catch (const json::parse_error& e) {
    throw InputError(origin + ": not valid JSON (error at byte " + std::to_string(e.byte) + ")");
  } catch (const json::exception&) {
    throw InputError(origin + ": not valid JSON");
  }
}

int json_depth(const json& value) {
  int deepest = 0;
  std::vector<std::pair<const json*, int>> todo{{&value, 0}};
  while (!todo.empty()) {
    const auto [v, depth] = todo.back();
    todo.pop_back();
    if (!v->is_structured()) continue;
    deepest = std::max(deepest, depth + 1);
    for (const json& child : *v) todo.emplace_back(&child, depth + 1);
  }
  return deepest;
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
