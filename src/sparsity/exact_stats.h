// The paper's exact activation measurement (an eval-mode pass, BN with its running statistics,
// over a whole data set) for any list of layers, not only conv-BN-ReLU blocks: compaction also
// needs the ReLUs after residual adds. The one exact pass of the project: the trainer's
// per-block statistics (sparsity/activation_pass.h) and export's maxima are recorded from it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "nn/model.h"

namespace st {

// Runs `model` in eval mode over every image of `data` (in order, no augmentation) and calls
// `on_batch(k, absmax)` for each listed layer k (an index into `layers`) and each batch, with
// absmax F32 [B, C] on the CPU: per image and channel, the max over positions of |output|.
// The listed layers must have 4-d outputs [C, H, W].
void for_each_channel_absmax(Model& model, const data::Dataset& data,
                             const data::Normalization& norm, int64_t batch_size,
                             const std::vector<int>& layers,
                             const std::function<void(std::size_t, const Tensor&)>& on_batch);

// Max over all images of a_f(x) for each listed ReLU layer (one vector per layer, in the
// order given). Keeps only the maxima, so it needs no per-image memory.
std::vector<std::vector<float>> exact_channel_maxima(Model& model, const data::Dataset& data,
                                                     const data::Normalization& norm,
                                                     int64_t batch_size,
                                                     const std::vector<int>& layers);

}  // namespace st
