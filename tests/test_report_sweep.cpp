// The report on sweep output: columns of a mixed-optimizer grid, layer order, selectivity,
// and directories of a sweep still running.
#include <catch2/catch.hpp>
#include <fstream>

#include "report/report.h"
#include "run_helpers.h"

using namespace st;
using namespace st::test;
using nlohmann::json;

namespace {

// A run directory: `config` as config.json and one metrics line built from `layers`
// (name, channels, dead by activation, live selectivity mean).
struct LayerFixture {
  std::string name;
  int channels, dead, live;
  double selectivity_mean;
};

void write_sweep_run(const std::string& dir, const json& config,
                     const std::vector<LayerFixture>& layers) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << config.dump();
  json m = {{"epoch", 3}, {"test_acc", 0.75}};
  int filters = 0, dead = 0;
  for (const LayerFixture& l : layers) {
    m["channels"][l.name] = l.channels;
    m["dead"]["gamma"][l.name] = 0;
    m["dead"]["exact_eval"][l.name] = l.dead;
    m["selectivity"]["exact_eval"][l.name] = {{"live", l.live}, {"mean", l.selectivity_mean}};
    filters += l.channels;
    dead += l.dead;
  }
  m["filters_total"] = filters;
  m["dead_total"] = {{"gamma", 0}, {"exact_eval", dead}};
  std::ofstream(dir + "/metrics.jsonl") << m.dump() << "\n";
}

json sgd_config(double lr) {
  return {{"optimizer", {{"name", "sgd"}, {"lr", lr}, {"momentum", 0.9}, {"nesterov", false}}},
          {"regularization", {{"kind", "l2"}, {"lambda", 1e-3}}},
          {"model", {{"preset", "basicnet"}, {"width", 0.25}}},
          {"training", {{"batch_size", 32}}}};
}

json adam_config(double lr, int batch) {
  return {{"optimizer", {{"name", "adam"}, {"lr", lr}, {"betas", {0.9, 0.999}}}},
          {"regularization", {{"kind", "l2"}, {"lambda", 1e-3}}},
          {"model", {{"preset", "basicnet"}, {"width", 0.25}}},
          {"training", {{"batch_size", batch}}}};
}

const std::vector<LayerFixture> kTwoLayers = {{"conv1", 4, 1, 3, 0.5}, {"conv2", 4, 0, 4, 0.25}};

}  // namespace

TEST_CASE("report: a mixed-optimizer grid shows what differs, not each optimizer's own keys",
          "[report]") {
  ScratchDir dir("report-grid");
  write_sweep_run(dir / "adam", adam_config(3e-3, 32), kTwoLayers);
  write_sweep_run(dir / "sgd", sgd_config(0.05), kTwoLayers);
  write_sweep_run(dir / "adam-bs128", adam_config(3e-3, 128), kTwoLayers);
  ReportTable t = build_report({dir / "adam", dir / "sgd", dir / "adam-bs128"});
  // lr differs between runs that both have it; momentum/nesterov/betas only apply to one
  // optimizer, and optimizer.name says which.
  REQUIRE(t.setting_names == std::vector<std::string>{"optimizer", "regularization", "lambda",
                                                      "optimizer.lr", "training.batch_size"});
  REQUIRE(t.rows[1].settings[3] == "0.05");
  REQUIRE(t.rows[2].settings[4] == "128");
}

TEST_CASE("report: keys that some runs lack without a differing choice are shown", "[report]") {
  ScratchDir dir("report-model");
  json custom = adam_config(3e-3, 32);
  custom["model"] = {{"layers", json::array({{{"kind", "conv"}, {"out", 4}}})}};
  write_sweep_run(dir / "preset", adam_config(3e-3, 32), kTwoLayers);
  write_sweep_run(dir / "custom", custom, kTwoLayers);
  ReportTable t = build_report({dir / "preset", dir / "custom"});
  REQUIRE(t.setting_names == std::vector<std::string>{"optimizer", "regularization", "lambda",
                                                      "model.layers", "model.preset",
                                                      "model.width"});
  REQUIRE(t.rows[0].settings[3] == "-");
  REQUIRE(t.rows[1].settings[3] == "custom");
  REQUIRE(t.rows[1].settings[4] == "-");
}

TEST_CASE("report: layers in natural order and the live filters' mean selectivity", "[report]") {
  ScratchDir dir("report-layers");
  std::vector<LayerFixture> layers;
  for (int i = 1; i <= 11; ++i) layers.push_back({"conv" + std::to_string(i), 2, 0, 2, 0.5});
  layers[0] = {"conv1", 4, 1, 3, 0.2};   // 3 live filters at 0.2
  layers[9] = {"conv10", 2, 2, 0, 0.0};  // all dead: no weight
  write_sweep_run(dir / "run", adam_config(1e-3, 32), layers);
  ReportTable t = build_report({dir / "run"});
  REQUIRE(t.layers.size() == 11);
  REQUIRE(t.layers[1] == "conv2");
  REQUIRE(t.layers[9] == "conv10");
  REQUIRE(t.layers[10] == "conv11");
  const ReportRow& r = t.rows[0];
  REQUIRE(r.dead_activation_pct[9] == Approx(100.0));
  // 3 filters at 0.2 and 9 layers x 2 filters at 0.5.
  REQUIRE(r.live_filters == 21);
  REQUIRE(r.mean_selectivity == Approx((3 * 0.2 + 18 * 0.5) / 21));
  REQUIRE_THAT(report_markdown(t), Catch::Contains("| 25.00 | 0.457 |"));
  REQUIRE(report_json(t)["rows"][0]["mean_selectivity"].get<double>() ==
          Approx(r.mean_selectivity));
}

TEST_CASE("report: directories without a finished epoch fail, or are skipped on request",
          "[report]") {
  ScratchDir dir("report-incomplete");
  write_sweep_run(dir / "done", adam_config(1e-3, 32), kTwoLayers);
  std::filesystem::create_directories(dir / "started");
  std::ofstream(dir.str() + "/started/config.json") << adam_config(1e-3, 64).dump();
  std::ofstream(dir.str() + "/started/metrics.jsonl") << "";
  std::filesystem::create_directories(dir / "empty");

  REQUIRE_THROWS_WITH(
      build_report({dir / "done", dir / "started"}),
      Catch::Contains("started/metrics.jsonl") && Catch::Contains("no finished epoch"));
  ReportTable t = build_report({dir / "done", dir / "started", dir / "empty"}, true);
  REQUIRE(t.rows.size() == 1);
  REQUIRE(t.rows[0].run_dir == dir / "done");
  REQUIRE(t.skipped.size() == 2);
  REQUIRE_THAT(t.skipped[0], Catch::Contains("started/metrics.jsonl"));
  REQUIRE_THAT(t.skipped[1], Catch::Contains("empty/config.json"));
  REQUIRE_THROWS_WITH(build_report({dir / "empty"}, true),
                      Catch::Contains("none of the 1 directories"));
}
