// Batches of a Dataset as float tensors, in a seeded order, with augmentation, prepared on a
// background thread. Every random choice is a pure function of (seed, epoch, sample index),
// so the batches do not depend on timing, threads, or whether the run was resumed.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "tensor/tensor.h"

namespace st::data {

// x = (pixel / 255 - mean[c]) / std[c]; empty vectors mean x = pixel / 255.
struct Normalization {
  std::vector<float> mean;
  std::vector<float> std;
};

// Mean and standard deviation of the (training) set, per channel.
Normalization normalization_from(const Dataset& train);

struct Augmentation {
  // Random crop of the image padded by this many black pixels (pixel value 0, before
  // normalization, as torchvision's RandomCrop(padding=p) does) on each side. 0: off.
  int crop_padding = 0;
  bool horizontal_flip = false;  // mirror left-right with probability 1/2 (after the crop)
};

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  Normalization normalization;
  Augmentation augmentation;
  bool prefetch = true;  // false: batches are built on the caller's thread
};

struct Batch {
  Tensor images;                 // [B, C, H, W] F32 on the CPU
  Tensor labels;                 // [B] I32 on the CPU
  std::vector<int64_t> indices;  // the dataset sample behind each row
  int64_t epoch = 0;
  int64_t index = 0;  // batch number within the epoch
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

int64_t batches_per_epoch(int64_t samples, int64_t batch_size, bool drop_last);

// The order in which an epoch visits the samples: identity without shuffle.
std::vector<int64_t> epoch_order(int64_t samples, uint64_t seed, int64_t epoch, bool shuffle);

// The augmentation one sample gets in one epoch.
struct SampleAugmentation {
  int crop_y = 0;  // top-left of the crop in the padded image, in [0, 2 * crop_padding]
  int crop_x = 0;
  bool flip = false;
};
SampleAugmentation draw_augmentation(const Augmentation& aug, uint64_t seed, int64_t epoch,
                                     int64_t sample);

// Builds batch `batch_index` of `epoch` given that epoch's order (a pure function).
Batch make_batch(const Dataset& data, const LoaderOptions& opts, int64_t epoch, int64_t batch_index,
                 const std::vector<int64_t>& order);

// Yields the batches of one epoch at a time. The dataset must outlive the loader.
// While the caller uses one batch, a worker thread prepares the next ones (at most two
// waiting). An exception thrown while preparing a batch is rethrown by next().
class BatchLoader {
 public:
  BatchLoader(const Dataset& data, LoaderOptions opts);
  BatchLoader(Dataset&& data, LoaderOptions opts) = delete;  // would dangle
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t batches_per_epoch() const;
  const LoaderOptions& options() const { return opts_; }

  // Starts (or restarts) `epoch` at batch `first_batch`, e.g. to resume a run mid-epoch;
  // pending batches of a previous epoch are dropped.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);

  // The next batch of the current epoch, or nothing once the epoch is done.
  std::optional<Batch> next();

  // Seconds next() spent waiting for a batch to be ready (building it, without prefetch).
  double wait_seconds() const;
  void reset_wait_seconds();

 private:
  void worker_loop();
  bool worker_has_work() const;

  const Dataset& data_;
  const LoaderOptions opts_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> ready_;
  std::shared_ptr<const std::vector<int64_t>> order_;
  uint64_t generation_ = 0;  // bumped by start_epoch so stale work is discarded
  bool started_ = false;
  bool stop_ = false;
  int64_t epoch_ = 0;
  int64_t next_to_make_ = 0;
  int64_t next_to_take_ = 0;
  int64_t end_ = 0;
  std::exception_ptr error_;
  double wait_seconds_ = 0;
  std::thread worker_;
};

}  // namespace st::data
