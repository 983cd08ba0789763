// Sparsity-aware training (config `sparsity.skip_dead`, docs/sparsity.md): filters found dead by
// the exact criterion at `skip_after` consecutive checks stop being computed. The trainer then
// trains a compacted copy of the network (sparsity/compaction.h) with those filters removed,
// together with their BN channels, their optimizer state and the next layer's input channels.
//
// The full network stays the reference: it holds every parameter, and a skipped filter keeps
// there the values it had when it was skipped. sync_full() copies the trained values back
// (before statistics, checkpoints and revival checks), so checkpoints always hold the full
// network and load anywhere a normal run's do. The skipped set is a function of the per-filter
// streaks alone, which is what a checkpoint stores to rebuild the same compacted network.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "nn/model.h"
#include "optim/optimizer.h"
#include "sparsity/activation_pass.h"
#include "sparsity/compaction.h"
#include "sparsity/filter_stats.h"

namespace st {

// Builds the optimizer for a (compacted) model with the run's hyper-parameters and
// regularization; its state is filled in by the skipper.
using OptimizerFactory = std::function<std::unique_ptr<Optimizer>(const Model&)>;

class FilterSkipper {
 public:
  // `full` and `full_optimizer` must outlive the skipper. `threshold` is the activation
  // criterion's (statistics.activation.threshold).
  FilterSkipper(Model& full, Optimizer& full_optimizer, OptimizerFactory make_optimizer,
                int skip_after, double threshold);

  // The network and optimizer training runs on: the compacted ones while filters are skipped.
  Model& model() { return active_ ? *active_ : full_; }
  Optimizer& optimizer() { return active_ ? *active_optimizer_ : full_optimizer_; }
  bool skipping() const { return active_ != nullptr; }

  // Per conv-BN-ReLU block: the full network's channels model() computes, ascending.
  const BlockChannels& block_channels() const { return channels_; }
  int64_t skipped(std::size_t block) const;
  int64_t skipped_total() const;

  // Copies the trained network's parameters, BN buffers, optimizer state, step count and
  // dropout counter into the full network. Skipped entries keep their values.
  void sync_full();

  // Records a check: per block and full-network channel, whether the filter was dead by the
  // activation criterion. A skipped filter found alive (only a pass over the full network can
  // find one) is restored. Returns true when the set of filters due to be skipped changed;
  // then rebuild() makes the network match.
  bool record_check(const std::vector<LayerStats>& full_stats, int epoch);

  // Syncs, then compacts the full network to skip every filter dead at skip_after consecutive
  // checks (as far as compaction allows: a channel group is never emptied, and channels read
  // by a residual add must be dead at every reader).
  void rebuild();

  // Skips exactly these channels per block (for benchmarks), as if they had been found dead.
  void force_skip(const BlockChannels& channels_per_block);

  // What a checkpoint stores; restore() then rebuilds the same network.
  nlohmann::json state_json() const;
  void restore(const nlohmann::json& state);

 private:
  std::vector<std::vector<bool>> due() const;
  void gather_optimizer_state(const ElementMap& map);

  Model& full_;
  Optimizer& full_optimizer_;
  OptimizerFactory make_optimizer_;
  int skip_after_;
  double threshold_;

  std::vector<std::vector<int>> streak_;        // consecutive checks found dead, per filter
  std::vector<std::vector<int>> skipped_at_;    // epoch the filter was skipped; 0 = computed
  std::vector<std::vector<bool>> planned_due_;  // the due set the network was built for
  BlockChannels channels_;
  std::unique_ptr<Model> active_;
  std::unique_ptr<Optimizer> active_optimizer_;
  ElementMap map_;  // active element -> full element
  int last_epoch_ = 0;
};

}  // namespace st
