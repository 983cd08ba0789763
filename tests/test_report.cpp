#include <catch2/catch.hpp>
#include <fstream>

#include "report/report.h"
#include "run_helpers.h"

using namespace st;
using namespace st::test;
using nlohmann::json;

namespace {

// A run directory with a config and one metrics line whose counts are set by hand.
void write_run(const std::string& dir, const std::string& opt, double lambda, int dead_conv1,
               int dead_conv2, double test_acc) {
  std::filesystem::create_directories(dir);
  json cfg = {{"optimizer", {{"name", opt}, {"lr", 1e-3}}},
              {"regularization", {{"kind", "l2"}, {"lambda", lambda}}},
              {"training", {{"batch_size", 32}, {"threads", 2}}},
              {"output", {{"dir", dir}}}};
  std::ofstream(dir + "/config.json") << cfg.dump();
  json m = {{"epoch", 1}, {"test_acc", 0.5}, {"filters_total", 12}};
  std::ofstream metrics(dir + "/metrics.jsonl");
  metrics << m.dump() << "\n";
  m["epoch"] = 2;
  m["test_acc"] = test_acc;
  m["channels"] = {{"conv1", 4}, {"conv2", 8}};
  m["dead"]["gamma"] = {{"conv1", dead_conv1}, {"conv2", 0}};
  m["dead"]["exact_eval"] = {{"conv1", dead_conv1}, {"conv2", dead_conv2}};
  m["dead_total"] = {{"gamma", dead_conv1}, {"exact_eval", dead_conv1 + dead_conv2}};
  metrics << m.dump() << "\n";
}

}  // namespace

TEST_CASE("report tabulates the last epoch of each run", "[report]") {
  ScratchDir dir("report");
  write_run(dir / "adam", "adam", 5e-4, 1, 6, 0.9);
  write_run(dir / "sgd", "sgd", 5e-4, 0, 0, 0.8);
  ReportTable t = build_report({dir / "adam", dir / "sgd"});
  REQUIRE(t.layers == std::vector<std::string>{"conv1", "conv2"});
  // Only the optimizer differs (threads and output are never settings).
  REQUIRE(t.setting_names ==
          std::vector<std::string>{"optimizer", "regularization", "lambda", "decay/step"});
  const ReportRow& adam = t.rows[0];
  REQUIRE(adam.settings[0] == "adam");
  REQUIRE(adam.epochs == 2);
  REQUIRE(adam.activation_source == "exact_eval");
  REQUIRE(adam.dead_activation_pct[0] == Approx(25.0));
  REQUIRE(adam.dead_activation_pct[1] == Approx(75.0));
  REQUIRE(adam.total_dead_activation_pct == Approx(100.0 * 7 / 12));
  REQUIRE(adam.dead_gamma_pct[0] == Approx(25.0));
  REQUIRE(adam.test_error_pct == Approx(10.0));
  // Epoch 1 at 50 %, epoch 2 at 90 %: best 10 % error; the last 3 evaluations are only these
  // two, mean accuracy 70 %, so 30 % error.
  REQUIRE(adam.best_test_error_pct == Approx(10.0));
  REQUIRE(adam.last_k_test_error_pct == Approx(30.0));
  REQUIRE(adam.last_k_evaluations == 2);
  REQUIRE(t.rows[1].best_test_error_pct == Approx(20.0));
  REQUIRE(t.rows[1].total_dead_activation_pct == Approx(0.0));

  const std::string md = report_markdown(t);
  REQUIRE_THAT(
      md, Catch::Contains(
              "| adam | l2 | 0.0005 | 0.0005 (L2 grad) | exact_eval | 2 | 25.0 | 75.0 | 58.3 |"));
  const std::string csv = report_csv(t);
  REQUIRE_THAT(csv, Catch::StartsWith("optimizer,regularization,lambda,decay/step,activation "
                                      "source,epochs,conv1 %dead act"));
  REQUIRE(report_json(t)["rows"][1]["settings"]["optimizer"] == "sgd");
}

TEST_CASE("report: decoupled decay per step is lambda times lr; the last k epochs", "[report]") {
  ScratchDir dir("report-decay");
  write_run(dir / "adam", "adam", 5e-4, 1, 6, 0.9);
  write_run(dir / "adamw", "adamw", 1e-2, 1, 6, 0.9);
  json cfg = json::parse(std::ifstream(dir / "adamw/config.json"));
  cfg["regularization"]["kind"] = "decoupled";
  cfg["optimizer"]["lr"] = 3e-3;
  std::ofstream(dir / "adamw/config.json") << cfg.dump();
  // Three more epochs for the AdamW run: 0.5, 0.9, then 0.6, 0.7, 0.8.
  {
    std::ofstream m(dir / "adamw/metrics.jsonl", std::ios::app);
    int epoch = 3;
    for (double acc : {0.6, 0.7, 0.8}) {
      json line = json::parse(R"({"filters_total": 12, "channels": {"conv1": 4, "conv2": 8},
        "dead": {"gamma": {"conv1": 0, "conv2": 0}}, "dead_total": {"gamma": 0}})");
      line["epoch"] = epoch++;
      line["test_acc"] = acc;
      line["val_acc"] = 0.75;
      m << line.dump() << "\n";
    }
  }
  ReportTable t = build_report({dir / "adam", dir / "adamw"}, false, 2);
  REQUIRE(t.setting_names[3] == "decay/step");
  REQUIRE(t.rows[0].settings[3] == "0.0005 (L2 grad)");
  REQUIRE(t.rows[1].settings[3] == "3e-05");
  const ReportRow& w = t.rows[1];
  REQUIRE(w.test_error_pct == Approx(20.0));
  REQUIRE(w.best_test_error_pct == Approx(10.0));
  REQUIRE(w.last_k_test_error_pct == Approx(25.0));  // mean of 0.7 and 0.8
  REQUIRE(w.last_k_evaluations == 2);
  REQUIRE(w.val_error_pct == Approx(25.0));
  REQUIRE(t.rows[0].val_error_pct < 0);
}

TEST_CASE("report names a directory that is not a run", "[report]") {
  ScratchDir dir("report-bad");
  REQUIRE_THROWS_WITH(build_report({dir.str()}), Catch::Contains(dir.str() + "/config.json"));
}
