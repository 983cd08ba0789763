#include "data/dataset.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "io/validate.h"
#include "tensor/random.h"

namespace st::data {

const char* split_name(DataSplit s) {
  return s == DataSplit::Train ? "train" : "test";
}

uint64_t max_dataset_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return uint64_t{1} << 34;  // unknown: 16 GiB
  return static_cast<uint64_t>(pages) / 2 * static_cast<uint64_t>(page);
}

void check_dataset_size(uint64_t count, uint64_t channels, uint64_t height, uint64_t width,
                        const std::string& what) {
  if (height > static_cast<uint64_t>(kMaxImageSide) || width > static_cast<uint64_t>(kMaxImageSide))
    throw InputError(what + ": image size " + std::to_string(height) + "x" + std::to_string(width) +
                     " (HxW) exceeds the limit of " + std::to_string(kMaxImageSide) + " per side");
  const uint64_t bytes = checked_product({count, channels, height, width}, what);
  if (bytes > max_dataset_bytes())
    throw InputError(what + ": " + std::to_string(count) + " images of " +
                     std::to_string(channels) + "x" + std::to_string(height) + "x" +
                     std::to_string(width) + " need " + std::to_string(bytes) +
                     " bytes, more than the " + std::to_string(max_dataset_bytes()) +
                     " allowed (half of this machine's memory)");
}

namespace {

std::string dataset_label(const Dataset& d) {
  return d.description.empty() ? std::string("dataset") : "dataset '" + d.description + "'";
}

}  // namespace

void Dataset::validate() const {
  const std::string who = dataset_label(*this);
  if (channels <= 0 || height <= 0 || width <= 0) {
    throw std::invalid_argument(who + ": image shape " + std::to_string(channels) + "x" +
                                std::to_string(height) + "x" + std::to_string(width) +
                                " must be positive");
  }
  if (classes <= 0) {
    throw std::invalid_argument(who + ": number of classes " + std::to_string(classes) +
                                " must be positive");
  }
  uint64_t expected = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(size()), static_cast<uint64_t>(image_numel()),
                             &expected) ||
      pixels.size() != expected) {
    throw std::invalid_argument(who + ": " + std::to_string(pixels.size()) + " pixel values for " +
                                std::to_string(size()) + " images of " +
                                std::to_string(image_numel()) + " values");
  }
  if (!class_names.empty() && static_cast<int>(class_names.size()) != classes) {
    throw std::invalid_argument(who + ": " + std::to_string(class_names.size()) +
                                " class names for " + std::to_string(classes) + " classes");
  }
  for (int64_t i = 0; i < size(); ++i) {
    if (labels[i] < 0 || labels[i] >= classes) {
      throw std::invalid_argument(who + ": label " + std::to_string(labels[i]) + " of sample " +
                                  std::to_string(i) + " is out of range [0, " +
                                  std::to_string(classes) + ")");
    }
  }
}

Dataset select(const Dataset& d, const std::vector<int64_t>& indices) {
  Dataset out;
  out.channels = d.channels;
  out.height = d.height;
  out.width = d.width;
  out.classes = d.classes;
  out.class_names = d.class_names;
  out.description = d.description;
  const int64_t n = d.image_numel();
  out.pixels.resize(indices.size() * n);
  out.labels.resize(indices.size());
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const int64_t i = indices[k];
    if (i < 0 || i >= d.size()) {
      throw std::out_of_range(dataset_label(d) + ": sample index " + std::to_string(i) +
                              " is out of range [0, " + std::to_string(d.size()) + ")");
    }
    std::copy_n(d.image(i), n, out.pixels.begin() + k * n);
    out.labels[k] = d.labels[i];
  }
  return out;
}

Dataset take_first(const Dataset& d, int64_t n) {
  if (n < 0) throw std::invalid_argument("take_first: negative count " + std::to_string(n));
  std::vector<int64_t> idx(std::min(n, d.size()));
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  return select(d, idx);
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  const uint64_t key = splitmix64(seed ^ splitmix64(stream ^ 0x5EEDBA5Eull));
  // Fisher-Yates; the modulo bias of a 64-bit draw is negligible for any dataset size.
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t r = splitmix64(key ^ splitmix64(static_cast<uint64_t>(i)));
    std::swap(p[i], p[static_cast<int64_t>(r % static_cast<uint64_t>(i + 1))]);
  }
  return p;
}

std::vector<int64_t> class_counts(const Dataset& d) {
  std::vector<int64_t> counts(std::max(d.classes, 0), 0);
  for (int32_t l : d.labels) {
    if (l < 0 || l >= d.classes) {
      throw std::invalid_argument(dataset_label(d) + ": label " + std::to_string(l) +
                                  " is out of range [0, " + std::to_string(d.classes) + ")");
    }
    ++counts[l];
  }
  return counts;
}

namespace {

// How many samples each class gives to a stratified draw of n out of the whole set.
std::vector<int64_t> stratified_quotas(const std::vector<int64_t>& counts, int64_t total,
                                       int64_t n) {
  std::vector<int64_t> quota(counts.size());
  std::vector<std::pair<int64_t, int>> remainders;  // (remainder numerator, class)
  int64_t assigned = 0;
  for (std::size_t c = 0; c < counts.size(); ++c) {
    // Exact integer arithmetic: counts[c] * n fits easily in 64 bits.
    quota[c] = counts[c] * n / total;
    remainders.push_back({counts[c] * n % total, static_cast<int>(c)});
    assigned += quota[c];
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t k = 0; assigned < n && k < remainders.size(); ++k) {
    const int c = remainders[k].second;
    if (quota[c] < counts[c]) {
      ++quota[c];
      ++assigned;
    }
  }
  return quota;
}

std::vector<int64_t> stratified_indices(const Dataset& d, int64_t n, uint64_t seed) {
  const std::vector<int64_t> counts = class_counts(d);
  std::vector<std::vector<int64_t>> members(counts.size());
  for (int64_t i = 0; i < d.size(); ++i) members[d.labels[i]].push_back(i);
  const std::vector<int64_t> quota = stratified_quotas(counts, d.size(), n);
  std::vector<int64_t> picked;
  for (std::size_t c = 0; c < members.size(); ++c) {
    const std::vector<int64_t> perm =
        seeded_permutation(static_cast<int64_t>(members[c].size()), seed, c + 1);
    for (int64_t k = 0; k < quota[c]; ++k) picked.push_back(members[c][perm[k]]);
  }
  return picked;
}

}  // namespace

std::vector<int64_t> random_subset_indices(const Dataset& d, int64_t n, uint64_t seed,
                                           bool stratified) {
  if (n < 0 || n > d.size()) {
    throw std::invalid_argument(dataset_label(d) + ": cannot draw " + std::to_string(n) +
                                " samples out of " + std::to_string(d.size()));
  }
  std::vector<int64_t> picked;
  if (stratified && n > 0) {
    picked = stratified_indices(d, n, seed);
  } else {
    picked = seeded_permutation(d.size(), seed);
    picked.resize(n);
  }
  std::sort(picked.begin(), picked.end());
  return picked;
}

Dataset random_subset(const Dataset& d, int64_t n, uint64_t seed, bool stratified) {
  return select(d, random_subset_indices(d, n, seed, stratified));
}

TrainValidation split_validation(const Dataset& d, int64_t validation_size, uint64_t seed,
                                 bool stratified) {
  const std::vector<int64_t> val = random_subset_indices(d, validation_size, seed, stratified);
  std::vector<char> in_val(d.size(), 0);
  for (int64_t i : val) in_val[i] = 1;
  std::vector<int64_t> train;
  train.reserve(d.size() - validation_size);
  for (int64_t i = 0; i < d.size(); ++i) {
    if (!in_val[i]) train.push_back(i);
  }
  TrainValidation out{select(d, train), select(d, val)};
  out.train.description = d.description + " (train part)";
  out.validation.description = d.description + " (validation part)";
  return out;
}

std::vector<int64_t> corrupt_labels(Dataset& d, int64_t count, uint64_t seed) {
  if (count < 0 || count > d.size()) {
    throw std::invalid_argument(dataset_label(d) + ": cannot relabel " + std::to_string(count) +
                                " samples out of " + std::to_string(d.size()));
  }
  if (count > 0 && d.classes < 2) {
    throw std::invalid_argument(dataset_label(d) + ": label noise needs at least 2 classes");
  }
  std::vector<int64_t> picked = seeded_permutation(d.size(), seed, /*stream=*/0x1AB);
  picked.resize(count);
  std::sort(picked.begin(), picked.end());
  const uint64_t key = splitmix64(seed ^ 0x1ABE1ull);
  for (int64_t i : picked) {
    // A draw over the classes - 1 others, shifted past the true label.
    const uint64_t r = splitmix64(key ^ splitmix64(static_cast<uint64_t>(i)));
    const int32_t other = static_cast<int32_t>(r % static_cast<uint64_t>(d.classes - 1));
    d.labels[i] = other >= d.labels[i] ? other + 1 : other;
  }
  return picked;
}

ChannelStats compute_channel_stats(const Dataset& d) {
  if (d.size() == 0) throw std::invalid_argument(dataset_label(d) + ": no samples for stats");
  const int64_t plane = int64_t{d.height} * d.width;
  ChannelStats s;
  for (int c = 0; c < d.channels; ++c) {
    // Integer sums are exact; the division happens once in double.
    uint64_t sum = 0, sum_sq = 0;
    for (int64_t i = 0; i < d.size(); ++i) {
      const uint8_t* p = d.image(i) + c * plane;
      for (int64_t k = 0; k < plane; ++k) {
        sum += p[k];
        sum_sq += uint64_t{p[k]} * p[k];
      }
    }
    const double count = static_cast<double>(d.size()) * static_cast<double>(plane);
    const double mean = static_cast<double>(sum) / count;
    const double var = std::max(0.0, static_cast<double>(sum_sq) / count - mean * mean);
    s.mean.push_back(static_cast<float>(mean / 255.0));
    s.std.push_back(static_cast<float>(std::sqrt(var) / 255.0));
  }
  return s;
}

}  // namespace st::data
