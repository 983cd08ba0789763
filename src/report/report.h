// `sparsetrain report`: the paper's Table 1 shape over a set of run directories.
// Rows: optimizer / regularization / strength and whatever else differs between
// the runs; columns: per-layer % dead under each criterion, total % dead, test
// error, and, where an export exists, the parameters and FLOPs kept.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace st {

struct ReportRow {
  std::string run_dir;
  std::vector<std::string> settings;        // one value per ReportTable::setting_names
  std::string activation_source;            // "exact_eval" or "train_pass" (or "" if none)
  std::vector<double> dead_activation_pct;  // per layer
  std::vector<double> dead_gamma_pct;       // per layer
  double total_dead_activation_pct = -1, total_dead_gamma_pct = -1;
  double test_error_pct = -1;
  int epochs = 0;
  double params_kept_pct = -1, flops_kept_pct = -1;  // from export_report.json
};

struct ReportTable {
  std::vector<std::string> setting_names;  // "optimizer", "regularization", "lambda", ...
  std::vector<std::string> layers;
  std::vector<ReportRow> rows;
};

// Reads config.json, metrics.jsonl (last epoch) and export_report.json of each
// run. Runs whose layers differ from the first are reported with their own layers
// missing as -1. Throws std::runtime_error naming a directory that is not a run.
ReportTable build_report(const std::vector<std::string>& run_dirs);

std::string report_markdown(const ReportTable& t);
std::string report_csv(const ReportTable& t);
nlohmann::json report_json(const ReportTable& t);

}  // namespace st
