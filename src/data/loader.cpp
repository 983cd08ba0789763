#include "data/loader.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "tensor/random.h"

namespace st::data {

namespace {

constexpr std::size_t kQueueCapacity = 2;
constexpr uint64_t kOrderSalt = 0x0D0E0F1Aull;
constexpr uint64_t kAugmentSalt = 0xA061E27Bull;

void check_options(const Dataset& d, const LoaderOptions& o) {
  const std::string who = "BatchLoader over '" + d.description + "'";
  if (o.batch_size <= 0) {
    throw std::invalid_argument(who + ": batch size " + std::to_string(o.batch_size) +
                                " must be positive");
  }
  const Normalization& n = o.normalization;
  if (n.mean.size() != n.std.size() ||
      (!n.mean.empty() && static_cast<int>(n.mean.size()) != d.channels)) {
    throw std::invalid_argument(who + ": normalization has " + std::to_string(n.mean.size()) +
                                " means and " + std::to_string(n.std.size()) + " stds for " +
                                std::to_string(d.channels) + " channels");
  }
  for (std::size_t c = 0; c < n.std.size(); ++c) {
    if (!(n.std[c] > 0)) {
      throw std::invalid_argument(who + ": normalization std[" + std::to_string(c) +
                                  "] = " + std::to_string(n.std[c]) + " must be positive");
    }
  }
  if (o.augmentation.crop_padding < 0) {
    throw std::invalid_argument(who + ": crop padding " +
                                std::to_string(o.augmentation.crop_padding) +
                                " must not be negative");
  }
}

// value_table[c * 256 + v]: the float that pixel value v of channel c becomes.
std::vector<float> value_table(const Normalization& n, int channels) {
  std::vector<float> t(static_cast<std::size_t>(channels) * 256);
  for (int c = 0; c < channels; ++c) {
    for (int v = 0; v < 256; ++v) {
      const double x = v / 255.0;
      t[c * 256 + v] =
          n.mean.empty() ? static_cast<float>(x) : static_cast<float>((x - n.mean[c]) / n.std[c]);
    }
  }
  return t;
}

// Writes one sample, cropped from its padded version and flipped as `a` says, to out[C,H,W].
void write_sample(const Dataset& d, int64_t sample, const SampleAugmentation& a, int pad,
                  const std::vector<float>& table, float* out) {
  const int h = d.height, w = d.width;
  const uint8_t* img = d.image(sample);
  for (int c = 0; c < d.channels; ++c) {
    const float* tc = table.data() + c * 256;
    const uint8_t* plane = img + static_cast<int64_t>(c) * h * w;
    float* oc = out + static_cast<int64_t>(c) * h * w;
    for (int y = 0; y < h; ++y) {
      const int sy = y + a.crop_y - pad;
      for (int x = 0; x < w; ++x) {
        const int sx = (a.flip ? w - 1 - x : x) + a.crop_x - pad;
        const bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
        oc[y * w + x] = tc[inside ? plane[sy * w + sx] : 0];
      }
    }
  }
}

}  // namespace

Normalization normalization_from(const Dataset& train) {
  const ChannelStats s = compute_channel_stats(train);
  return {s.mean, s.std};
}

int64_t batches_per_epoch(int64_t samples, int64_t batch_size, bool drop_last) {
  if (batch_size <= 0) throw std::invalid_argument("batches_per_epoch: batch size must be > 0");
  return drop_last ? samples / batch_size : (samples + batch_size - 1) / batch_size;
}

std::vector<int64_t> epoch_order(int64_t samples, uint64_t seed, int64_t epoch, bool shuffle) {
  if (!shuffle) {
    std::vector<int64_t> order(samples);
    for (int64_t i = 0; i < samples; ++i) order[i] = i;
    return order;
  }
  return seeded_permutation(samples, splitmix64(seed ^ kOrderSalt), static_cast<uint64_t>(epoch));
}

SampleAugmentation draw_augmentation(const Augmentation& aug, uint64_t seed, int64_t epoch,
                                     int64_t sample) {
  SampleAugmentation a;
  const uint64_t key = splitmix64(splitmix64(seed ^ kAugmentSalt) ^ static_cast<uint64_t>(epoch));
  const uint64_t counter = static_cast<uint64_t>(sample) * 4;
  if (aug.crop_padding > 0) {
    const int span = 2 * aug.crop_padding + 1;
    a.crop_y = std::min(static_cast<int>(uniform01(key, counter) * span), span - 1);
    a.crop_x = std::min(static_cast<int>(uniform01(key, counter + 1) * span), span - 1);
  }
  if (aug.horizontal_flip) a.flip = uniform01(key, counter + 2) < 0.5f;
  return a;
}

Batch make_batch(const Dataset& data, const LoaderOptions& opts, int64_t epoch, int64_t batch_index,
                 const std::vector<int64_t>& order) {
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t begin = batch_index * opts.batch_size;
  const int64_t end = std::min(begin + opts.batch_size, n);
  if (batch_index < 0 || begin >= n) {
    throw std::out_of_range("make_batch: batch " + std::to_string(batch_index) + " of size " +
                            std::to_string(opts.batch_size) + " is past the " + std::to_string(n) +
                            " samples of '" + data.description + "'");
  }
  if (static_cast<int64_t>(data.pixels.size()) != data.size() * data.image_numel()) {
    throw std::invalid_argument("make_batch: '" + data.description + "' has " +
                                std::to_string(data.pixels.size()) + " pixel values for " +
                                std::to_string(data.size()) + " images");
  }
  const std::vector<float> table = value_table(opts.normalization, data.channels);
  const int64_t b = end - begin;
  Batch batch;
  batch.epoch = epoch;
  batch.index = batch_index;
  batch.indices.assign(order.begin() + begin, order.begin() + end);
  batch.images = Tensor({b, data.channels, data.height, data.width}, DType::F32);
  batch.labels = Tensor({b}, DType::I32);
  float* images = batch.images.data<float>();
  int32_t* labels = batch.labels.data<int32_t>();
  for (int64_t k = 0; k < b; ++k) {
    const int64_t sample = batch.indices[k];
    if (sample < 0 || sample >= data.size()) {
      throw std::out_of_range("make_batch: sample " + std::to_string(sample) + " is outside the " +
                              std::to_string(data.size()) + " samples of '" + data.description +
                              "'");
    }
    const SampleAugmentation a = draw_augmentation(opts.augmentation, opts.seed, epoch, sample);
    write_sample(data, sample, a, opts.augmentation.crop_padding, table,
                 images + k * data.image_numel());
    // Checked again here because the dataset may have changed since the loader checked it.
    const int32_t label = data.labels[sample];
    if (label < 0 || label >= data.classes) {
      throw std::invalid_argument("make_batch: label " + std::to_string(label) + " of sample " +
                                  std::to_string(sample) + " of '" + data.description +
                                  "' is out of range [0, " + std::to_string(data.classes) + ")");
    }
    labels[k] = label;
  }
  return batch;
}

BatchLoader::BatchLoader(const Dataset& data, LoaderOptions opts)
    : data_(data), opts_(std::move(opts)) {
  data_.validate();
  check_options(data_, opts_);
  if (opts_.prefetch) worker_ = std::thread([this] { worker_loop(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

int64_t BatchLoader::batches_per_epoch() const {
  return data::batches_per_epoch(data_.size(), opts_.batch_size, opts_.drop_last);
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  const int64_t total = batches_per_epoch();
  if (first_batch < 0 || first_batch > total) {
    throw std::out_of_range("BatchLoader::start_epoch: first batch " + std::to_string(first_batch) +
                            " is outside [0, " + std::to_string(total) + "] for '" +
                            data_.description + "'");
  }
  auto order = std::make_shared<const std::vector<int64_t>>(
      epoch_order(data_.size(), opts_.seed, epoch, opts_.shuffle));
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++generation_;
    ready_.clear();
    error_ = nullptr;
    order_ = std::move(order);
    started_ = true;
    epoch_ = epoch;
    next_to_make_ = next_to_take_ = first_batch;
    end_ = total;
  }
  cv_.notify_all();
}

bool BatchLoader::worker_has_work() const {
  return started_ && !error_ && next_to_make_ < end_ && ready_.size() < kQueueCapacity;
}

void BatchLoader::worker_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [this] { return stop_ || worker_has_work(); });
    if (stop_) return;
    const uint64_t generation = generation_;
    const int64_t epoch = epoch_, index = next_to_make_++;
    const std::shared_ptr<const std::vector<int64_t>> order = order_;
    lk.unlock();
    Batch batch;
    std::exception_ptr error;
    try {
      batch = make_batch(data_, opts_, epoch, index, *order);
    } catch (...) {
      error = std::current_exception();
    }
    lk.lock();
    if (generation != generation_) continue;  // the epoch was restarted meanwhile
    if (error) {
      error_ = error;
    } else {
      ready_.push_back(std::move(batch));
    }
    cv_.notify_all();
  }
}

std::optional<Batch> BatchLoader::next() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock<std::mutex> lk(mu_);
  if (!started_) throw std::logic_error("BatchLoader::next: call start_epoch first");
  if (next_to_take_ >= end_) return std::nullopt;
  const Clock::time_point t0 = Clock::now();
  if (!opts_.prefetch) {
    const std::shared_ptr<const std::vector<int64_t>> order = order_;
    const int64_t epoch = epoch_, index = next_to_take_;
    lk.unlock();
    Batch batch = make_batch(data_, opts_, epoch, index, *order);
    lk.lock();
    ++next_to_take_;
    wait_seconds_ += std::chrono::duration<double>(Clock::now() - t0).count();
    return batch;
  }
  cv_.wait(lk, [this] { return !ready_.empty() || error_; });
  wait_seconds_ += std::chrono::duration<double>(Clock::now() - t0).count();
  // Batches made before a failure are still handed out in order.
  if (ready_.empty()) std::rethrow_exception(error_);
  Batch batch = std::move(ready_.front());
  ready_.pop_front();
  ++next_to_take_;
  lk.unlock();
  cv_.notify_all();
  return batch;
}

double BatchLoader::wait_seconds() const {
  std::lock_guard<std::mutex> lk(mu_);
  return wait_seconds_;
}

void BatchLoader::reset_wait_seconds() {
  std::lock_guard<std::mutex> lk(mu_);
  wait_seconds_ = 0;
}

}  // namespace st::data
