// Finite-difference gradient checking, independent of what is being checked:
// a loss is any callable returning a double, and the inputs are raw double
// arrays that the checker perturbs in place (and restores). Used for single ops
// and whole networks alike; run the code under test in double precision.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace st::testing {

// One array of inputs and the analytic gradient of the loss with respect to it.
struct GradTarget {
  std::string name;
  double* data = nullptr;  // perturbed in place, restored after each probe
  int64_t size = 0;
  std::vector<double> analytic;  // d loss / d data, `size` values
  // Elements for which the loss is known not to be smooth (ReLU kinks, max-pool
  // ties); they are counted as skipped. Empty: none.
  std::function<bool(int64_t index)> skip;
};

struct GradCheckOptions {
  double step = 1e-6;  // central difference half-width h
  // A point passes when |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|).
  double rtol = 1e-6;
  double atol = 1e-8;
  // Per target: 0 checks every element, otherwise this many evenly spaced ones.
  int64_t max_points = 0;
  // Generic kink guard for callers that cannot predict non-smooth points (a whole
  // network): a point is skipped when the one-sided slopes (L(x+h)-L(x))/h and
  // (L(x)-L(x-h))/h differ by more than kink_tol * max(1, |slope|). A smooth loss
  // gives a difference of about h * L'', a kink one of the size of the slope jump.
  // 0 disables the guard.
  double kink_tol = 0;
  // How many mismatches to keep in the report.
  std::size_t max_reported = 20;
};

struct GradMismatch {
  std::string target;
  int64_t index = 0;
  double analytic = 0, numeric = 0;
};

struct GradCheckReport {
  int64_t checked = 0, skipped = 0, failed = 0;
  double max_abs_error = 0;
  std::vector<GradMismatch> mismatches;  // the first max_reported failures

  bool ok() const { return failed == 0 && checked > 0; }

  std::string summary() const {
    std::ostringstream os;
    os.precision(10);
    os << checked << " points checked, " << skipped << " skipped, " << failed
       << " failed, max |analytic - numeric| = " << max_abs_error;
    for (const GradMismatch& m : mismatches)
      os << "\n  " << m.target << "[" << m.index << "]: analytic " << m.analytic << ", numeric "
         << m.numeric;
    return os.str();
  }
};

inline std::vector<int64_t> probe_indices(int64_t size, int64_t max_points) {
  std::vector<int64_t> idx;
  if (max_points <= 0 || max_points >= size) {
    for (int64_t i = 0; i < size; ++i) idx.push_back(i);
    return idx;
  }
  const int64_t last = max_points - 1;
  for (int64_t k = 0; k < max_points; ++k) idx.push_back(last ? k * (size - 1) / last : 0);
  idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
  return idx;
}

// Compares every target's analytic gradient with central differences of `loss`.
// The loss must be a deterministic function of the targets' data.
inline GradCheckReport check_gradients(const std::function<double()>& loss,
                                       const std::vector<GradTarget>& targets,
                                       const GradCheckOptions& opt = {}) {
  GradCheckReport report;
  const double h = opt.step;
  const double base = opt.kink_tol > 0 ? loss() : 0.0;
  for (const GradTarget& t : targets) {
    for (int64_t i : probe_indices(t.size, opt.max_points)) {
      if (t.skip && t.skip(i)) {
        ++report.skipped;
        continue;
      }
      const double saved = t.data[i];
      t.data[i] = saved + h;
      const double plus = loss();
      t.data[i] = saved - h;
      const double minus = loss();
      t.data[i] = saved;
      if (opt.kink_tol > 0) {
        const double right = (plus - base) / h, left = (base - minus) / h;
        const double scale = std::max({1.0, std::abs(right), std::abs(left)});
        if (std::abs(right - left) > opt.kink_tol * scale) {
          ++report.skipped;
          continue;
        }
      }
      const double numeric = (plus - minus) / (2 * h);
      const double analytic = t.analytic[i];
      const double err = std::abs(analytic - numeric);
      ++report.checked;
      report.max_abs_error = std::max(report.max_abs_error, err);
      const double tol = opt.atol + opt.rtol * std::max(std::abs(analytic), std::abs(numeric));
      if (!(err <= tol)) {
        ++report.failed;
        if (report.mismatches.size() < opt.max_reported)
          report.mismatches.push_back({t.name, i, analytic, numeric});
      }
    }
  }
  return report;
}

}  // namespace st::testing
