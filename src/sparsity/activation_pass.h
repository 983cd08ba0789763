// Measuring a_f(x) for every conv-BN-ReLU block of a model.
#pragma once

#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "nn/model.h"
#include "sparsity/filter_stats.h"

namespace st {

// A recorder with one layer per conv-BN-ReLU block of `model`, named after the conv.
ActivationRecorder make_block_recorder(const Model& model);

// Per block: the channels of the full network that a compacted network's block computes, in
// its channel order (see train/filter_skipping.h). Null: the network is the full one.
using BlockChannels = std::vector<std::vector<int64_t>>;

// Records the per-image channel maxima of every block's ReLU output from the
// model's last forward pass. `scratch` holds one [N, C] tensor per block on the
// model's device and is (re)allocated as needed. With `channels`, the recorder is the full
// network's and `model` a compacted one.
void record_block_maxima(const Model& model, ActivationRecorder& recorder,
                         std::vector<Tensor>& scratch, const BlockChannels* channels = nullptr);

// The paper's exact measurement: one pass over `data` with BN in eval mode
// (running statistics), no augmentation; sparsity/exact_stats.h's pass, recorded per block.
void record_exact_pass(Model& model, const data::Dataset& data, const data::Normalization& norm,
                       int64_t batch_size, ActivationRecorder& recorder,
                       const BlockChannels* channels = nullptr);

// BN gamma and beta of every block, for ActivationRecorder::finalize.
std::vector<std::vector<float>> block_bn_values(const Model& model, const char* suffix);

// finalize() with the model's current BN parameters.
std::vector<LayerStats> block_stats(const Model& model, const ActivationRecorder& recorder,
                                    const StatsThresholds& thresholds);

}  // namespace st
