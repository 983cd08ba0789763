// An image classification dataset held in memory: uint8 pixels, one NCHW image after
// another, and int32 labels in [0, classes). Readers for the file formats live next to it
// (idx.h, cifar.h, image_folder.h, synthetic.h); batching in loader.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace st::data {

// Limits checked before anything is allocated (a header or folder that lies must not make the
// process ask for gigabytes). Images larger than this on a side are not CNN training data.
constexpr int64_t kMaxImageSide = 16384;
// The most bytes a whole in-memory dataset may take: half of the machine's physical memory.
uint64_t max_dataset_bytes();
// Throws InputError("<what>: <n> images of CxHxW need B bytes, more than ...") when `count`
// images of the shape would not fit under max_dataset_bytes(); the arithmetic is checked.
void check_dataset_size(uint64_t count, uint64_t channels, uint64_t height, uint64_t width,
                        const std::string& what);

// Which half of a dataset that ships as two (train/test) to read or generate.
enum class DataSplit { Train, Test };
const char* split_name(DataSplit s);

struct Dataset {
  int channels = 0;
  int height = 0;
  int width = 0;
  int classes = 0;
  std::vector<uint8_t> pixels;  // size() * image_numel() values, image i at i * image_numel()
  std::vector<int32_t> labels;  // size() values in [0, classes)
  std::vector<std::string> class_names;  // empty, or `classes` names
  std::string description;               // where the data came from, for logs

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t image_numel() const { return int64_t{channels} * height * width; }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * image_numel(); }

  // Throws std::invalid_argument naming `description` when the fields disagree
  // (pixel count, label range, class name count, non-positive dimensions).
  void validate() const;
};

// The samples at `indices`, in that order (duplicates allowed). Metadata is kept.
Dataset select(const Dataset& d, const std::vector<int64_t>& indices);

// The first n samples (all of them when n >= size()).
Dataset take_first(const Dataset& d, int64_t n);

// n samples chosen by a seeded draw without replacement, kept in their original order.
// With `stratified`, each class contributes in proportion to its share of the set
// (largest remainders decide the leftover places, ties to the smaller class id).
Dataset random_subset(const Dataset& d, int64_t n, uint64_t seed, bool stratified = false);

// The sample indices random_subset draws; exposed so that callers can subset parallel data.
std::vector<int64_t> random_subset_indices(const Dataset& d, int64_t n, uint64_t seed,
                                           bool stratified);

struct TrainValidation {
  Dataset train;
  Dataset validation;
};

// Moves `validation_size` samples, drawn as random_subset draws them, into a validation set;
// the rest stays the training set. Both keep the original sample order.
TrainValidation split_validation(const Dataset& d, int64_t validation_size, uint64_t seed,
                                 bool stratified = false);

// A harder task from the same images: `count` samples, drawn by a seeded permutation, get a
// label drawn uniformly from the other classes (so each of them is wrong). Returns the
// indices changed, in increasing order. Throws std::invalid_argument when count is out of
// [0, size()] or the set has fewer than 2 classes.
std::vector<int64_t> corrupt_labels(Dataset& d, int64_t count, uint64_t seed);

// Per-channel mean and standard deviation (population) of pixel / 255, in double precision.
struct ChannelStats {
  std::vector<float> mean;
  std::vector<float> std;
};
ChannelStats compute_channel_stats(const Dataset& d);

// Counts of each label, `classes` entries.
std::vector<int64_t> class_counts(const Dataset& d);

// A seeded uniform permutation of [0, n): the same (seed, stream) gives the same order.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed, uint64_t stream = 0);

}  // namespace st::data
