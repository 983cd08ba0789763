#include "train/filter_skipping.h"

#include <cfloat>
#include <cstring>
#include <stdexcept>

namespace st {

namespace {

Tensor on_host(const Tensor& t) {
  return t.device() == Device::CPU ? t : t.to(Device::CPU);
}

// dst[i] = src[map[i]] for flat tensors of the same dtype, on any devices.
void gather(const Tensor& src, Tensor& dst, const std::vector<int64_t>& map) {
  if (static_cast<int64_t>(map.size()) != dst.numel() || src.dtype() != dst.dtype())
    throw std::logic_error("filter skipping: gather of " + std::to_string(map.size()) +
                           " elements into " + shape_str(dst.shape()));
  const Tensor s = on_host(src);
  Tensor d = dst.device() == Device::CPU ? dst : Tensor(dst.shape(), dst.dtype(), Device::CPU);
  const std::size_t es = dtype_size(dst.dtype());
  const auto* sp = static_cast<const char*>(s.raw());
  auto* dp = static_cast<char*>(d.raw());
  for (std::size_t i = 0; i < map.size(); ++i) std::memcpy(dp + i * es, sp + map[i] * es, es);
  if (dst.device() != Device::CPU) dst.copy_from(d);
}

// dst[map[i]] = src[i]: the inverse of gather on the mapped elements; the others keep theirs.
void scatter(const Tensor& src, Tensor& dst, const std::vector<int64_t>& map) {
  if (static_cast<int64_t>(map.size()) != src.numel() || src.dtype() != dst.dtype())
    throw std::logic_error("filter skipping: scatter of " + shape_str(src.shape()) + " through " +
                           std::to_string(map.size()) + " indices");
  const Tensor s = on_host(src);
  Tensor d = on_host(dst);
  const std::size_t es = dtype_size(dst.dtype());
  const auto* sp = static_cast<const char*>(s.raw());
  auto* dp = static_cast<char*>(d.raw());
  for (std::size_t i = 0; i < map.size(); ++i) std::memcpy(dp + map[i] * es, sp + i * es, es);
  if (dst.device() != Device::CPU) dst.copy_from(d);
}

std::vector<int64_t> all_channels(int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t c = 0; c < n; ++c) v[c] = c;
  return v;
}

}  // namespace

FilterSkipper::FilterSkipper(Model& full, Optimizer& full_optimizer,
                             OptimizerFactory make_optimizer, int skip_after, double threshold)
    : full_(full),
      full_optimizer_(full_optimizer),
      make_optimizer_(std::move(make_optimizer)),
      skip_after_(skip_after),
      threshold_(threshold) {
  if (skip_after < 1) throw std::invalid_argument("filter skipping: skip_after must be >= 1");
  for (const ConvBNReLU& b : full.conv_bn_relu_blocks()) {
    streak_.emplace_back(b.channels, 0);
    skipped_at_.emplace_back(b.channels, 0);
    planned_due_.emplace_back(b.channels, false);
    channels_.push_back(all_channels(b.channels));
  }
}

int64_t FilterSkipper::skipped(std::size_t block) const {
  return full_.conv_bn_relu_blocks().at(block).channels -
         static_cast<int64_t>(channels_.at(block).size());
}

int64_t FilterSkipper::skipped_total() const {
  int64_t n = 0;
  for (std::size_t b = 0; b < channels_.size(); ++b) n += skipped(b);
  return n;
}

void FilterSkipper::sync_full() {
  if (!active_) return;
  scatter(active_->params(), full_.params(), map_.params);
  scatter(active_->buffers(), full_.buffers(), map_.buffers);
  std::vector<Tensor>& full_state = full_optimizer_.state();
  const std::vector<Tensor>& state = active_optimizer_->state();
  for (std::size_t k = 0; k < state.size(); ++k) scatter(state[k], full_state[k], map_.params);
  full_optimizer_.set_steps(active_optimizer_->steps());
  full_.set_dropout_calls(active_->dropout_calls());
}

std::vector<std::vector<bool>> FilterSkipper::due() const {
  std::vector<std::vector<bool>> d;
  for (const auto& s : streak_) {
    d.emplace_back(s.size());
    for (std::size_t c = 0; c < s.size(); ++c) d.back()[c] = s[c] >= skip_after_;
  }
  return d;
}

bool FilterSkipper::record_check(const std::vector<LayerStats>& full_stats, int epoch) {
  if (full_stats.size() != streak_.size())
    throw std::logic_error("filter skipping: statistics for " + std::to_string(full_stats.size()) +
                           " blocks, the network has " + std::to_string(streak_.size()));
  last_epoch_ = epoch;
  for (std::size_t b = 0; b < streak_.size(); ++b) {
    if (full_stats[b].filters.size() != streak_[b].size())
      throw std::logic_error("filter skipping: statistics of " + full_stats[b].name +
                             " are not the full network's");
    for (std::size_t c = 0; c < streak_[b].size(); ++c)
      streak_[b][c] = full_stats[b].filters[c].dead_activation ? streak_[b][c] + 1 : 0;
  }
  return due() != planned_due_;
}

void FilterSkipper::gather_optimizer_state(const ElementMap& map) {
  std::vector<Tensor>& state = active_optimizer_->state();
  const std::vector<Tensor>& full_state = full_optimizer_.state();
  for (std::size_t k = 0; k < state.size(); ++k) gather(full_state[k], state[k], map.params);
  active_optimizer_->set_steps(full_optimizer_.steps());
}

void FilterSkipper::rebuild() {
  sync_full();
  planned_due_ = due();
  const auto& blocks = full_.conv_bn_relu_blocks();
  ReluMaxima maxima;
  bool any_due = false;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    // Due filters are dead (0); the others count as alive whatever their last maximum was.
    std::vector<float> m(blocks[b].channels, FLT_MAX);
    for (std::size_t c = 0; c < m.size(); ++c)
      if (planned_due_[b][c]) {
        m[c] = 0.0f;
        any_due = true;
      }
    maxima[full_.specs()[blocks[b].relu].name] = std::move(m);
  }
  std::unique_ptr<Model> compacted;
  CompactionPlan plan;
  if (any_due) {
    CompactionOptions o;
    o.criterion = DeadCriterion::Activation;
    o.activation_threshold = threshold_;
    o.fold_constant = ConstantFold::Exact;
    plan = plan_compaction(full_, o, maxima);
    bool removes = false;
    for (const ChannelGroup& g : plan.groups) removes = removes || !g.removed.empty();
    if (removes) compacted = apply_compaction(full_, plan, full_.backend());
  }
  if (!compacted) {
    active_.reset();
    active_optimizer_.reset();
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      channels_[b] = all_channels(blocks[b].channels);
      std::fill(skipped_at_[b].begin(), skipped_at_[b].end(), 0);
    }
    return;
  }
  map_ = compaction_element_map(full_, plan, *compacted);
  compacted->set_dropout_seed(full_.dropout_seed());
  compacted->set_dropout_calls(full_.dropout_calls());
  active_optimizer_ = make_optimizer_(*compacted);
  active_ = std::move(compacted);
  gather_optimizer_state(map_);
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    channels_[b] = plan.groups[plan.group_of[blocks[b].conv]].kept;
    std::vector<bool> kept(blocks[b].channels, false);
    for (int64_t c : channels_[b]) kept[c] = true;
    for (std::size_t c = 0; c < kept.size(); ++c)
      skipped_at_[b][c] = kept[c] ? 0 : (skipped_at_[b][c] ? skipped_at_[b][c] : last_epoch_);
  }
}

void FilterSkipper::force_skip(const BlockChannels& channels_per_block) {
  if (channels_per_block.size() != streak_.size())
    throw std::invalid_argument("force_skip: one channel list per conv-BN-ReLU block expected");
  for (std::size_t b = 0; b < streak_.size(); ++b) {
    std::fill(streak_[b].begin(), streak_[b].end(), 0);
    for (int64_t c : channels_per_block[b]) streak_[b].at(c) = skip_after_;
  }
  rebuild();
}

nlohmann::json FilterSkipper::state_json() const {
  nlohmann::json blocks = nlohmann::json::array();
  const auto& full_blocks = full_.conv_bn_relu_blocks();
  for (std::size_t b = 0; b < streak_.size(); ++b)
    blocks.push_back({{"name", full_blocks[b].name},
                      {"streak", streak_[b]},
                      {"skipped_at", skipped_at_[b]},
                      {"computed", channels_[b]}});
  return {{"skip_after", skip_after_}, {"last_check_epoch", last_epoch_}, {"blocks", blocks}};
}

void FilterSkipper::restore(const nlohmann::json& state) {
  const auto& full_blocks = full_.conv_bn_relu_blocks();
  try {
    const auto& blocks = state.at("blocks");
    if (blocks.size() != full_blocks.size())
      throw std::runtime_error(std::to_string(blocks.size()) + " blocks, the model has " +
                               std::to_string(full_blocks.size()));
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      const auto& j = blocks[b];
      if (j.at("name").get<std::string>() != full_blocks[b].name)
        throw std::runtime_error("block " + std::to_string(b) + " is '" +
                                 j.at("name").get<std::string>() + "', the model's is '" +
                                 full_blocks[b].name + "'");
      auto streak = j.at("streak").get<std::vector<int>>();
      auto skipped_at = j.at("skipped_at").get<std::vector<int>>();
      if (static_cast<int64_t>(streak.size()) != full_blocks[b].channels ||
          skipped_at.size() != streak.size())
        throw std::runtime_error("block '" + full_blocks[b].name + "' has " +
                                 std::to_string(streak.size()) + " entries for " +
                                 std::to_string(full_blocks[b].channels) + " channels");
      streak_[b] = std::move(streak);
      skipped_at_[b] = std::move(skipped_at);
    }
    last_epoch_ = state.at("last_check_epoch").get<int>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("filter-skipping state: ") + e.what());
  }
  rebuild();
}

}  // namespace st
