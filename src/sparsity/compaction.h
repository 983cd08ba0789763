// Compaction: removing dead filters from a trained network so that the smaller network
// computes the same function (docs/export.md).
//
// Channels are grouped into channel groups: the output of a conv followed through the layers
// that keep channel indices (BN, ReLU, pools, global pool, flatten, dropout) and joined by
// adds, so a residual stream and every block writing into it form one group. A channel is
// removed from its whole group at once: the producing convs' filters, the BN channels, and
// the matching input channels (or linear columns) of every conv or linear reading the group.
//
// A channel may go only if, at the input of every conv or linear reading the group, its value
// is known to be a constant k for every input image:
//  - k = 0: a ReLU output found dead (activation criterion), or ReLU(beta) <= 0 of a BN with
//    |gamma| under the threshold (BN-scale criterion, which treats such a gamma as 0);
//  - k != 0: a BN with |gamma| under the threshold and beta > 0 (or a constant pushed through
//    a BN). Its contribution is folded into the reader's bias where that is exact (a linear
//    layer, or a conv without padding) and the channel is kept elsewhere, unless approximate
//    folding is asked for.
// Groups that hold the model input, a linear layer's output or the network output are never
// compacted. No group is left without channels, and counts can be rounded up to a multiple.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/model.h"

namespace st {

enum class DeadCriterion {
  Activation,  // a ReLU channel whose output stayed under the threshold on every training image
  Gamma,       // a BN channel with |gamma| under the threshold, taken as gamma = 0
  Both,        // a conv-BN-ReLU filter dead by both criteria
};
const char* dead_criterion_name(DeadCriterion c);
// "activation", "gamma", "both"; throws std::invalid_argument otherwise.
DeadCriterion dead_criterion_from_name(const std::string& name);

enum class ConstantFold {
  Exact,        // fold a constant channel only where the result is exact; keep it elsewhere
  Approximate,  // fold it everywhere (a padded conv then differs at the borders)
};

struct CompactionOptions {
  DeadCriterion criterion = DeadCriterion::Activation;
  double activation_threshold = 1e-12;
  double gamma_threshold = 1e-3;
  ConstantFold fold_constant = ConstantFold::Exact;
  int64_t round_to = 1;  // keep channel counts at multiples of this (where the group allows)
};

// Per ReLU layer name: max over the training set of a_f(x) for each channel, measured with BN
// in eval mode (sparsity/exact_stats.h). Needed by the activation and both criteria.
using ReluMaxima = std::map<std::string, std::vector<float>>;

// A removed channel's value at the input of one reader.
struct ChannelFold {
  int reader = 0;     // layer index of the conv or linear reading the group
  double value = 0;   // the constant the channel holds there
  bool exact = true;  // false: folding it into that reader is approximate (padded conv)
};

struct RemovedChannel {
  int64_t index = 0;
  // Why the channel is known to be constant, e.g. "activation: dead at relu3".
  std::string reason;
  bool approximate = false;        // |gamma| > 0 taken as 0, or an approximate fold
  std::vector<ChannelFold> folds;  // one per reader
};

struct ChannelGroup {
  int64_t channels = 0;
  std::vector<int> layers;     // layers whose output lies in the group, in model order
  std::vector<int> producers;  // convs (or linears) creating the channels; empty for the input
  std::vector<int> readers;    // convs and linears reading a tensor of the group
  bool holds_input = false;
  bool compactable = false;
  std::string fixed_reason;   // why the group is not compactable
  std::vector<int64_t> kept;  // original channel indices, ascending
  std::vector<RemovedChannel> removed;
  std::vector<std::string> notes;  // channels kept although removable, and why
};

struct CompactionPlan {
  CompactionOptions options;
  std::vector<ChannelGroup> groups;
  std::vector<int> group_of;  // per layer: the group of its output
  int input_group = 0;        // the group of the model input
  // The group a layer reads (input 0): the input group for the model input.
  int group_read_by(const Model& model, int layer) const;
};

// Decides which channels to keep. `maxima` must cover every conv-BN-ReLU block's ReLU under
// the activation and both criteria (other ReLUs are used where present). Throws
// std::invalid_argument naming the layer when statistics are missing or have wrong sizes.
CompactionPlan plan_compaction(const Model& model, const CompactionOptions& options,
                               const ReluMaxima& maxima);

// The compacted network on `backend`: same layer names and order, fewer channels, constants
// folded into readers' biases (a reader without bias gets one when a fold needs it).
std::unique_ptr<Model> apply_compaction(const Model& model, const CompactionPlan& plan,
                                        Backend& backend);

// Folds every BN that reads a conv (and is that conv's only reader) into the conv:
// W' = W * gamma / sqrt(var + eps), b' = (b - mean) * gamma / sqrt(var + eps) + beta.
// Eval-mode outputs are unchanged; the BN layers disappear from the layer list.
std::unique_ptr<Model> fuse_batchnorm(const Model& model, Backend& backend);

// Where each element of a compacted model's flat buffers lies in the source model's: for the
// i-th element of compacted.params(), params[i] is its index in source.params(); likewise for
// buffers(). Only for plans that fold nothing (every removed channel is 0 wherever it is
// read), so that every compacted value is a copy of one source value: sparsity-aware training
// uses it to move parameters, BN buffers and optimizer state between the two networks.
struct ElementMap {
  std::vector<int64_t> params, buffers;
};
ElementMap compaction_element_map(const Model& source, const CompactionPlan& plan,
                                  const Model& compacted);

// A copy of `model` (specs, parameters and buffers) on `backend`.
std::unique_ptr<Model> copy_model(const Model& model, Backend& backend);

// Per conv layer: the original output-channel indices the plan keeps.
nlohmann::json kept_filters_json(const Model& model, const CompactionPlan& plan);
// The plan for the report: per group, its layers, counts, removed channels and notes.
nlohmann::json plan_json(const Model& model, const CompactionPlan& plan);

}  // namespace st
