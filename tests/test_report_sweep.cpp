// The report on sweep output: columns of a mixed-optimizer grid, layer order, selectivity,
// and directories of a sweep still running.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <tuple>

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
                                                      "decay/step", "optimizer.lr",
                                                      "training.batch_size"});
  REQUIRE(t.rows[1].settings[4] == "0.05");
  REQUIRE(t.rows[2].settings[5] == "128");
}

TEST_CASE("report: keys that some runs lack without a differing choice are shown", "[report]") {
  ScratchDir dir("report-model");
  json custom = adam_config(3e-3, 32);
  custom["model"] = {{"layers", json::array({{{"kind", "conv"}, {"out", 4}}})}};
  write_sweep_run(dir / "preset", adam_config(3e-3, 32), kTwoLayers);
  write_sweep_run(dir / "custom", custom, kTwoLayers);
  ReportTable t = build_report({dir / "preset", dir / "custom"});
  REQUIRE(t.setting_names == std::vector<std::string>{"optimizer", "regularization", "lambda",
                                                      "decay/step", "model.layers", "model.preset",
                                                      "model.width"});
  REQUIRE(t.rows[0].settings[4] == "-");
  REQUIRE(t.rows[1].settings[4] == "custom");
  REQUIRE(t.rows[1].settings[5] == "-");
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
  REQUIRE_THAT(report_markdown(t), Catch::Contains("| 25.00 | 25.00 | 25.00 (1) | - | 0.457 |"));
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

TEST_CASE("report: a key some runs lack is not explained by a differing number under its prefix",
          "[report]") {
  // Runs differing in data.train_subset, one of which also lacks
  // data.augmentation.normalize: the subset size does not decide which keys apply, so the
  // normalize column must not vanish.
  ScratchDir dir("report-vanish");
  json a = adam_config(3e-3, 32), b = adam_config(3e-3, 32);
  a["data"] = {{"kind", "fashion-mnist"},
               {"train_subset", 1000},
               {"augmentation", {{"normalize", "computed"}}}};
  b["data"] = {{"kind", "fashion-mnist"}, {"train_subset", 2000}, {"augmentation", json::object()}};
  write_sweep_run(dir / "a", a, kTwoLayers);
  write_sweep_run(dir / "b", b, kTwoLayers);
  ReportTable t = build_report({dir / "a", dir / "b"});
  const auto& n = t.setting_names;
  REQUIRE(std::find(n.begin(), n.end(), "data.train_subset") != n.end());
  const auto col = std::find(n.begin(), n.end(), "data.augmentation.normalize");
  REQUIRE(col != n.end());
  REQUIRE(t.rows[0].settings[col - n.begin()] == "computed");
  REQUIRE(t.rows[1].settings[col - n.begin()] == "-");
}

TEST_CASE("report: data.path tells runs apart", "[report]") {
  ScratchDir dir("report-path");
  json a = adam_config(3e-3, 32), b = adam_config(3e-3, 32);
  a["data"] = {{"kind", "fashion-mnist"}, {"path", "data/a"}};
  b["data"] = {{"kind", "fashion-mnist"}, {"path", "data/b"}};
  write_sweep_run(dir / "a", a, kTwoLayers);
  write_sweep_run(dir / "b", b, kTwoLayers);
  ReportTable t = build_report({dir / "a", dir / "b"});
  REQUIRE(std::find(t.setting_names.begin(), t.setting_names.end(), "data.path") !=
          t.setting_names.end());
}

TEST_CASE("report: --group-by aggregates seeds into mean, std, min-max and n", "[report]") {
  ScratchDir dir("report-group");
  // Two settings (lr) x seeds: lr 1e-3 with 3 seeds, lr 3e-3 with 2.
  const std::vector<std::tuple<std::string, double, int, int>> runs = {{"a1", 1e-3, 1, 0},
                                                                       {"a2", 1e-3, 2, 1},
                                                                       {"b1", 3e-3, 1, 3},
                                                                       {"a3", 1e-3, 3, 3},
                                                                       {"b2", 3e-3, 2, 4}};
  for (const auto& [name, lr, seed, dead] : runs) {
    json c = adam_config(lr, 32);
    c["training"]["seed"] = seed;
    write_sweep_run(dir / name, c, {{"conv1", 4, dead, 4 - dead, 0.5}, {"conv2", 4, 0, 4, 0.5}});
  }
  std::vector<std::string> dirs;
  for (const auto& r : runs) dirs.push_back(dir / std::get<0>(r));
  ReportTable t = build_report(dirs);
  REQUIRE(auto_group_keys(t) == std::vector<std::string>{"optimizer", "regularization", "lambda",
                                                         "decay/step", "optimizer.lr"});
  GroupedReport g = group_report(t, auto_group_keys(t));
  REQUIRE(g.groups.size() == 2);
  const std::size_t total = 0, conv1 = 7;  // figure indices
  REQUIRE(g.figures[total] == "total_dead_activation_pct");
  REQUIRE(g.figures[conv1] == "conv1_dead_activation_pct");
  // lr 1e-3: conv1 dead 0, 1, 3 of 4 -> 0, 25, 75 %; total over 8 filters: 0, 12.5, 37.5 %.
  const ReportGroup& a = g.groups[0];
  REQUIRE(a.values[4] == "0.001");
  REQUIRE(a.runs.size() == 3);
  REQUIRE(a.figures[conv1].n == 3);
  REQUIRE(a.figures[conv1].mean == Approx(100.0 / 3));
  REQUIRE(a.figures[conv1].std ==
          Approx(std::sqrt(
              (std::pow(100.0 / 3, 2) + std::pow(25 - 100.0 / 3, 2) + std::pow(75 - 100.0 / 3, 2)) /
              2)));
  REQUIRE(a.figures[conv1].min == Approx(0.0));
  REQUIRE(a.figures[conv1].max == Approx(75.0));
  REQUIRE(a.figures[total].mean == Approx(50.0 / 3));
  const ReportGroup& b = g.groups[1];
  REQUIRE(b.runs == std::vector<std::string>{dir / "b1", dir / "b2"});
  REQUIRE(b.figures[conv1].mean == Approx(87.5));
  REQUIRE(b.figures[conv1].std == Approx(std::sqrt(2 * 12.5 * 12.5)));
  // Selectivity is recorded; validation error is not.
  REQUIRE(b.figures[6].n == 2);
  REQUIRE(b.figures[5].n == 0);

  REQUIRE(g.group_by.back() == "activation source");
  REQUIRE(a.values[5] == "exact_eval");
  REQUIRE_THAT(grouped_markdown(g),
               Catch::Contains("| 0.001 | exact_eval | 3 | 16.7 ± 19.1 (0.0–37.5) |"));
  const std::string csv = grouped_csv(g);
  REQUIRE_THAT(csv,
               Catch::StartsWith(
                   "optimizer,regularization,lambda,decay/step,optimizer.lr,activation source,n,"
                   "total_dead_activation_pct_mean,"));
  const json j = grouped_json(g);
  REQUIRE(j["groups"][1]["figures"]["conv1_dead_activation_pct"]["max"] == Approx(100.0));
  REQUIRE(j["groups"][1]["n"] == 2);

  // Grouping by the optimizer alone puts all five together; an unknown key is refused.
  REQUIRE(group_report(t, {"optimizer"}).groups.size() == 1);
  REQUIRE(group_report(t, {"training.seed"}).groups.size() == 3);
  REQUIRE_THROWS_WITH(group_report(t, {"training.sed"}), Catch::Contains("training.sed"));
}
