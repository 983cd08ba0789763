// `sparsetrain report`: the paper's Table 1 shape over a set of run directories.
// Rows: optimizer / regularization / strength and whatever else differs between
// the runs; columns: per-layer % dead under each criterion, total % dead, test
// error, and, where an export exists, the parameters and FLOPs kept.
#pragma once

#include <cstdint>
#include <map>
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
  double test_error_pct = -1;         // at the last epoch
  double best_test_error_pct = -1;    // lowest over the epochs with a test evaluation
  double last_k_test_error_pct = -1;  // mean over the last k test evaluations
  int last_k_evaluations = 0;         // how many there were (< k when fewer were recorded)
  double val_error_pct = -1;          // validation split, at the last epoch
  // Mean selectivity of the live filters (activation_source's criterion), over all layers;
  // -1 when the run recorded none.
  double mean_selectivity = -1;
  int64_t live_filters = 0;
  int epochs = 0;
  double params_kept_pct = -1, flops_kept_pct = -1;  // from export_report.json
  std::map<std::string, std::string> config;         // every config leaf, by dotted key
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
// Setting columns: the optimizer, regularization and lambda, the decay per step (decoupled:
// lambda x lr, what the weights shrink by each step; L2: lambda as is, labelled, since it
// enters the gradient and its effect depends on the optimizer), then every config key
// whose value differs between runs that have it, or that some runs lack when nothing
// in the config explains why (a key applies only to some choices, e.g. momentum to
// SGD: its column is left out when the choice itself, optimizer.name, differs).
// Layers are in natural order (conv2 before conv10). Test error is given at the last
// epoch, at its best, and as the mean of the last `last_k` test evaluations.
ReportTable build_report(const std::vector<std::string>& run_dirs, bool skip_incomplete = false,
                         int last_k = 3);

// Mean, sample standard deviation (n - 1; 0 for one value), min and max of one figure over
// the runs of a group that recorded it (n of them).
struct Spread {
  double mean = -1, std = 0, min = -1, max = -1;
  int n = 0;
};

struct ReportGroup {
  std::vector<std::string> values;  // one per GroupedReport::group_by
  std::vector<std::string> runs;
  std::vector<Spread> figures;  // one per GroupedReport::figures
};

struct GroupedReport {
  // Setting names (as in ReportTable) or config keys, then "activation source": runs whose
  // activation criterion differs (exact_eval, train_pass) are never pooled.
  std::vector<std::string> group_by;
  std::vector<std::string>
      figures;                      // "total_dead_activation_pct", "conv1_dead_activation_pct", ...
  std::vector<ReportGroup> groups;  // in the order their first run appears
  int last_k = 3;
};

// Setting names that `--group-by auto` uses: every setting column except training.seed.
std::vector<std::string> auto_group_keys(const ReportTable& t);

// Groups the rows by the values of `keys` (setting names such as "optimizer" or any config
// key such as "training.batch_size"; a run without the key has the value "-") and aggregates
// every figure over the runs of each group. Throws std::invalid_argument naming a key no run
// has.
GroupedReport group_report(const ReportTable& t, const std::vector<std::string>& keys,
                           int last_k = 3);

std::string grouped_markdown(const GroupedReport& g);
std::string grouped_csv(const GroupedReport& g);
nlohmann::json grouped_json(const GroupedReport& g);

std::string report_markdown(const ReportTable& t);
std::string report_csv(const ReportTable& t);
nlohmann::json report_json(const ReportTable& t);

}  // namespace st
