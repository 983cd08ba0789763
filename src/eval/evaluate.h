// Eval-mode evaluation: loss and accuracy on a data set, side-by-side comparison of two
// networks that should compute the same function, and inference throughput. The one
// evaluation of the project: the trainer's per-epoch test and validation figures, `eval` and
// `export` all use it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <utility>

#include "data/dataset.h"
#include "data/loader.h"
#include "nn/model.h"

namespace st {

struct EvalResult {
  double loss = 0;  // mean softmax cross-entropy
  int64_t correct = 0;
  int64_t images = 0;
  double accuracy() const { return images ? static_cast<double>(correct) / images : 0.0; }
};

EvalResult evaluate(Model& model, const data::Dataset& data, const data::Normalization& norm,
                    int64_t batch_size);

struct Comparison {
  EvalResult a, b;
  double max_abs_logit_diff = 0;
  double max_abs_logit = 0;        // of model a, the scale for a relative difference
  int64_t prediction_changes = 0;  // images whose argmax differs
};

// Runs both models on every image of `data` (eval mode) and compares their logits.
Comparison compare_models(Model& a, Model& b, const data::Dataset& data,
                          const data::Normalization& norm, int64_t batch_size);

struct Throughput {
  int64_t batch = 0;
  double images_per_second = 0;  // the best of the repeats
};

// Eval-mode forward passes on a random batch, for at least `min_seconds` per repeat; the best
// repeat counts. The two models are timed in turns, so that a change in machine load during
// the measurement hits both alike.
std::pair<Throughput, Throughput> measure_throughput_pair(Model& a, Model& b, int64_t batch,
                                                          double min_seconds, int repeats);

nlohmann::json eval_json(const EvalResult& r);

}  // namespace st
