// Learning-rate schedules as pure functions of time. Time `t` is in whatever unit
// the caller counts (optimizer steps, or epochs as a float); step_size,
// milestones, total and warmup are in that same unit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace st {

enum class ScheduleKind { Constant, Step, MultiStep, Cosine };

struct Schedule {
  ScheduleKind kind = ScheduleKind::Constant;
  double base_lr = 1e-3;
  // step: lr * gamma^floor(t / step_size)
  double step_size = 1.0;
  // step, multistep: multiplier per decay
  double gamma = 0.1;
  // multistep: lr * gamma^(number of milestones <= t); must be increasing
  std::vector<double> milestones;
  // cosine: min_lr + (lr - min_lr) * (1 + cos(pi * min(t, total) / total)) / 2
  double total = 1.0;
  double min_lr = 0.0;
  // Linear warm-up, multiplied onto the schedule: the factor goes from
  // warmup_start_factor at t = 0 to 1 at t = warmup (PyTorch's LinearLR chained
  // with the main schedule). warmup = 0 disables it.
  double warmup = 0.0;
  double warmup_start_factor = 0.1;
};

// Schedule names and their checks are the config's (config/names.h, config/schema.cpp).

// The learning rate at time t >= 0.
double scheduled_lr(const Schedule& s, double t);

}  // namespace st
