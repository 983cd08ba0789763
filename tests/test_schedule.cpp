// Learning-rate schedules against their closed forms.
#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>

#include "optim/schedule.h"

using namespace st;

TEST_CASE("constant and step schedules", "[optim][schedule]") {
  Schedule s;
  s.base_lr = 0.1;
  CHECK(scheduled_lr(s, 0) == 0.1);
  CHECK(scheduled_lr(s, 1e6) == 0.1);
  s.kind = ScheduleKind::Step;
  s.step_size = 30;
  s.gamma = 0.5;
  CHECK(scheduled_lr(s, 0) == 0.1);
  CHECK(scheduled_lr(s, 29.99) == 0.1);
  CHECK(scheduled_lr(s, 30) == Approx(0.05));
  CHECK(scheduled_lr(s, 95) == Approx(0.1 * 0.125));
}

TEST_CASE("multistep schedule counts the milestones passed", "[optim][schedule]") {
  Schedule s;
  s.kind = ScheduleKind::MultiStep;
  s.base_lr = 1.0;
  s.gamma = 0.1;
  s.milestones = {10, 25};
  CHECK(scheduled_lr(s, 9.5) == 1.0);
  CHECK(scheduled_lr(s, 10) == Approx(0.1));
  CHECK(scheduled_lr(s, 24) == Approx(0.1));
  CHECK(scheduled_lr(s, 25) == Approx(0.01));
  CHECK(scheduled_lr(s, 1000) == Approx(0.01));
}

TEST_CASE("cosine schedule goes from lr to min_lr and stays there", "[optim][schedule]") {
  Schedule s;
  s.kind = ScheduleKind::Cosine;
  s.base_lr = 0.2;
  s.min_lr = 0.02;
  s.total = 100;
  CHECK(scheduled_lr(s, 0) == Approx(0.2));
  CHECK(scheduled_lr(s, 50) == Approx(0.11));  // halfway: the mean of the ends
  CHECK(scheduled_lr(s, 25) == Approx(0.02 + 0.18 * 0.5 * (1 + std::cos(std::numbers::pi / 4))));
  CHECK(scheduled_lr(s, 100) == Approx(0.02));
  CHECK(scheduled_lr(s, 150) == Approx(0.02));
}

TEST_CASE("linear warm-up multiplies the schedule", "[optim][schedule]") {
  Schedule s;
  s.kind = ScheduleKind::Cosine;
  s.base_lr = 1.0;
  s.total = 10;
  s.warmup = 4;
  s.warmup_start_factor = 0.2;
  const auto cosine = [](double t) { return 0.5 * (1 + std::cos(std::numbers::pi * t / 10)); };
  CHECK(scheduled_lr(s, 0) == Approx(0.2));
  CHECK(scheduled_lr(s, 2) == Approx(0.6 * cosine(2)));
  CHECK(scheduled_lr(s, 4) == Approx(cosine(4)));
  CHECK(scheduled_lr(s, 7) == Approx(cosine(7)));
  s.kind = ScheduleKind::Constant;
  CHECK(scheduled_lr(s, 1) == Approx(0.4));
}

TEST_CASE("schedule time starts at 0", "[optim][schedule]") {
  CHECK_THROWS_AS(scheduled_lr(Schedule{}, -1), std::logic_error);
}
