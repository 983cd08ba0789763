#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <utility>

namespace st {
namespace {

double main_schedule(const Schedule& s, double t) {
  switch (s.kind) {
    case ScheduleKind::Constant:
      return s.base_lr;
    case ScheduleKind::Step:
      return s.base_lr * std::pow(s.gamma, std::floor(t / s.step_size));
    case ScheduleKind::MultiStep: {
      int passed = 0;
      for (double m : s.milestones) passed += t >= m ? 1 : 0;
      return s.base_lr * std::pow(s.gamma, passed);
    }
    case ScheduleKind::Cosine: {
      const double progress = std::min(t, s.total) / s.total;
      return s.min_lr +
             (s.base_lr - s.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    }
  }
  return s.base_lr;
}

double warmup_factor(const Schedule& s, double t) {
  if (s.warmup <= 0.0 || t >= s.warmup) return 1.0;
  return s.warmup_start_factor + (1.0 - s.warmup_start_factor) * t / s.warmup;
}

}  // namespace

double scheduled_lr(const Schedule& s, double t) {
  // Callers count time from 0 (the epoch); anything else is a caller's bug, not input.
  if (!(t >= 0.0)) throw std::logic_error("scheduled_lr: negative time " + std::to_string(t));
  return main_schedule(s, t) * warmup_factor(s, t);
}

}  // namespace st
