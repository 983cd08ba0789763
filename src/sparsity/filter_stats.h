// Dead-filter statistics under the paper's definitions (docs/sparsity.md).
//
// For filter f of a conv-BN-ReLU block and image x, a_f(x) = max over positions of
// |h_f(x)| (h after BN and ReLU). Then
//   activation criterion: f is dead if a_f(x) < threshold (1e-12) for every image;
//   BN-scale criterion:   f is dead if |gamma_f| < gamma_threshold (1e-3);
//   selectivity(f):       fraction of images with a_f(x) / max_x' a_f(x') <= 1e-3
//                         (undefined for a dead filter).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace st {

struct StatsThresholds {
  double activation = 1e-12;
  double gamma = 1e-3;
  double selectivity = 1e-3;
};

struct FilterStat {
  float max_activation = 0;  // max over images of a_f(x)
  float gamma = 0;
  float beta = 0;
  bool dead_activation = false;
  bool dead_gamma = false;
  double selectivity = -1;  // -1 when the filter is dead by the activation criterion
};

struct SelectivitySummary {
  int64_t live = 0;  // filters with a defined selectivity
  double mean = 0, p10 = 0, median = 0, p90 = 0;
};

struct LayerStats {
  std::string name;
  int64_t channels = 0;
  int64_t dead_activation = 0;
  int64_t dead_gamma = 0;
  SelectivitySummary selectivity;
  std::vector<FilterStat> filters;
};

// Collects a_f(x) for every image and filter of every block. Rows are kept so
// that selectivity, which needs each filter's overall maximum, is exact.
class ActivationRecorder {
 public:
  struct Layer {
    std::string name;
    int64_t channels = 0;
  };
  explicit ActivationRecorder(std::vector<Layer> layers);

  void reset();
  // absmax: F32 [B, C] on the CPU, the per-image maxima of one batch for `layer`.
  void record(int layer, const Tensor& absmax);
  // The same for a network with only some of the layer's channels: absmax is [B, columns.size()]
  // and its column k is channel columns[k]; the other channels record 0 (a removed filter's
  // output is 0 by construction).
  void record(int layer, const Tensor& absmax, const std::vector<int64_t>& columns);
  int64_t images(int layer) const;
  const std::vector<Layer>& layers() const { return layers_; }

  // gamma/beta per layer (BN weight and bias), same order as the layers.
  std::vector<LayerStats> finalize(const std::vector<std::vector<float>>& gamma,
                                   const std::vector<std::vector<float>>& beta,
                                   const StatsThresholds& t) const;

 private:
  std::vector<Layer> layers_;
  std::vector<std::vector<float>> rows_;  // per layer: images x channels
};

// The BN-scale criterion alone (no activations needed).
std::vector<int64_t> count_dead_by_gamma(const std::vector<std::vector<float>>& gamma,
                                         double threshold);

}  // namespace st
