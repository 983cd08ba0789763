// The epoch loop: config -> data + model + optimizer -> epochs -> metrics,
// statistics and checkpoints in a run directory. Resumes exactly.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/experiment.h"
#include "nn/layer_spec.h"

namespace st {

class Model;

struct TrainRequest {
  std::string config_path;             // may be empty when resuming (the run's config is used)
  std::vector<std::string> overrides;  // "key.path=value", applied before validation
  std::string out_dir;                 // empty: output.dir of the config
  std::string resume_dir;              // continue this run from its last checkpoint
  bool force = false;                  // resume despite a changed config; overwrite an existing run
  bool quiet = false;
  // Called on the freshly initialized model of a new run (not on resume), before training:
  // for tests and tools that start from a prepared network (e.g. filters forced dead).
  std::function<void(Model&)> prepare_model;
};

struct TrainResult {
  std::string run_dir;
  nlohmann::json summary;
};

// Throws ConfigError for a bad config or request (exit code 2) and other
// exceptions for runtime failures.
TrainResult run_training(const TrainRequest& request);

// The layer list a model config describes.
std::vector<LayerSpec> model_layers(const ModelConfig& config);

}  // namespace st
