#include <catch2/catch.hpp>
#include <fstream>

#include "run_helpers.h"

using namespace st::test;

TEST_CASE("help documents the training flags", "[cli]") {
  ScratchDir dir("cli-help");
  auto r = run_sparsetrain({"--help"}, dir / "log");
  REQUIRE(r.exit_code == 0);
  for (const char* flag : {"--config", "--set", "--out", "--device", "--resume", "--seed",
                           "--threads", "--quiet", "report"})
    REQUIRE_THAT(r.output, Catch::Contains(flag));
}

TEST_CASE("bad usage and bad configs exit with code 2 and say where", "[cli]") {
  ScratchDir dir("cli-bad");
  SECTION("nothing to do") {
    REQUIRE(run_sparsetrain({}, dir / "log").exit_code == 2);
  }
  SECTION("unknown flag") {
    REQUIRE(run_sparsetrain({"--confg", "x.json"}, dir / "log").exit_code == 2);
  }
  SECTION("missing config file") {
    auto r = run_sparsetrain({"--config", dir / "missing.json"}, dir / "log");
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("missing.json"));
  }
  SECTION("unknown key, with a suggestion") {
    auto r = run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--set",
                              "optimizer.learning_rate=0.1", "--out", dir / "run"},
                             dir / "log");
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("optimizer.learning_rate"));
  }
  SECTION("wrong type through an override") {
    auto r = run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--set",
                              "optimizer.lr=fast", "--out", dir / "run"},
                             dir / "log");
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("optimizer.lr"));
  }
  SECTION("an existing run is not overwritten") {
    REQUIRE(run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--set",
                             "training.epochs=1", "--out", dir / "run", "--quiet"},
                            dir / "log")
                .exit_code == 0);
    auto r = run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--out", dir / "run"},
                             dir / "log2");
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("--resume"));
  }
}

// A file read back that is malformed is the user's input: exit 2 (docs/reliability.md).
TEST_CASE("a corrupt checkpoint on resume exits with code 2", "[cli]") {
  ScratchDir dir("cli-runtime");
  REQUIRE(run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--set",
                           "training.epochs=1", "--out", dir / "run", "--quiet"},
                          dir / "log")
              .exit_code == 0);
  std::ofstream(dir / "run/checkpoints/last.safetensors", std::ios::trunc) << "not a checkpoint";
  auto r = run_sparsetrain({"--resume", dir / "run", "--set", "training.epochs=2"}, dir / "log2");
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.output, Catch::Contains("last.safetensors"));
}

TEST_CASE("training prints one line per epoch with the dead-filter counts", "[cli]") {
  ScratchDir dir("cli-train");
  auto r = run_sparsetrain({"train", "--config", test_config("synthetic_tiny.json"), "--out",
                            dir / "run", "--seed", "9", "--threads", "1"},
                           dir / "log");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.output, Catch::Contains("epoch   3/3"));
  REQUIRE_THAT(r.output, Catch::Contains("dead[exact_eval]"));
  REQUIRE_THAT(r.output, Catch::Contains("dead[gamma]"));
  auto config = read_json(dir / "run/config.json");
  REQUIRE(config["training"]["seed"] == 9);
  REQUIRE(config["training"]["threads"] == 1);
}
