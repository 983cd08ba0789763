// The paper's exact activation measurement: one eval-mode pass (BN with its running
// statistics) over a whole data set, recording a_f(x) = max over positions of |ReLU output|
// for every image and filter.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "nn/model.h"
#include "sparsity/filter_stats.h"

namespace st {

// Runs `model` in eval mode over every image of `data` (in order, no augmentation) and calls
// `on_batch(k, absmax)` for each listed layer k (an index into `layers`) and each batch, with
// absmax F32 [B, C] on the CPU: per image and channel, the max over positions of |output|.
// The listed layers must have 4-d outputs [C, H, W].
void for_each_channel_absmax(Model& model, const data::Dataset& data,
                             const data::Normalization& norm, int64_t batch_size,
                             const std::vector<int>& layers,
                             const std::function<void(std::size_t, const Tensor&)>& on_batch);

// The BN weight (gamma) and bias (beta) of every conv-BN-ReLU block, in block order.
struct BlockGammaBeta {
  std::vector<std::vector<float>> gamma, beta;
};
BlockGammaBeta block_gamma_beta(const Model& model);

// Per-filter statistics of every conv-BN-ReLU block (ActivationSource::ExactEval), measured
// by an eval-mode pass over `train` (the training set, normalized as in training).
std::vector<LayerStats> exact_activation_stats(Model& model, const data::Dataset& train,
                                               const data::Normalization& norm, int64_t batch_size,
                                               const StatsThresholds& t);

// Max over all images of a_f(x) for each listed ReLU layer (one vector per layer, in the
// order given). Keeps only the maxima, so it needs no per-image memory.
std::vector<std::vector<float>> exact_channel_maxima(Model& model, const data::Dataset& data,
                                                     const data::Normalization& norm,
                                                     int64_t batch_size,
                                                     const std::vector<int>& layers);

}  // namespace st
