#include <catch2/catch.hpp>

#include "sparsity/filter_stats.h"

using namespace st;

// Three filters over four images, with values chosen so each outcome is known by hand.
TEST_CASE("dead filters and selectivity follow the paper's definitions", "[stats]") {
  ActivationRecorder rec({{"conv1", 3}});
  // filter 0: fires on every image; filter 1: never (all below 1e-12);
  // filter 2: max 2.0, and two images at or below 1e-3 * 2.0 (0.001 and 0.0).
  rec.record(0, Tensor::from_vector(std::vector<float>{1.0f, 0.0f, 2.0f,  //
                                                       0.5f, 1e-13f, 0.001f},
                                    {2, 3}));
  rec.record(0, Tensor::from_vector(std::vector<float>{0.7f, 0.0f, 0.5f,  //
                                                       0.9f, 0.0f, 0.0f},
                                    {2, 3}));
  REQUIRE(rec.images(0) == 4);
  auto stats = rec.finalize({{1.0f, 0.5f, 1e-4f}}, {{0.0f, -1.0f, 0.3f}}, StatsThresholds{});
  REQUIRE(stats.size() == 1);
  const LayerStats& l = stats[0];
  REQUIRE(l.dead_activation == 1);
  REQUIRE(l.dead_gamma == 1);  // filter 2: |gamma| < 1e-3 although it is active (beta > 0)
  REQUIRE(l.filters[0].selectivity == Approx(0.0));
  REQUIRE(l.filters[1].selectivity == -1);
  REQUIRE(l.filters[1].dead_activation);
  REQUIRE(l.filters[2].selectivity == Approx(0.5));
  REQUIRE(l.filters[2].max_activation == 2.0f);
  REQUIRE(l.selectivity.live == 2);
  REQUIRE(l.selectivity.mean == Approx(0.25));
}

TEST_CASE("recorder rejects batches of the wrong width", "[stats]") {
  ActivationRecorder rec({{"conv1", 3}});
  REQUIRE_THROWS_WITH(rec.record(0, Tensor({2, 4})), Catch::Contains("conv1"));
}
