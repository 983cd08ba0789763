// The step `export` and `eval` share: a stored model's dead filters removed
// (sparsity/compaction.h), with the activation maxima taken from the run's exact statistics
// where it has them and measured by an exact eval-mode pass otherwise (docs/export.md).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "export/model_source.h"
#include "nn/model.h"
#include "sparsity/compaction.h"
#include "train/experiment_data.h"

namespace st {

// Progress messages (the commands print them on stderr).
using ExportLog = std::function<void(const std::string&)>;

// Activation maxima of the conv-BN-ReLU blocks from a run's stats/filters_final.json, checked
// against the model (names and channel counts). Also returns the file's thresholds.
struct FilterStatsFile {
  ReluMaxima maxima;
  std::optional<double> activation_threshold, gamma_threshold;
  std::string source;        // "exact_eval" or "train_pass"
  std::optional<int> epoch;  // the epoch the statistics were measured after
};
FilterStatsFile read_filter_stats(const std::string& path, const Model& model);

// Where the statistics of the source's run are: DIR/stats/filters_final.json for a run, and
// for a checkpoint inside a run's checkpoints/ folder, that run's file. Empty when the source
// belongs to no run (an exported model, a checkpoint elsewhere) or the run has no such file.
std::string run_stats_path(const ModelSource& source);

// The run's statistics when they are exact (eval-mode BN) and of the checkpoint's epoch; else
// none, with the reason logged. A stats file without epochs is taken for its run's last
// checkpoint only.
std::optional<FilterStatsFile> exact_run_stats(const ModelSource& source, const Model& model,
                                               const ExportLog& log);

struct CompactionSettings {
  DeadCriterion criterion = DeadCriterion::Activation;
  std::optional<double> activation_threshold, gamma_threshold;  // default: the run's, else config
  ConstantFold fold_constant = ConstantFold::Exact;
  int64_t round_to = 1;
  int64_t batch_size = 256;  // of the exact activation pass
};

struct CompactedModel {
  CompactionPlan plan;
  std::unique_ptr<Model> model;
  // Which maxima came from the stats file and which were measured (export's report format).
  nlohmann::json activation_statistics;
};

// Plans and applies the compaction of `original` (the model of `source`) onto `backend`.
// The maxima the criterion needs come from the run's exact statistics (exact_run_stats) and,
// for the ReLUs they do not cover, from an exact eval-mode pass over `data.train` with `norm`.
CompactedModel compact_source_model(Model& original, const ModelSource& source,
                                    const ExperimentData& data, const data::Normalization& norm,
                                    const CompactionSettings& settings, Backend& backend,
                                    const ExportLog& log);

// Filters a compacted network lacks: the output channels of `full`'s convs minus those of the
// same-named convs of `compacted`.
int64_t filters_removed(const Model& full, const Model& compacted);

}  // namespace st
