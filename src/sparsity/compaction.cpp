#include "sparsity/compaction.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>

#include "nn/layer_kinds.h"

namespace st {

const char* dead_criterion_name(DeadCriterion c) {
  switch (c) {
    case DeadCriterion::Activation:
      return "activation";
    case DeadCriterion::Gamma:
      return "gamma";
    case DeadCriterion::Both:
      return "both";
  }
  return "?";
}

DeadCriterion dead_criterion_from_name(const std::string& name) {
  if (name == "activation") return DeadCriterion::Activation;
  if (name == "gamma") return DeadCriterion::Gamma;
  if (name == "both") return DeadCriterion::Both;
  throw std::invalid_argument("unknown dead-filter criterion '" + name +
                              "' (expected activation, gamma or both)");
}

int CompactionPlan::group_read_by(const Model& model, int layer) const {
  const int j = model.layer_inputs(layer).at(0);
  return j < 0 ? input_group : group_of.at(j);
}

namespace {

ChannelFlow flow(const Model& m, int layer) {
  return layer_kind_info(m.specs()[layer].kind).channels;
}

// Convs and linears: they create new channels (or features) from the group they read.
bool creates_channels(const Model& m, int layer) {
  return !keeps_channels(m.specs()[layer].kind);
}

std::string layer_label(const Model& m, int i) {
  return "layer '" + m.specs()[i].name + "' (" + layer_kind_name(m.specs()[i].kind) + ")";
}

class UnionFind {
 public:
  explicit UnionFind(int n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0); }
  int find(int a) {
    while (parent_[a] != a) a = parent_[a] = parent_[parent_[a]];
    return a;
  }
  void unite(int a, int b) {
    a = find(a);
    b = find(b);
    if (a != b) parent_[std::max(a, b)] = std::min(a, b);
  }

 private:
  std::vector<int> parent_;
};

// What is known about one channel of one tensor: a constant for every input image, or nothing.
struct ChannelValue {
  bool known = false;
  double k = 0;
  bool approximate = false;
  std::string why;
};
using Values = std::vector<ChannelValue>;

struct BnParams {
  std::vector<double> gamma, beta, mean, var;
  double eps = 1e-5;
};

BnParams bn_params(const Model& m, int layer) {
  const std::string& n = m.specs()[layer].name;
  return {m.tensor(n + ".weight").to_vector_f64(), m.tensor(n + ".bias").to_vector_f64(),
          m.tensor(n + ".running_mean").to_vector_f64(),
          m.tensor(n + ".running_var").to_vector_f64(), m.specs()[layer].eps};
}

// Builds the groups, their producers and readers, and whether each can be compacted.
void build_groups(const Model& m, CompactionPlan& plan) {
  const int n = static_cast<int>(m.specs().size());
  const int input_node = n;
  UnionFind uf(n + 1);
  for (int i = 0; i < n; ++i) {
    if (!keeps_channels(m.specs()[i].kind)) continue;
    for (int j : m.layer_inputs(i)) uf.unite(i, j < 0 ? input_node : j);
  }
  std::map<int, int> id_of_root;
  auto group_id = [&](int node) {
    auto [it, inserted] = id_of_root.emplace(uf.find(node), static_cast<int>(plan.groups.size()));
    if (inserted) plan.groups.emplace_back();
    return it->second;
  };
  plan.input_group = group_id(input_node);
  plan.groups[plan.input_group].holds_input = true;
  plan.groups[plan.input_group].channels = m.input_shape().channels;
  plan.group_of.assign(n, 0);
  for (int i = 0; i < n; ++i) {
    const int g = group_id(i);
    plan.group_of[i] = g;
    ChannelGroup& grp = plan.groups[g];
    grp.layers.push_back(i);
    if (creates_channels(m, i)) {
      grp.producers.push_back(i);
      grp.channels = m.output_shape(i)[0];
    }
  }
  for (int i = 0; i < n; ++i)
    if (creates_channels(m, i)) plan.groups[plan.group_read_by(m, i)].readers.push_back(i);
  for (ChannelGroup& g : plan.groups) {
    bool only_convs = !g.producers.empty();
    for (int p : g.producers) only_convs = only_convs && flow(m, p) == ChannelFlow::Mix;
    if (g.holds_input)
      g.fixed_reason = "holds the model input";
    else if (!only_convs)
      g.fixed_reason = "produced by a linear layer";
    else if (std::find(g.layers.begin(), g.layers.end(), n - 1) != g.layers.end())
      g.fixed_reason = "holds the network output";
    else if (g.readers.empty())
      g.fixed_reason = "read by no conv or linear layer";
    g.compactable = g.fixed_reason.empty();
  }
}

void check_maxima(const Model& m, const CompactionOptions& o, const ReluMaxima& maxima) {
  for (const auto& [name, values] : maxima) {
    const int i = m.layer_index(name);  // throws for an unknown name
    if (m.specs()[i].kind != LayerKind::ReLU)
      throw std::invalid_argument("activation statistics for " + layer_label(m, i) +
                                  ": not a ReLU layer");
    const Shape& s = m.output_shape(i);
    if (s.size() != 3 || static_cast<int64_t>(values.size()) != s[0])
      throw std::invalid_argument("activation statistics for " + layer_label(m, i) + ": " +
                                  std::to_string(values.size()) + " channels, its output is " +
                                  shape_str(s));
  }
  if (o.criterion == DeadCriterion::Gamma) return;
  for (const ConvBNReLU& b : m.conv_bn_relu_blocks())
    if (!maxima.count(m.specs()[b.relu].name))
      throw std::invalid_argument("criterion " + std::string(dead_criterion_name(o.criterion)) +
                                  " needs activation statistics for " + layer_label(m, b.relu) +
                                  " (block '" + b.name + "')");
}

class ValueAnalysis {
 public:
  ValueAnalysis(const Model& m, const CompactionOptions& o, const ReluMaxima& maxima)
      : m_(m), o_(o), maxima_(maxima) {
    for (const ConvBNReLU& b : m.conv_bn_relu_blocks()) block_bn_of_relu_[b.relu] = b.bn;
  }

  // Values of every layer's output, in model order.
  std::vector<Values> run() {
    const int n = static_cast<int>(m_.specs().size());
    values_.resize(n);
    for (int i = 0; i < n; ++i) values_[i] = layer_values(i);
    return std::move(values_);
  }

 private:
  Values input_values(int layer, int k) const {
    const int j = m_.layer_inputs(layer).at(k);
    if (j >= 0) return values_[j];
    return Values(m_.input_shape().channels);
  }
  int64_t out_channels(int i) const { return m_.output_shape(i)[0]; }

  Values layer_values(int i) {
    switch (flow(m_, i)) {
      case ChannelFlow::Mix:
      case ChannelFlow::Features:
        return Values(out_channels(i));
      case ChannelFlow::Affine:
        return batchnorm(i);
      case ChannelFlow::Rectify:
        return relu(i);
      case ChannelFlow::Average:
        return avgpool(i);
      case ChannelFlow::Sum:
        return add(i);
      case ChannelFlow::Same:
        return input_values(i, 0);
    }
    throw std::logic_error("compaction: " + layer_label(m_, i) + ": unknown channel flow");
  }

  Values batchnorm(int i) {
    Values v = input_values(i, 0);
    const BnParams p = bn_params(m_, i);
    for (std::size_t c = 0; c < v.size(); ++c) {
      const double scale = p.gamma[c] / std::sqrt(p.var[c] + p.eps);
      if (v[c].known) {
        v[c].k = (v[c].k - p.mean[c]) * scale + p.beta[c];
      } else if (o_.criterion == DeadCriterion::Gamma &&
                 std::fabs(p.gamma[c]) < o_.gamma_threshold) {
        v[c] = {true, p.beta[c], p.gamma[c] != 0.0,
                "gamma: |gamma| " + std::to_string(std::fabs(p.gamma[c])) + " at " +
                    m_.specs()[i].name};
      }
    }
    return v;
  }

  Values relu(int i) {
    Values v = input_values(i, 0);
    for (auto& c : v)
      if (c.known) c.k = std::max(c.k, 0.0);
    if (o_.criterion == DeadCriterion::Gamma) return v;
    auto it = maxima_.find(m_.specs()[i].name);
    if (it == maxima_.end()) return v;
    const auto block = block_bn_of_relu_.find(i);
    if (o_.criterion == DeadCriterion::Both && block == block_bn_of_relu_.end()) return v;
    std::vector<double> gamma;
    if (o_.criterion == DeadCriterion::Both)
      gamma = m_.tensor(m_.specs()[block->second].name + ".weight").to_vector_f64();
    for (std::size_t c = 0; c < v.size(); ++c) {
      if (!(it->second[c] < o_.activation_threshold)) continue;
      if (o_.criterion == DeadCriterion::Both && !(std::fabs(gamma[c]) < o_.gamma_threshold))
        continue;
      v[c] = {true, 0.0, false,
              std::string(o_.criterion == DeadCriterion::Both ? "both" : "activation") +
                  ": dead at " + m_.specs()[i].name};
    }
    return v;
  }

  // With zero padding counted in the divisor, a constant plane is not constant at the borders.
  Values avgpool(int i) {
    Values v = input_values(i, 0);
    if (m_.specs()[i].pad == 0) return v;
    for (auto& c : v) {
      if (!c.known || c.k == 0.0) continue;
      if (o_.fold_constant == ConstantFold::Approximate) {
        c.approximate = true;
      } else {
        c = {};
      }
    }
    return v;
  }

  Values add(int i) {
    Values a = input_values(i, 0);
    const Values b = input_values(i, 1);
    for (std::size_t c = 0; c < a.size(); ++c) {
      if (!(a[c].known && b[c].known)) {
        a[c] = {};
        continue;
      }
      a[c].k += b[c].k;
      a[c].approximate = a[c].approximate || b[c].approximate;
      if (a[c].why != b[c].why) a[c].why += "; " + b[c].why;
    }
    return a;
  }

  const Model& m_;
  const CompactionOptions& o_;
  const ReluMaxima& maxima_;
  std::map<int, int> block_bn_of_relu_;
  std::vector<Values> values_;
};

// The removed channel when channel c of group g holds a constant at every reader's input.
std::optional<RemovedChannel> removal(const Model& m, const CompactionPlan& plan,
                                      const std::vector<Values>& values, const ChannelGroup& g,
                                      int64_t c) {
  RemovedChannel r;
  r.index = c;
  std::set<std::string> reasons;
  for (int reader : g.readers) {
    const int j = m.layer_inputs(reader).at(0);
    const ChannelValue& v = values.at(j)[c];
    if (!v.known) return std::nullopt;
    const LayerSpec& s = m.specs()[reader];
    const bool exact = v.k == 0.0 || flow(m, reader) == ChannelFlow::Features || s.pad == 0;
    if (!exact && plan.options.fold_constant == ConstantFold::Exact) return std::nullopt;
    r.folds.push_back({reader, v.k, exact});
    r.approximate = r.approximate || v.approximate || !exact;
    reasons.insert(v.why);
  }
  for (const std::string& why : reasons) r.reason += (r.reason.empty() ? "" : "; ") + why;
  return r;
}

// Larger is stronger: the largest measured activation in the group, then the largest |gamma|.
std::vector<std::pair<double, double>> channel_strength(const Model& m, const ChannelGroup& g,
                                                        const ReluMaxima& maxima) {
  std::vector<std::pair<double, double>> s(g.channels, {0.0, 0.0});
  for (int i : g.layers) {
    const LayerSpec& spec = m.specs()[i];
    if (flow(m, i) == ChannelFlow::Rectify) {
      auto it = maxima.find(spec.name);
      if (it == maxima.end()) continue;
      for (int64_t c = 0; c < g.channels; ++c)
        s[c].first = std::max(s[c].first, static_cast<double>(it->second[c]));
    } else if (flow(m, i) == ChannelFlow::Affine) {
      const std::vector<double> gamma = m.tensor(spec.name + ".weight").to_vector_f64();
      for (int64_t c = 0; c < g.channels; ++c)
        s[c].second = std::max(s[c].second, std::fabs(gamma[c]));
    }
  }
  return s;
}

std::string group_label(const Model& m, const ChannelGroup& g) {
  std::string names;
  for (int p : g.producers) names += (names.empty() ? "" : ", ") + m.specs()[p].name;
  return "group of " + names;
}

// Moves the strongest removed channels back until `target` channels are kept.
void keep_strongest(const Model& m, ChannelGroup& g, const ReluMaxima& maxima, int64_t target,
                    const std::string& why) {
  const auto strength = channel_strength(m, g, maxima);
  std::stable_sort(g.removed.begin(), g.removed.end(),
                   [&](const RemovedChannel& a, const RemovedChannel& b) {
                     return strength[a.index] > strength[b.index];
                   });
  std::vector<int64_t> back;
  while (static_cast<int64_t>(g.kept.size() + back.size()) < target && !g.removed.empty()) {
    back.push_back(g.removed.front().index);
    g.removed.erase(g.removed.begin());
  }
  if (!back.empty()) {
    std::string list;
    for (int64_t c : back) list += (list.empty() ? "" : ", ") + std::to_string(c);
    g.notes.push_back(group_label(m, g) + ": " + why + ": kept removable channel(s) " + list);
  }
  g.kept.insert(g.kept.end(), back.begin(), back.end());
  std::sort(g.kept.begin(), g.kept.end());
  std::sort(g.removed.begin(), g.removed.end(),
            [](const RemovedChannel& a, const RemovedChannel& b) { return a.index < b.index; });
}

}  // namespace

CompactionPlan plan_compaction(const Model& model, const CompactionOptions& options,
                               const ReluMaxima& maxima) {
  if (options.round_to < 1)
    throw std::invalid_argument("compaction: round_to must be at least 1, got " +
                                std::to_string(options.round_to));
  if (!(options.activation_threshold >= 0) || !(options.gamma_threshold >= 0))
    throw std::invalid_argument("compaction: thresholds must be non-negative");
  check_maxima(model, options, maxima);
  CompactionPlan plan;
  plan.options = options;
  build_groups(model, plan);
  const std::vector<Values> values = ValueAnalysis(model, options, maxima).run();
  for (ChannelGroup& g : plan.groups) {
    for (int64_t c = 0; c < g.channels; ++c) {
      std::optional<RemovedChannel> r;
      if (g.compactable) r = removal(model, plan, values, g, c);
      if (r)
        g.removed.push_back(std::move(*r));
      else
        g.kept.push_back(c);
    }
    if (g.kept.empty()) keep_strongest(model, g, maxima, 1, "every channel is removable");
    const int64_t n = options.round_to;
    const auto k = static_cast<int64_t>(g.kept.size());
    if (n > 1 && !g.removed.empty() && k % n != 0)
      keep_strongest(model, g, maxima, std::min(g.channels, (k + n - 1) / n * n),
                     "rounding to a multiple of " + std::to_string(n));
  }
  return plan;
}

namespace {

// Folds into one reader: (channel, value) for every removed channel with a non-zero value.
std::vector<std::pair<int64_t, double>> folds_into(const CompactionPlan& plan, int reader) {
  std::vector<std::pair<int64_t, double>> out;
  for (const ChannelGroup& g : plan.groups)
    for (const RemovedChannel& r : g.removed)
      for (const ChannelFold& f : r.folds)
        if (f.reader == reader && f.value != 0.0) out.emplace_back(r.index, f.value);
  return out;
}

void set_tensor(Model& m, const std::string& name, const std::vector<double>& values) {
  Tensor dst = m.tensor(name);
  if (static_cast<int64_t>(values.size()) != dst.numel())
    throw std::logic_error("compaction: " + name + " gets " + std::to_string(values.size()) +
                           " values for shape " + shape_str(dst.shape()));
  dst.copy_from(Tensor::from_vector(values, dst.shape()).to(dst.dtype()));
}

// Conv weight [O, I, kh, kw] and bias: kept rows and input channels, constants folded.
void compact_conv(const Model& src, const CompactionPlan& plan, int i, Model& dst) {
  const LayerSpec& s = src.specs()[i];
  const Tensor w_old = src.tensor(s.name + ".weight");
  const std::vector<double> w = w_old.to_vector_f64();
  const int64_t in_c = w_old.dim(1), kk = w_old.dim(2) * w_old.dim(3);
  const std::vector<int64_t>& out_keep = plan.groups[plan.group_of[i]].kept;
  const std::vector<int64_t>& in_keep = plan.groups[plan.group_read_by(src, i)].kept;
  std::vector<double> nw;
  nw.reserve(out_keep.size() * in_keep.size() * kk);
  for (int64_t o : out_keep)
    for (int64_t c : in_keep)
      nw.insert(nw.end(), w.begin() + (o * in_c + c) * kk, w.begin() + (o * in_c + c + 1) * kk);
  set_tensor(dst, s.name + ".weight", nw);
  if (!dst.specs()[i].bias) return;
  std::vector<double> b_old =
      s.bias ? src.tensor(s.name + ".bias").to_vector_f64() : std::vector<double>(w_old.dim(0));
  const auto folds = folds_into(plan, i);
  std::vector<double> nb;
  for (int64_t o : out_keep) {
    double b = b_old[o];
    for (const auto& [c, value] : folds) {
      double wsum = 0;
      for (int64_t t = 0; t < kk; ++t) wsum += w[(o * in_c + c) * kk + t];
      b += value * wsum;
    }
    nb.push_back(b);
  }
  set_tensor(dst, s.name + ".bias", nb);
}

// Linear weight [O, F]: each input channel c owns columns [c*P, (c+1)*P), P = F / channels.
void compact_linear(const Model& src, const CompactionPlan& plan, int i, Model& dst) {
  const LayerSpec& s = src.specs()[i];
  const Tensor w_old = src.tensor(s.name + ".weight");
  const std::vector<double> w = w_old.to_vector_f64();
  const int64_t out = w_old.dim(0), features = w_old.dim(1);
  const ChannelGroup& in = plan.groups[plan.group_read_by(src, i)];
  if (features % in.channels != 0)
    throw std::logic_error("compaction: " + layer_label(src, i) + " reads " +
                           std::to_string(features) + " features from " +
                           std::to_string(in.channels) + " channels");
  const int64_t per = features / in.channels;
  std::vector<double> nw;
  for (int64_t o = 0; o < out; ++o)
    for (int64_t c : in.kept)
      nw.insert(nw.end(), w.begin() + o * features + c * per,
                w.begin() + o * features + (c + 1) * per);
  set_tensor(dst, s.name + ".weight", nw);
  if (!dst.specs()[i].bias) return;
  std::vector<double> nb =
      s.bias ? src.tensor(s.name + ".bias").to_vector_f64() : std::vector<double>(out);
  for (const auto& [c, value] : folds_into(plan, i))
    for (int64_t o = 0; o < out; ++o) {
      double wsum = 0;
      for (int64_t p = 0; p < per; ++p) wsum += w[o * features + c * per + p];
      nb[o] += value * wsum;
    }
  set_tensor(dst, s.name + ".bias", nb);
}

void compact_batchnorm(const Model& src, const CompactionPlan& plan, int i, Model& dst) {
  const std::string& n = src.specs()[i].name;
  const std::vector<int64_t>& keep = plan.groups[plan.group_of[i]].kept;
  for (const char* part : {".weight", ".bias", ".running_mean", ".running_var"}) {
    const std::vector<double> v = src.tensor(n + part).to_vector_f64();
    std::vector<double> nv;
    for (int64_t c : keep) nv.push_back(v[c]);
    set_tensor(dst, n + part, nv);
  }
  set_tensor(dst, n + ".num_batches_tracked",
             src.tensor(n + ".num_batches_tracked").to_vector_f64());
}

}  // namespace

std::unique_ptr<Model> apply_compaction(const Model& model, const CompactionPlan& plan,
                                        Backend& backend) {
  std::vector<LayerSpec> specs = model.specs();
  for (int i = 0; i < static_cast<int>(specs.size()); ++i) {
    LayerSpec& s = specs[i];
    if (flow(model, i) == ChannelFlow::Mix)
      s.out = static_cast<int64_t>(plan.groups[plan.group_of[i]].kept.size());
    if (creates_channels(model, i) && !folds_into(plan, i).empty()) s.bias = true;
  }
  auto out = std::make_unique<Model>(std::move(specs), model.input_shape(), model.classes(),
                                     backend, model.dtype());
  for (int i = 0; i < static_cast<int>(model.specs().size()); ++i) {
    switch (flow(model, i)) {
      case ChannelFlow::Mix:
        compact_conv(model, plan, i, *out);
        break;
      case ChannelFlow::Features:
        compact_linear(model, plan, i, *out);
        break;
      case ChannelFlow::Affine:
        compact_batchnorm(model, plan, i, *out);
        break;
      case ChannelFlow::Rectify:
      case ChannelFlow::Average:
      case ChannelFlow::Same:
      case ChannelFlow::Sum:
        break;  // no parameters
    }
  }
  return out;
}

namespace {

// Appends the source indices of one parameter or buffer of layer i of the compacted model.
// `base` is the tensor's offset in the source's flat buffer; `src_shape` its source shape.
void map_layer_tensor(const Model& src, const CompactionPlan& plan, int i, const std::string& part,
                      int64_t base, const Shape& src_shape, std::vector<int64_t>& out) {
  const ChannelFlow f = flow(src, i);
  const bool per_channel = part == "running_mean" || part == "running_var" ||
                           (f == ChannelFlow::Affine && (part == "weight" || part == "bias"));
  if (per_channel || (f == ChannelFlow::Mix && part == "bias")) {
    for (int64_t c : plan.groups[plan.group_of[i]].kept) out.push_back(base + c);
  } else if (f == ChannelFlow::Mix && part == "weight") {
    const int64_t in_c = src_shape[1], kk = src_shape[2] * src_shape[3];
    for (int64_t o : plan.groups[plan.group_of[i]].kept)
      for (int64_t c : plan.groups[plan.group_read_by(src, i)].kept)
        for (int64_t t = 0; t < kk; ++t) out.push_back(base + (o * in_c + c) * kk + t);
  } else if (f == ChannelFlow::Features && part == "weight") {
    const ChannelGroup& in = plan.groups[plan.group_read_by(src, i)];
    const int64_t features = src_shape[1], per = features / in.channels;
    for (int64_t o = 0; o < src_shape[0]; ++o)
      for (int64_t c : in.kept)
        for (int64_t p = 0; p < per; ++p) out.push_back(base + o * features + c * per + p);
  } else {  // a linear bias, num_batches_tracked: unchanged
    for (int64_t e = 0; e < shape_numel(src_shape); ++e) out.push_back(base + e);
  }
}

template <class View>
std::vector<int64_t> map_views(const Model& src, const CompactionPlan& plan,
                               const std::vector<View>& src_views,
                               const std::vector<View>& dst_views, int64_t dst_numel) {
  std::map<std::string, const View*> by_name;
  for (const View& v : src_views) by_name[v.name] = &v;
  std::vector<int64_t> out;
  out.reserve(dst_numel);
  for (const View& v : dst_views) {
    auto it = by_name.find(v.name);
    if (it == by_name.end())
      throw std::logic_error("compaction map: '" + v.name + "' is not in the source model");
    if (static_cast<int64_t>(out.size()) != v.offset)
      throw std::logic_error("compaction map: '" + v.name + "' is not contiguous");
    const std::string part = v.name.substr(v.name.rfind('.') + 1);
    map_layer_tensor(src, plan, v.layer, part, it->second->offset, it->second->shape, out);
    if (static_cast<int64_t>(out.size()) != v.offset + shape_numel(v.shape))
      throw std::logic_error("compaction map: '" + v.name + "' maps " +
                             std::to_string(out.size() - v.offset) + " elements for shape " +
                             shape_str(v.shape));
  }
  return out;
}

}  // namespace

ElementMap compaction_element_map(const Model& source, const CompactionPlan& plan,
                                  const Model& compacted) {
  for (int i = 0; i < static_cast<int>(source.specs().size()); ++i)
    if (!folds_into(plan, i).empty())
      throw std::invalid_argument("compaction map: the plan folds constants into layer '" +
                                  source.specs()[i].name + "'");
  ElementMap m;
  m.params = map_views(source, plan, source.param_views(), compacted.param_views(),
                       compacted.params().numel());
  m.buffers = map_views(source, plan, source.buffer_views(), compacted.buffer_views(),
                        compacted.buffers().numel());
  return m;
}

std::unique_ptr<Model> copy_model(const Model& model, Backend& backend) {
  auto out = std::make_unique<Model>(model.specs(), model.input_shape(), model.classes(), backend,
                                     model.dtype());
  out->params().copy_from(model.params());
  out->buffers().copy_from(model.buffers());
  return out;
}

std::unique_ptr<Model> fuse_batchnorm(const Model& model, Backend& backend) {
  const std::vector<LayerSpec>& old = model.specs();
  const int n = static_cast<int>(old.size());
  std::map<int, int> conv_of_bn;  // fused BN -> its conv
  for (int i = 0; i < n; ++i) {
    if (old[i].kind != LayerKind::BatchNorm) continue;
    const int j = model.layer_inputs(i).at(0);
    if (j >= 0 && old[j].kind == LayerKind::Conv && model.layer_consumers(j).size() == 1)
      conv_of_bn[i] = j;
  }
  std::map<std::string, std::string> renamed;
  for (auto [bn, conv] : conv_of_bn) renamed[old[bn].name] = old[conv].name;
  auto rename = [&](const std::string& s) {
    auto it = renamed.find(s);
    return it == renamed.end() ? s : it->second;
  };
  std::vector<LayerSpec> specs;
  for (int i = 0; i < n; ++i) {
    if (conv_of_bn.count(i)) continue;
    LayerSpec s = old[i];
    if (s.inputs.empty() && i > 0) {
      // The layer read its predecessor; name it explicitly when that one is not the new
      // predecessor.
      const std::string source = rename(old[i - 1].name);
      if (specs.empty() || specs.back().name != source) s.inputs = {source};
    }
    for (std::string& in : s.inputs) in = rename(in);
    if (s.kind == LayerKind::Conv)
      for (auto [bn, conv] : conv_of_bn)
        if (conv == i) s.bias = true;
    specs.push_back(std::move(s));
  }
  auto out = std::make_unique<Model>(std::move(specs), model.input_shape(), model.classes(),
                                     backend, model.dtype());
  // Unfused tensors keep their names; fused convs get new weights and a bias.
  std::set<std::string> fused_convs;
  for (auto [bn, conv] : conv_of_bn) fused_convs.insert(old[conv].name);
  for (const ParamView& v : out->param_views()) {
    if (fused_convs.count(out->specs()[v.layer].name)) continue;
    set_tensor(*out, v.name, model.tensor(v.name).to_vector_f64());
  }
  for (const BufferView& v : out->buffer_views())
    set_tensor(*out, v.name, model.tensor(v.name).to_vector_f64());
  for (auto [bn, conv] : conv_of_bn) {
    const std::string& cn = old[conv].name;
    const BnParams p = bn_params(model, bn);
    const Tensor w_old = model.tensor(cn + ".weight");
    std::vector<double> w = w_old.to_vector_f64();
    const int64_t per = w_old.numel() / w_old.dim(0);
    std::vector<double> b = old[conv].bias ? model.tensor(cn + ".bias").to_vector_f64()
                                           : std::vector<double>(w_old.dim(0));
    for (int64_t o = 0; o < w_old.dim(0); ++o) {
      const double scale = p.gamma[o] / std::sqrt(p.var[o] + p.eps);
      for (int64_t t = 0; t < per; ++t) w[o * per + t] *= scale;
      b[o] = (b[o] - p.mean[o]) * scale + p.beta[o];
    }
    set_tensor(*out, cn + ".weight", w);
    set_tensor(*out, cn + ".bias", b);
  }
  return out;
}

nlohmann::json kept_filters_json(const Model& model, const CompactionPlan& plan) {
  nlohmann::json out = nlohmann::json::array();
  for (int i = 0; i < static_cast<int>(model.specs().size()); ++i) {
    if (flow(model, i) != ChannelFlow::Mix) continue;
    const ChannelGroup& g = plan.groups[plan.group_of[i]];
    out.push_back(
        {{"layer", model.specs()[i].name}, {"channels_before", g.channels}, {"kept", g.kept}});
  }
  return out;
}

nlohmann::json plan_json(const Model& model, const CompactionPlan& plan) {
  auto names = [&](const std::vector<int>& layers) {
    nlohmann::json a = nlohmann::json::array();
    for (int i : layers) a.push_back(model.specs()[i].name);
    return a;
  };
  nlohmann::json groups = nlohmann::json::array();
  for (const ChannelGroup& g : plan.groups) {
    nlohmann::json removed = nlohmann::json::array();
    for (const RemovedChannel& r : g.removed) {
      nlohmann::json folds = nlohmann::json::array();
      for (const ChannelFold& f : r.folds)
        if (f.value != 0.0)
          folds.push_back(
              {{"into", model.specs()[f.reader].name}, {"value", f.value}, {"exact", f.exact}});
      removed.push_back({{"index", r.index},
                         {"reason", r.reason},
                         {"approximate", r.approximate},
                         {"folded", folds}});
    }
    nlohmann::json j = {{"producers", names(g.producers)},
                        {"layers", names(g.layers)},
                        {"readers", names(g.readers)},
                        {"channels_before", g.channels},
                        {"channels_after", g.kept.size()},
                        {"compactable", g.compactable},
                        {"removed", removed},
                        {"notes", g.notes}};
    if (!g.compactable) j["fixed_reason"] = g.fixed_reason;
    if (g.holds_input) j["producers"] = {"input"};
    groups.push_back(std::move(j));
  }
  return {{"criterion", dead_criterion_name(plan.options.criterion)},
          {"thresholds",
           {{"activation", plan.options.activation_threshold},
            {"gamma", plan.options.gamma_threshold}}},
          {"fold_constant",
           plan.options.fold_constant == ConstantFold::Exact ? "exact" : "approximate"},
          {"round_to", plan.options.round_to},
          {"groups", groups}};
}

}  // namespace st
