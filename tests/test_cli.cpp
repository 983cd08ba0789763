#include <catch2/catch.hpp>
#include <fstream>
#include <functional>

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

namespace {

// synthetic_tiny.json with `edit` applied to its text.
std::string write_config(const ScratchDir& dir, const std::string& name,
                         const std::function<void(std::string&)>& edit) {
  std::ifstream in(test_config("synthetic_tiny.json"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  edit(text);
  std::ofstream(dir / name) << text;
  return dir / name;
}

void replace_once(std::string& text, const std::string& from, const std::string& to) {
  size_t pos = text.find(from);
  REQUIRE(pos != std::string::npos);
  text.replace(pos, from.size(), to);
}

}  // namespace

TEST_CASE("config errors found before any data loads exit 2 with the file and JSON path", "[cli]") {
  ScratchDir dir("cli-config");
  SECTION("a typo in model.layers") {
    // mnist at a path that does not exist: the model is checked first, so its error shows.
    std::string config = write_config(dir, "typo.json", [](std::string& t) {
      replace_once(t, "\"kernel\": 3, \"pad\": 1 },", "\"kernal\": 3, \"pad\": 1 },");
      replace_once(t, "\"kind\": \"synthetic\",", "\"kind\": \"mnist\", \"path\": \"nowhere\",");
      replace_once(t,
                   "\"synthetic\": { \"train_size\": 256, \"test_size\": 64, \"channels\": 3, "
                   "\"height\": 12, \"width\": 12,\n                   \"classes\": 4, "
                   "\"noise\": 0.5, \"seed\": 3 }",
                   "\"loader\": {}");
    });
    auto r = run_sparsetrain({"--config", config, "--out", dir / "run"}, dir / "log");
    INFO(r.output);
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("typo.json: model.layers[0].kernal: unknown key"));
    REQUIRE_FALSE(std::filesystem::exists(dir / "run"));
  }
  SECTION("a duplicate key") {
    std::string config = write_config(dir, "dup.json", [](std::string& t) {
      replace_once(t, "\"epochs\": 3,", "\"epochs\": 1, \"epochs\": 1000000,");
    });
    auto r = run_sparsetrain({"--config", config, "--out", dir / "run"}, dir / "log");
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("dup.json: training.epochs: duplicate key"));
  }
  SECTION("a validation split that empties a split") {
    auto r = run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--set",
                              "data.validation_split=0.001", "--out", dir / "run"},
                             dir / "log");
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("synthetic_tiny.json: data.validation_split"));
  }
  SECTION("a subset larger than the data") {
    auto r = run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--set",
                              "data.train_subset=1e12", "--out", dir / "run"},
                             dir / "log");
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("synthetic_tiny.json: data.train_subset"));
  }
  SECTION("a --set path far too deep") {
    std::string path = "a";
    for (int i = 1; i < 60000; ++i) path += ".a";
    auto r = run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--set", path + "=1",
                              "--out", dir / "run"},
                             dir / "log");
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("--set takes at most 32"));
    REQUIRE(r.output.size() < 1000);
  }
}

TEST_CASE("flag errors are readable and name the flag", "[cli]") {
  ScratchDir dir("cli-flags");
  SECTION("--threads out of range") {
    auto r = run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--threads", "-1"},
                             dir / "log");
    INFO(r.output);
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("--threads") &&
                               Catch::Contains("expected an integer in [0, 4096]"));
    REQUIRE(r.output.size() < 400);  // no 300-digit bound
  }
  SECTION("--seed out of range") {
    auto r = run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--seed", "-5"},
                             dir / "log");
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output,
                 Catch::Contains("--seed") && Catch::Contains("expected an integer >= 0"));
  }
  SECTION("an empty --out") {
    auto r =
        run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--out", ""}, dir / "log");
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("--out"));
  }
}
