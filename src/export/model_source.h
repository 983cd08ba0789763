// Where a trained model comes from for evaluation and export: a run directory (written by the
// trainer), a checkpoint, or an exported model file. All three are safetensors files in the
// checkpoint format (io/checkpoint.h) whose metadata carries the resolved experiment config
// ("config") and the input normalization ("normalization").
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "config/experiment.h"
#include "data/loader.h"
#include "io/checkpoint.h"
#include "train/experiment_data.h"

namespace st {

struct ModelSource {
  std::string run_dir;  // empty unless opened from a run directory
  std::unique_ptr<Checkpoint> checkpoint;
  ExperimentConfig config;
  std::optional<data::Normalization> normalization;  // as stored with the model
  std::string file() const { return checkpoint->path(); }
};

// DIR/checkpoints/last.safetensors with the config of DIR/config.json.
ModelSource open_run(const std::string& dir);
// A checkpoint or exported model; its metadata must hold "config".
ModelSource open_model_file(const std::string& path);

// The run's data sets, with data.path replaced by `data_path` when that is not empty.
ExperimentData load_source_data(const ModelSource& source, const std::string& data_path);

// The normalization stored with the model, else the one the config gives for `data`.
data::Normalization source_normalization(const ModelSource& source, const ExperimentData& data);

nlohmann::json normalization_json(const data::Normalization& n);

}  // namespace st
