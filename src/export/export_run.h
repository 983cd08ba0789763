// `sparsetrain export`: compacts a trained network (sparsity/compaction.h), writes it as
// safetensors and/or ONNX, and measures what changed (docs/export.md).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "export/compacted.h"
#include "export/model_source.h"
#include "nn/model.h"
#include "sparsity/compaction.h"

namespace st {

struct ExportRequest {
  std::string run_dir;     // either this ...
  std::string checkpoint;  // ... or this
  DeadCriterion criterion = DeadCriterion::Activation;
  std::optional<double> activation_threshold, gamma_threshold;  // default: the run's, else paper's
  ConstantFold fold_constant = ConstantFold::Exact;
  int64_t round_to = 1;
  bool fuse_bn = false;
  bool safetensors = true, onnx = false;
  std::string out;  // the output path; its extension (.safetensors, .onnx) is replaced per format
  std::string data_path;     // overrides the config's data.path
  int64_t batch_size = 256;  // for the evaluation and activation passes
  int64_t bench_batch = 64;  // for the throughput measurement
  bool bench = false;        // longer, repeated throughput measurement
};

// Runs the whole export and returns the report (also written as export_report.json next to
// the output). Throws std::runtime_error (or std::invalid_argument) with a clear message.
nlohmann::json run_export(const ExportRequest& request, const ExportLog& log);

// The per-layer channel table of the report: convs and linears, before and after.
nlohmann::json channel_table(const Model& before, const Model& after);

// The metadata that makes an exported file self-contained for `sparsetrain eval --model`.
nlohmann::json export_metadata(const ModelSource& source, const data::Normalization& norm,
                               const Model& original, const CompactionPlan& plan, bool fused);

}  // namespace st
