// Small helpers shared by the op tests: seeded random tensors and reductions.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "backend/backend.h"
#include "tensor/tensor.h"

namespace st::testing {

// Catch2 v2 has no skip: a test case that cannot run (no CUDA device) calls
// skip_test_case() and returns. When every test case of a run was skipped and
// none failed, tests/main.cpp exits with 77, which ctest reports as "skipped".
inline std::set<std::string>& skipped_test_cases() {
  static std::set<std::string> names;
  return names;
}
inline void skip_test_case(const std::string& why) {
  WARN("skipped: " << why);
  skipped_test_cases().insert(Catch::getResultCapture().getCurrentTestName());
}

// Uniform values in [lo, hi), reproducible from `seed`, of any floating dtype.
inline Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed, double lo = -1.0,
                            double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<std::size_t>(shape_numel(shape)));
  for (double& e : v) e = dist(rng);
  Tensor t = Tensor::from_vector(v, shape);
  return dtype == DType::F64 ? t : t.to(dtype);
}

inline Tensor random_labels(int64_t n, int classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> v(static_cast<std::size_t>(n));
  for (int32_t& e : v) e = static_cast<int32_t>(rng() % classes);
  return Tensor::from_vector(v, {n});
}

// sum_i a[i] * b[i] in double, for losses of the form sum(r * y).
inline double dot(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector_f64(), y = b.to_vector_f64();
  double s = 0;
  for (std::size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

// Largest |a - b| over all elements (0 exactly when they are equal bit for bit, up to the sign
// of zero).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector_f64(), y = b.to_vector_f64();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

// Largest |a - b| / max(1, |b|) over all elements.
inline double max_rel_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector_f64(), y = b.to_vector_f64();
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    m = std::max(m, std::abs(x[i] - y[i]) / std::max(1.0, std::abs(y[i])));
  return m;
}

inline std::string geom_str(const ConvGeom& g) {
  std::ostringstream os;
  os << "k" << g.kh << "x" << g.kw << " s" << g.stride_h << "x" << g.stride_w << " p" << g.pad_h
     << "x" << g.pad_w;
  return os.str();
}

inline ConvGeom geom(int kh, int kw, int sh, int sw, int ph, int pw) {
  ConvGeom g;
  g.kh = kh, g.kw = kw, g.stride_h = sh, g.stride_w = sw, g.pad_h = ph, g.pad_w = pw;
  return g;
}

}  // namespace st::testing
