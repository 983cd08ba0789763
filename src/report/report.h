// `sparsetrain report`: the paper's Table 1 shape over a set of run directories.
// Rows: optimizer / regularization / strength and whatever else differs between
// the runs; columns: per-layer % dead under each criterion, total % dead, test
// error, and, where an export exists, the parameters and FLOPs kept.
#pragma once

#include <cstdint>
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
  // Mean selectivity of the live filters (activation_source's criterion), over all layers;
  // -1 when the run recorded none.
  double mean_selectivity = -1;
  int64_t live_filters = 0;
  int epochs = 0;
  double params_kept_pct = -1, flops_kept_pct = -1;  // from export_report.json
};

struct ReportTable {
  std::vector<std::string> setting_names;  // "optimizer", "regularization", "lambda", ...
  std::vector<std::string> layers;
  std::vector<ReportRow> rows;
  std::vector<std::string> skipped;  // "DIR: why", with skip_incomplete
};

// Reads config.json, metrics.jsonl (last epoch) and export_report.json of each
// run. Runs whose layers differ from the first are reported with their own layers
// missing as -1. Throws std::runtime_error naming a directory that is not a run, or
// one without a finished epoch; with skip_incomplete such directories are left out
// and listed in ReportTable::skipped instead (a sweep still running, or with failures).
//
// Setting columns: the optimizer, regularization and lambda, then every config key
// whose value differs between runs that have it, or that some runs lack when nothing
// in the config explains why (a key applies only to some choices, e.g. momentum to
// SGD: its column is left out when the choice itself, optimizer.name, differs).
// Layers are in natural order (conv2 before conv10).
ReportTable build_report(const std::vector<std::string>& run_dirs, bool skip_incomplete = false);

std::string report_markdown(const ReportTable& t);
std::string report_csv(const ReportTable& t);
nlohmann::json report_json(const ReportTable& t);

}  // namespace st
