// `sparsetrain eval`: loss and accuracy of a run, checkpoint or exported model on the test set
// of its experiment config, in eval mode. A run's or checkpoint's network is evaluated compacted
// (its dead filters removed: the same outputs for less compute) unless `full` is set; an
// exported model is already compacted and is evaluated as it is.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/evaluate.h"
#include "export/compacted.h"

namespace st {

struct EvalRequest {
  std::string run, checkpoint, model;  // exactly one
  std::string device = "auto";
  int64_t batch_size = 256;
  std::string data_path;     // replaces the config's data.path
  std::string dump_outputs;  // a safetensors file for the first test images, labels and logits
  int64_t dump_count = 64;
  bool full = false;  // evaluate the stored network without removing its dead filters
};

struct EvalReport {
  EvalResult result;
  nlohmann::json json;  // `eval --json`
  std::string text;     // the two lines `eval` prints
};

// Throws std::invalid_argument for a bad request, RunFileError for a bad run directory and
// std::runtime_error for other failures.
EvalReport run_evaluation(const EvalRequest& request, const ExportLog& log);

}  // namespace st
