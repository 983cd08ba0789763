// The datasets an experiment config names, loaded and split as it says.
#pragma once

#include <optional>

#include "config/experiment.h"
#include "data/dataset.h"
#include "data/loader.h"

namespace st {

struct ExperimentData {
  data::Dataset train;
  std::optional<data::Dataset> validation;  // when data.validation_split > 0
  std::optional<data::Dataset> test;        // absent for an image folder without test/
  data::Normalization normalization;        // applied to every split
};

// Loads the training and test sets, applies train_subset and validation_split
// (both seeded), and resolves the normalization (given, computed on the training
// set, or none). Errors name the path and the config key.
ExperimentData load_experiment_data(const DataConfig& config);

// Loader options for the training set (shuffled, augmented) or an evaluation set.
data::LoaderOptions train_loader_options(const ExperimentConfig& config,
                                         const data::Normalization& norm);
data::LoaderOptions eval_loader_options(int64_t batch_size, const data::Normalization& norm);

}  // namespace st
