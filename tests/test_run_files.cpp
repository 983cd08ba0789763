// The typed readers and writers of run files (run/run_files.h) and the run-directory lock.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "run/run_files.h"
#include "run/run_lock.h"
#include "run_helpers.h"

using namespace st;
using namespace st::test;
using Catch::Contains;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A filters_final.json as the trainer writes it, by hand: two blocks of 2 and 3 filters.
nlohmann::json filters_file() {
  auto filter = [](int i, double m) {
    return nlohmann::json{{"index", i},
                          {"max_activation", m},
                          {"gamma", 0.5},
                          {"beta", -0.25},
                          {"dead_activation", m == 0},
                          {"dead_gamma", false},
                          {"selectivity", m == 0 ? -1.0 : 0.5}};
  };
  nlohmann::json sel = {{"live", 1}, {"mean", 0.5}, {"p10", 0.5}, {"median", 0.5}, {"p90", 0.5}};
  return {{"source", "exact_eval"},
          {"epoch", 3},
          {"thresholds", {{"activation", 1e-12}, {"gamma", 1e-3}, {"selectivity", 1e-3}}},
          {"layers",
           {{{"name", "conv1"},
             {"bn", "bn1"},
             {"relu", "relu1"},
             {"channels", 2},
             {"dead_activation", 1},
             {"dead_gamma", 0},
             {"selectivity", sel},
             {"filters", {filter(0, 0.0), filter(1, 2.5)}}},
            {{"name", "conv2"},
             {"bn", "bn2"},
             {"relu", "relu2"},
             {"channels", 3},
             {"dead_activation", 0},
             {"dead_gamma", 0},
             {"selectivity", sel},
             {"filters", {filter(2, 1.0), filter(0, 3.0), filter(1, 4.0)}}}}}};
}

}  // namespace

TEST_CASE("metrics.jsonl: a torn last line is dropped, any other bad line refused", "[run]") {
  ScratchDir dir("metrics");
  const std::string path = dir / "metrics.jsonl";

  write_text(path, "{\"epoch\":1}\n{\"epoch\":2}\n{\"epo");
  MetricsFile m = read_metrics(path);
  REQUIRE(m.records.size() == 2);
  REQUIRE(m.torn_tail);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{\"epoch\":1}\ngarbage\n{\"epoch\":3}\n", "line 2: not valid JSON"},
      {"{\"epoch\":1}\n\n", "line 2: not valid JSON"},
      // Strict JSON (io/json_text.h): a repeated key, and nesting a run file never has.
      {"{\"epoch\":1,\"epoch\":2}\n", "line 1: epoch: duplicate key"},
      {"{\"epoch\":1,\"x\":" + std::string(100, '[') + std::string(100, ']') + "}\n",
       "line 1: x[0][0]"},
      {"[1,2]\n", "line 1: expected a JSON object"},
      {"{\"loss\":1}\n", "line 1: epoch: missing required key"},
      {"{\"epoch\":1099511627776}\n", "line 1: epoch"},
      {"{\"epoch\":1}\n{\"epoch\":1}\n", "line 2: epoch: 1 after epoch 1"},
      {"{\"epoch\":2}\n{\"epoch\":1}\n", "line 2: epoch"},
      {"{\"epoch\":1,\"test_acc\":3}\n", "line 1: test_acc"},
      {"{\"epoch\":1,\"train_loss\":\"x\"}\n", "line 1: train_loss"},
      {"{\"epoch\":1,\"dead\":{\"gamma\":{\"conv1\":-1}}}\n", "line 1: dead.gamma.conv1"},
      {"{\"epoch\":1,\"dead_total\":{\"gamma\":1.5}}\n", "line 1: dead_total.gamma"},
      {"{\"epoch\":1,\"selectivity\":{\"exact_eval\":{\"c\":{\"live\":1}}}}\n",
       "line 1: selectivity.exact_eval.c.mean"},
  };
  for (const auto& [text, message] : bad) {
    INFO(text);
    write_text(path, text);
    REQUIRE_THROWS_AS(read_metrics(path), RunFileError);
    REQUIRE_THROWS_WITH(read_metrics(path), Contains(path + ": " + message));
    // A resume's truncation refuses it too, and leaves the file as it was.
    REQUIRE_THROWS_AS(truncate_metrics(path, 0), RunFileError);
    REQUIRE(slurp(path) == text);
  }
}

TEST_CASE("metrics.jsonl: truncation keeps the earlier epochs byte for byte", "[run]") {
  ScratchDir dir("metrics-trunc");
  const std::string path = dir / "metrics.jsonl";
  const std::string two = "{\"epoch\":1,\"lr\":0.1}\n{\"epoch\":2,\"lr\":0.1}\n";
  write_text(path, two + "{\"epoch\":3,\"lr\":0.1}\n{\"epoch\":4");
  REQUIRE(truncate_metrics(path, 2).size() == 2);
  REQUIRE(slurp(path) == two);
  REQUIRE(truncate_metrics(path, 7).size() == 2);
  REQUIRE(slurp(path) == two);
  REQUIRE_THROWS_WITH(last_metrics_record(dir / "none.jsonl"), Contains("does not exist"));
  write_text(path, "");
  REQUIRE_THROWS_WITH(last_metrics_record(path), Contains("no finished epoch"));
}

TEST_CASE("filters_final.json: written and read back, hostile files refused", "[run]") {
  ScratchDir dir("filters");
  const std::string path = dir / "filters_final.json";
  const nlohmann::json hand = filters_file();
  write_text(path, hand.dump());
  const FiltersFinal f = read_filters_final(path);
  REQUIRE(f.source == "exact_eval");
  REQUIRE(f.epoch == 3);
  REQUIRE(f.gamma_threshold == 1e-3);
  REQUIRE(f.layers.size() == 2);
  REQUIRE(f.layers[1].relu == "relu2");
  REQUIRE(f.layers[1].filters[0].index == 2);
  REQUIRE(f.layers[1].filters[0].max_activation == 1.0f);
  REQUIRE(f.layers[0].filters[0].selectivity == -1.0);
  REQUIRE(f.layers[0].selectivity->live == 1);
  // The writer's JSON is the hand-written file's.
  REQUIRE(to_json(f) == hand);
  write_filters_final(dir / "again.json", f);
  REQUIRE(nlohmann::json::parse(slurp(dir / "again.json")) == hand);

  // A minimal file (what an older version or a user writes) is accepted.
  nlohmann::json minimal = {
      {"layers",
       {{{"name", "c"}, {"channels", 1}, {"filters", {{{"index", 0}, {"max_activation", 1}}}}}}}};
  write_text(path, minimal.dump());
  REQUIRE(read_filters_final(path).source.empty());

  auto refused = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& what) {
    nlohmann::json j = filters_file();
    edit(j);
    write_text(path, j.dump());
    INFO(what);
    REQUIRE_THROWS_AS(read_filters_final(path), RunFileError);
    REQUIRE_THROWS_WITH(read_filters_final(path), Contains(path + ": " + what));
  };
  refused([](auto& j) { j.erase("layers"); }, "layers: missing required key");
  refused([](auto& j) { j["layers"] = 3; }, "layers: expected an array");
  refused([](auto& j) { j["source"] = "guess"; }, "source");
  refused([](auto& j) { j["epoch"] = 1099511627776; }, "epoch");
  refused([](auto& j) { j["thresholds"]["gamma"] = -1; }, "thresholds.gamma");
  refused([](auto& j) { j["layers"][1]["name"] = "conv1"; },
          "layers[1].name: 'conv1' is listed twice");
  refused([](auto& j) { j["layers"][0]["channels"] = 0; }, "layers[0].channels");
  refused([](auto& j) { j["layers"][0]["channels"] = 1; }, "layers[0].filters: 2 entries for 1");
  refused([](auto& j) { j["layers"][1]["filters"][0]["index"] = 3; }, "layers[1].filters[0].index");
  refused([](auto& j) { j["layers"][1]["filters"][0]["index"] = 0; },
          "layers[1].filters[1].index: 0 is listed twice");
  refused([](auto& j) { j["layers"][0]["filters"][1]["max_activation"] = -1; },
          "layers[0].filters[1].max_activation");
  refused([](auto& j) { j["layers"][0]["filters"][1]["max_activation"] = 1e300; },
          "layers[0].filters[1].max_activation");
  refused([](auto& j) { j["layers"][0]["filters"][1].erase("max_activation"); },
          "layers[0].filters[1].max_activation: missing required key");
  refused([](auto& j) { j["layers"][0]["filters"][1]["skipped"] = "no"; },
          "layers[0].filters[1].skipped");
  refused([](auto& j) { j["layers"][0]["dead_activation"] = 3; }, "layers[0].dead_activation");

  write_text(path, "{\"layers\": [");
  REQUIRE_THROWS_WITH(read_filters_final(path), Contains(path + ": not valid JSON"));
  REQUIRE_THROWS_WITH(read_filters_final(dir / "missing.json"), Contains("does not exist"));

  // The writer refuses what the reader would, and leaves no file.
  FiltersFinal bad = f;
  bad.layers[0].filters[1].index = 7;
  REQUIRE_THROWS_AS(write_filters_final(dir / "bad.json", bad), RunFileError);
  REQUIRE_FALSE(std::filesystem::exists(dir / "bad.json"));
}

TEST_CASE("summary.json: the writer checks what the reader checks", "[run]") {
  ScratchDir dir("summary");
  const nlohmann::json good = {
      {"status", "completed"}, {"run_dir", "r"},
      {"epochs", 3},           {"config_fingerprint", "0123"},
      {"params", 10},          {"flops_per_image", 20},
      {"filters_total", 4},    {"final", {{"epoch", 3}, {"test_acc", 0.5}}}};
  write_summary(dir / "summary.json", good);
  REQUIRE(read_summary(dir / "summary.json") == good);
  const std::vector<std::pair<std::string, nlohmann::json>> bad = {
      {"status", "done"}, {"epochs", 0}, {"params", -1}, {"config_fingerprint", 5}};
  for (const auto& [key, value] : bad) {
    nlohmann::json j = good;
    j[key] = value;
    INFO(key);
    REQUIRE_THROWS_WITH(write_summary(dir / "bad.json", j), Contains("bad.json: " + key));
    REQUIRE_FALSE(std::filesystem::exists(dir / "bad.json"));
    write_text(dir / "hand.json", j.dump());
    REQUIRE_THROWS_WITH(read_summary(dir / "hand.json"), Contains("hand.json: " + key));
  }
  nlohmann::json j = good;
  j["final"]["test_acc"] = 2;
  REQUIRE_THROWS_WITH(write_summary(dir / "bad.json", j), Contains("final: test_acc"));
}

TEST_CASE("run lock: one holder at a time, released with the holder", "[run]") {
  ScratchDir dir("lock");
  const std::string run = dir / "run";
  {
    RunLock first = RunLock::acquire(run);  // creates the directory
    REQUIRE(first.held());
    REQUIRE(std::filesystem::is_directory(run));
    // flock conflicts between open file descriptions, so a second open in this process is
    // refused as another process would be.
    REQUIRE_THROWS_AS(RunLock::acquire(run), RunLockedError);
    REQUIRE_THROWS_WITH(RunLock::acquire(run), Contains(run + ": the run directory is in use") &&
                                                   Contains("pid " + std::to_string(::getpid())));
    RunLock moved = std::move(first);
    REQUIRE_FALSE(first.held());
    REQUIRE_THROWS_AS(RunLock::acquire(run), RunLockedError);
  }
  REQUIRE(RunLock::acquire(run).held());
}
