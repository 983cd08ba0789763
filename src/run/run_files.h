// Typed readers and writers of the files in a run directory (run/run_dir.h names them). Every
// reader treats its file as hostile: types, ranges and required keys are checked, and an error
// is a RunFileError naming the file and the line or JSON path (exit code 2).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "config/experiment.h"
#include "run/run_dir.h"
#include "sparsity/activation_pass.h"
#include "sparsity/filter_stats.h"

namespace st {

class Model;

// ---- config.json -----------------------------------------------------------------------------

// The config of a run directory's config.json (data files are not checked: the run may have
// been made on another machine).
ExperimentConfig read_run_config(const std::string& run_dir);

// ---- metrics.jsonl ---------------------------------------------------------------------------

// One record per finished epoch. Required: "epoch" (>= 1, increasing from line to line). Checked
// where present: losses and accuracies are numbers (accuracies in [0, 1]), "lr" a number,
// "filters_total" a count, "channels" / "dead" / "dead_total" / "selectivity" objects of the
// shape the trainer writes. Other keys are kept as they are.
void check_metrics_record(const nlohmann::json& record, const std::string& source);

struct MetricsFile {
  std::vector<nlohmann::json> records;  // in file order
  bool torn_tail = false;               // the last line had no newline (a killed append): dropped
};

// The records of metrics.jsonl; a missing file has none. Any complete line that is not a valid
// record is refused (RunFileError naming the file and line): a resume never drops such data.
MetricsFile read_metrics(const std::string& path);

// The last record, for readers of finished epochs; RunFileError when there is none.
nlohmann::json last_metrics_record(const std::string& path);

// The records with "epoch" <= max_epoch, in order; the file is rewritten to hold exactly these
// (nothing is written when that changes nothing). A torn last line is dropped; any other bad
// line is refused as by read_metrics, and the file is then left as it is.
std::vector<nlohmann::json> truncate_metrics(const std::string& path, int max_epoch);

// ---- summary.json ----------------------------------------------------------------------------

// Required: "status" ("completed"), "epochs" (>= 1), "config_fingerprint" (a string), "params",
// "flops_per_image", "filters_total" (counts) and "final" (a metrics record or null).
void check_summary(const nlohmann::json& summary, const std::string& source);
// Checks, then writes atomically: the writer never writes what the reader refuses.
void write_summary(const std::string& path, const nlohmann::json& summary);
nlohmann::json read_summary(const std::string& path);

// ---- stats/filters_final.json ----------------------------------------------------------------

struct FilterRecord {
  int64_t index = 0;
  float max_activation = 0;  // max over images of a_f(x)
  std::optional<float> gamma, beta;
  std::optional<bool> dead_activation, dead_gamma;
  std::optional<double> selectivity;  // -1: dead by the activation criterion
  std::optional<bool> skipped;        // only in runs with sparsity.skip_dead
};

struct FilterLayerRecord {
  std::string name;      // the block's conv
  std::string bn, relu;  // empty when the file does not say
  int64_t channels = 0;
  std::optional<int64_t> dead_activation, dead_gamma;
  std::optional<SelectivitySummary> selectivity;
  std::vector<FilterRecord> filters;  // one per channel, each index once
};

// The per-filter statistics after the last epoch (docs/sparsity.md). Only "layers" and, per
// filter, "index" and "max_activation" are required; what export needs of a file written by
// hand or by an older version.
struct FiltersFinal {
  std::string source;        // "exact_eval" or "train_pass"; empty when not recorded
  std::optional<int> epoch;  // the epoch the statistics were measured after
  std::optional<double> activation_threshold, gamma_threshold, selectivity_threshold;
  std::vector<FilterLayerRecord> layers;
};

nlohmann::json to_json(const FiltersFinal& f);
FiltersFinal filters_final_from_json(const nlohmann::json& j, const std::string& source);
FiltersFinal read_filters_final(const std::string& path);
void write_filters_final(const std::string& path, const FiltersFinal& f);

// The file's content for the stats of the blocks of `model`. `computed`: per block, the channels
// the trained network computed (null: all of them; see train/filter_skipping.h).
FiltersFinal make_filters_final(const std::vector<LayerStats>& stats, const Model& model,
                                const std::string& source, int epoch, const StatsThresholds& t,
                                const BlockChannels* computed);
// to_json(make_filters_final(...)), as the trainer keeps it until it writes the file.
nlohmann::json filters_json(const std::vector<LayerStats>& stats, const Model& model,
                            const char* source, int epoch, const StatsThresholds& t,
                            const BlockChannels* computed);

}  // namespace st
