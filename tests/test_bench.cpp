// `sparsetrain bench` through the binary: the modes it offers and the flags it refuses.
#include <algorithm>
#include <catch2/catch.hpp>

#include "bench/bench.h"
#include "run_helpers.h"

using namespace st;
using namespace st::test;

namespace {

// A few small steps; `extra` flags replace the defaults they name.
std::vector<std::string> small_bench(const std::vector<std::string>& extra) {
  std::vector<std::pair<std::string, std::string>> flags = {
      {"--width", "0.25"}, {"--batch", "8"}, {"--size", "8"},
      {"--warmup", "1"},   {"--steps", "2"}, {"--threads", "2"}};
  std::vector<std::string> tail;
  for (std::size_t i = 0; i < extra.size(); ++i) {
    const bool valued = i + 1 < extra.size() && extra[i + 1].rfind("--", 0) != 0;
    auto it = std::find_if(flags.begin(), flags.end(),
                           [&](const auto& f) { return f.first == extra[i]; });
    if (it != flags.end() && valued) {
      it->second = extra[++i];
    } else {
      tail.push_back(extra[i]);
      if (valued) tail.push_back(extra[++i]);
    }
  }
  std::vector<std::string> a = {"bench", "--json"};
  for (const auto& [flag, value] : flags) a.insert(a.end(), {flag, value});
  a.insert(a.end(), tail.begin(), tail.end());
  return a;
}

}  // namespace

TEST_CASE("bench times loader-fed and device-resident steps", "[bench]") {
  ScratchDir dir("bench");
  for (const bool resident : {false, true}) {
    INFO("resident " << resident);
    const ProcessResult r = run_sparsetrain(
        small_bench(resident ? std::vector<std::string>{"--resident"} : std::vector<std::string>{}),
        dir / "bench.log");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const nlohmann::json j = nlohmann::json::parse(r.output);
    REQUIRE(j["data"] == (resident ? "resident" : "loader"));
    REQUIRE(j["precision"] == "fp32");
    REQUIRE(j["steps"] == 2);
    REQUIRE(j["images"] == 16);
    REQUIRE(std::isfinite(j["loss_first"].get<double>()));
  }
  // One epoch of 24 images in batches of 8, from resident batches.
  const ProcessResult e =
      run_sparsetrain(small_bench({"--resident", "--epoch", "24"}), dir / "epoch.log");
  INFO(e.output);
  REQUIRE(e.exit_code == 0);
  REQUIRE(nlohmann::json::parse(e.output)["steps"] == 3);
}

TEST_CASE("bench refuses flags it cannot honour, naming them, with exit 2", "[bench]") {
  ScratchDir dir("bench-bad");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--precision", "tf32", "--device", "cpu"}, "--precision tf32"},
      {{"--precision", "fp16"}, "--precision"},
      {{"--batch", "1000000000"}, "--batch"},
      {{"--size", "4096", "--batch", "1024"}, "per batch"},
      {{"--epoch", "100000000", "--size", "256"}, "synthetic images"},
  };
  for (const auto& [flags, named] : cases) {
    const ProcessResult r = run_sparsetrain(small_bench(flags), dir / "bad.log");
    INFO(r.output);
    REQUIRE(r.exit_code == 2);
    REQUIRE(r.output.find(named) != std::string::npos);
  }
  // The option check on its own: every problem is reported, each naming its flag.
  BenchOptions o;
  o.batch = 0;
  o.steps = 0;
  const std::vector<std::string> errors = bench_option_errors(o);
  REQUIRE(errors.size() == 2);
  REQUIRE(errors[0].find("--batch") != std::string::npos);
  REQUIRE(errors[1].find("--steps") != std::string::npos);
  REQUIRE(bench_option_errors(BenchOptions{}).empty());
}
