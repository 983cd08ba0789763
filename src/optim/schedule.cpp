#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <utility>

namespace st {
namespace {

constexpr std::pair<const char*, ScheduleKind> kSchedules[] = {
    {"constant", ScheduleKind::Constant},
    {"step", ScheduleKind::Step},
    {"multistep", ScheduleKind::MultiStep},
    {"cosine", ScheduleKind::Cosine}};

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("schedule: " + what);
}

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

std::vector<std::string> schedule_names() {
  std::vector<std::string> names;
  for (const auto& k : kSchedules) names.push_back(k.first);
  return names;
}

ScheduleKind schedule_from_name(const std::string& name) {
  for (const auto& k : kSchedules)
    if (name == k.first) return k.second;
  std::string valid;
  for (const std::string& n : schedule_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown schedule '" + name + "' (expected one of " + valid + ")");
}

const char* schedule_name(ScheduleKind kind) {
  for (const auto& k : kSchedules)
    if (kind == k.second) return k.first;
  return "?";
}

void validate_schedule(const Schedule& s) {
  require(std::isfinite(s.base_lr) && s.base_lr >= 0.0,
          "base lr must be finite and >= 0, got " + std::to_string(s.base_lr));
  require(s.warmup >= 0.0, "warmup must be >= 0, got " + std::to_string(s.warmup));
  require(s.warmup_start_factor >= 0.0 && s.warmup_start_factor <= 1.0,
          "warmup_start_factor must be in [0, 1], got " + std::to_string(s.warmup_start_factor));
  if (s.kind == ScheduleKind::Step || s.kind == ScheduleKind::MultiStep)
    require(s.gamma > 0.0, "gamma must be > 0, got " + std::to_string(s.gamma));
  if (s.kind == ScheduleKind::Step)
    require(s.step_size > 0.0, "step_size must be > 0, got " + std::to_string(s.step_size));
  if (s.kind == ScheduleKind::MultiStep) {
    for (std::size_t i = 1; i < s.milestones.size(); ++i)
      require(s.milestones[i] > s.milestones[i - 1],
              "milestones must increase, got " + std::to_string(s.milestones[i - 1]) + " then " +
                  std::to_string(s.milestones[i]));
  }
  if (s.kind == ScheduleKind::Cosine) {
    require(s.total > 0.0, "cosine total must be > 0, got " + std::to_string(s.total));
    require(s.min_lr >= 0.0 && s.min_lr <= s.base_lr,
            "min_lr must be in [0, lr], got " + std::to_string(s.min_lr));
  }
}

double scheduled_lr(const Schedule& s, double t) {
  if (!(t >= 0.0))
    throw std::invalid_argument("schedule: time must be >= 0, got " + std::to_string(t));
  return main_schedule(s, t) * warmup_factor(s, t);
}

}  // namespace st
