#include "sparsity/filter_stats.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace st {

ActivationRecorder::ActivationRecorder(std::vector<Layer> layers)
    : layers_(std::move(layers)), rows_(layers_.size()) {}

void ActivationRecorder::reset() {
  for (auto& r : rows_) r.clear();
}

void ActivationRecorder::record(int layer, const Tensor& absmax) {
  const Layer& l = layers_.at(layer);
  if (absmax.ndim() != 2 || absmax.dim(1) != l.channels || absmax.dtype() != DType::F32 ||
      absmax.device() != Device::CPU)
    throw std::invalid_argument("ActivationRecorder::record(" + l.name +
                                "): expected F32 CPU [B, " + std::to_string(l.channels) +
                                "], got " + shape_str(absmax.shape()));
  const float* p = absmax.data<float>();
  rows_[layer].insert(rows_[layer].end(), p, p + absmax.numel());
}

void ActivationRecorder::record(int layer, const Tensor& absmax,
                                const std::vector<int64_t>& columns) {
  const Layer& l = layers_.at(layer);
  const auto width = static_cast<int64_t>(columns.size());
  if (absmax.ndim() != 2 || absmax.dim(1) != width || absmax.dtype() != DType::F32 ||
      absmax.device() != Device::CPU)
    throw std::invalid_argument("ActivationRecorder::record(" + l.name +
                                "): expected F32 CPU [B, " + std::to_string(width) + "], got " +
                                shape_str(absmax.shape()));
  for (int64_t c : columns)
    if (c < 0 || c >= l.channels)
      throw std::invalid_argument("ActivationRecorder::record(" + l.name + "): channel " +
                                  std::to_string(c) + " out of range");
  const float* p = absmax.data<float>();
  std::vector<float>& rows = rows_[layer];
  for (int64_t b = 0; b < absmax.dim(0); ++b) {
    const std::size_t row = rows.size();
    rows.resize(row + l.channels, 0.0f);
    for (int64_t k = 0; k < width; ++k) rows[row + columns[k]] = p[b * width + k];
  }
}

int64_t ActivationRecorder::images(int layer) const {
  return static_cast<int64_t>(rows_.at(layer).size()) /
         std::max<int64_t>(1, layers_[layer].channels);
}

static double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = q * static_cast<double>(v.size() - 1);
  auto lo = static_cast<std::size_t>(std::floor(pos));
  std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

static SelectivitySummary summarize(const std::vector<FilterStat>& filters) {
  std::vector<double> s;
  for (const auto& f : filters)
    if (f.selectivity >= 0) s.push_back(f.selectivity);
  SelectivitySummary out;
  out.live = static_cast<int64_t>(s.size());
  if (s.empty()) return out;
  double sum = 0;
  for (double v : s) sum += v;
  out.mean = sum / static_cast<double>(s.size());
  out.p10 = quantile(s, 0.1);
  out.median = quantile(s, 0.5);
  out.p90 = quantile(s, 0.9);
  return out;
}

std::vector<LayerStats> ActivationRecorder::finalize(const std::vector<std::vector<float>>& gamma,
                                                     const std::vector<std::vector<float>>& beta,
                                                     const StatsThresholds& t) const {
  if (gamma.size() != layers_.size() || beta.size() != layers_.size())
    throw std::invalid_argument("ActivationRecorder::finalize: gamma/beta per layer expected");
  std::vector<LayerStats> out;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const int64_t c = layers_[l].channels;
    const int64_t n = images(static_cast<int>(l));
    const std::vector<float>& rows = rows_[l];
    LayerStats ls;
    ls.name = layers_[l].name;
    ls.channels = c;
    ls.filters.resize(c);
    for (int64_t f = 0; f < c; ++f) {
      FilterStat& fs = ls.filters[f];
      float mx = 0;
      for (int64_t i = 0; i < n; ++i) mx = std::max(mx, rows[i * c + f]);
      fs.max_activation = mx;
      fs.gamma = gamma[l].at(f);
      fs.beta = beta[l].at(f);
      fs.dead_activation = n > 0 && mx < t.activation;
      fs.dead_gamma = std::fabs(fs.gamma) < t.gamma;
      if (n > 0 && !fs.dead_activation) {
        // Images where the normalized activation a_f(x) / max a_f is at most the threshold.
        const double cut = t.selectivity * mx;
        int64_t quiet = 0;
        for (int64_t i = 0; i < n; ++i) quiet += rows[i * c + f] <= cut;
        fs.selectivity = static_cast<double>(quiet) / static_cast<double>(n);
      }
      ls.dead_activation += fs.dead_activation;
      ls.dead_gamma += fs.dead_gamma;
    }
    ls.selectivity = summarize(ls.filters);
    out.push_back(std::move(ls));
  }
  return out;
}

std::vector<int64_t> count_dead_by_gamma(const std::vector<std::vector<float>>& gamma,
                                         double threshold) {
  std::vector<int64_t> out;
  for (const auto& g : gamma) {
    int64_t dead = 0;
    for (float v : g) dead += std::fabs(v) < threshold;
    out.push_back(dead);
  }
  return out;
}

}  // namespace st
