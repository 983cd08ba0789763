// Small networks with filters made dead (or constant) on purpose, for the compaction and
// export tests. A filter is made dead for every input by zeroing its conv weights, so the BN
// sees a constant, and choosing beta so that the BN output is negative.
#pragma once

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "data/synthetic.h"
#include "nn/model.h"

namespace st::testnets {

inline LayerSpec conv(const std::string& name, int64_t out, int kernel = 3, int pad = 1,
                      std::vector<std::string> inputs = {}, int stride = 1, bool bias = false) {
  LayerSpec s;
  s.kind = LayerKind::Conv;
  s.name = name;
  s.out = out;
  s.kernel = kernel;
  s.pad = pad;
  s.stride = stride;
  s.bias = bias;
  s.inputs = std::move(inputs);
  return s;
}

inline LayerSpec layer(LayerKind kind, const std::string& name,
                       std::vector<std::string> inputs = {}) {
  LayerSpec s;
  s.kind = kind;
  s.name = name;
  s.inputs = std::move(inputs);
  return s;
}

inline LayerSpec pool(LayerKind kind, const std::string& name, int kernel, int stride,
                      int pad = 0) {
  LayerSpec s = layer(kind, name);
  s.kernel = kernel;
  s.stride = stride;
  s.pad = pad;
  return s;
}

inline LayerSpec linear(const std::string& name, bool bias = true) {
  LayerSpec s = layer(LayerKind::Linear, name);
  s.out = kOutClasses;
  s.bias = bias;
  return s;
}

// conv -> bn -> relu with the usual names <prefix>conv, <prefix>bn, <prefix>relu.
inline void block(std::vector<LayerSpec>& l, const std::string& p, int64_t out, int kernel = 3,
                  int pad = 1, std::vector<std::string> inputs = {}) {
  l.push_back(conv(p + "conv", out, kernel, pad, std::move(inputs)));
  l.push_back(layer(LayerKind::BatchNorm, p + "bn"));
  l.push_back(layer(LayerKind::ReLU, p + "relu"));
}

inline void set_values(Model& m, const std::string& name, const std::vector<double>& v) {
  Tensor t = m.tensor(name);
  t.copy_from(Tensor::from_vector(v, t.shape()).to(t.dtype()));
}

inline std::vector<double> get(const Model& m, const std::string& name) {
  return m.tensor(name).to_vector_f64();
}

// Random weights and BN statistics, so that no BN is the identity, and positive betas.
inline void randomize(Model& m, uint64_t seed) {
  m.init_parameters(seed);
  std::mt19937_64 gen(seed + 1);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (const BufferView& v : m.buffer_views()) {
    std::vector<double> x = get(m, v.name);
    const bool var = v.name.find("running_var") != std::string::npos;
    const bool mean = v.name.find("running_mean") != std::string::npos;
    for (double& e : x) {
      if (var) e = 0.5 + u(gen);
      if (mean) e = u(gen) - 0.5;
    }
    set_values(m, v.name, x);
  }
  for (const ParamView& v : m.param_views()) {
    if (v.group != ParamGroup::BNWeight && v.group != ParamGroup::BNBias) continue;
    std::vector<double> x = get(m, v.name);
    // beta > 0 keeps every filter not made dead on purpose alive on any input.
    for (double& e : x) e = v.group == ParamGroup::BNWeight ? 0.5 + u(gen) : 0.2 + 0.4 * u(gen);
    set_values(m, v.name, x);
  }
}

// Makes filter f of conv `conv` feeding BN `bn` output `bn_out` for every input (its conv
// weights and bias are zeroed).
inline void set_constant_bn_output(Model& m, const std::string& conv, const std::string& bn,
                                   int64_t f, double bn_out) {
  std::vector<double> w = get(m, conv + ".weight");
  const int64_t per = static_cast<int64_t>(w.size()) / m.tensor(conv + ".weight").dim(0);
  for (int64_t t = 0; t < per; ++t) w[f * per + t] = 0;
  set_values(m, conv + ".weight", w);
  double pre = 0;
  if (m.specs()[m.layer_index(conv)].bias) {
    std::vector<double> b = get(m, conv + ".bias");
    b[f] = 0;
    set_values(m, conv + ".bias", b);
  }
  std::vector<double> gamma = get(m, bn + ".weight"), beta = get(m, bn + ".bias"),
                      mean = get(m, bn + ".running_mean"), var = get(m, bn + ".running_var");
  const double scaled =
      gamma[f] * (pre - mean[f]) / std::sqrt(var[f] + m.specs()[m.layer_index(bn)].eps);
  beta[f] = bn_out - scaled;
  set_values(m, bn + ".bias", beta);
}

// Sets gamma and beta of one BN channel.
inline void set_gamma_beta(Model& m, const std::string& bn, int64_t f, double gamma, double beta) {
  std::vector<double> g = get(m, bn + ".weight"), b = get(m, bn + ".bias");
  g[f] = gamma;
  b[f] = beta;
  set_values(m, bn + ".weight", g);
  set_values(m, bn + ".bias", b);
}

// Normal random inputs [n, C, H, W].
inline Tensor random_input(const Model& m, int64_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  const InputShape in = m.input_shape();
  std::vector<float> v(n * in.channels * in.height * in.width);
  for (float& e : v) e = d(gen);
  return Tensor::from_vector(v, {n, in.channels, in.height, in.width});
}

// max |a - b| / max |a| over the eval-mode logits of two models on the same input.
inline double relative_logit_difference(Model& a, Model& b, const Tensor& x) {
  const std::vector<double> ya = a.forward(x, false).to_vector_f64();
  const std::vector<double> yb = b.forward(x, false).to_vector_f64();
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < ya.size(); ++i) {
    diff = std::max(diff, std::fabs(ya[i] - yb[i]));
    scale = std::max(scale, std::fabs(ya[i]));
  }
  return diff / std::max(scale, 1e-30);
}

inline data::Dataset synthetic_images(const InputShape& in, int classes, int64_t size,
                                      uint64_t sample_seed) {
  data::SyntheticOptions o;
  o.size = size;
  o.channels = static_cast<int>(in.channels);
  o.height = static_cast<int>(in.height);
  o.width = static_cast<int>(in.width);
  o.classes = classes;
  o.noise = 0.3f;
  o.sample_seed = sample_seed;
  return data::make_synthetic(o);
}

}  // namespace st::testnets
