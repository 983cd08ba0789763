#include "train/experiment_data.h"

#include <filesystem>
#include <stdexcept>

#include "config/json_reader.h"
#include "data/cifar.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "data/synthetic.h"

namespace st {

namespace fs = std::filesystem;

namespace {

data::Dataset synthetic_split(const SyntheticOptions& s, data::DataSplit split) {
  data::SyntheticOptions o;
  o.size = split == data::DataSplit::Train ? s.train_size : s.test_size;
  o.channels = s.channels;
  o.height = s.height;
  o.width = s.width;
  o.classes = s.classes;
  o.noise = static_cast<float>(s.noise);
  o.template_seed = s.seed;
  // Train and test share the class templates but not the samples.
  o.sample_seed = split == data::DataSplit::Train ? 2 * s.seed + 1 : 2 * s.seed + 2;
  return data::make_synthetic(o);
}

// An image folder holds train/ and optionally test/; without train/, the whole folder
// is the training set.
std::pair<data::Dataset, std::optional<data::Dataset>> image_folder_splits(const DataConfig& c) {
  data::ImageFolderOptions o;
  o.channels = c.image_folder.channels;
  o.height = c.image_folder.height;
  o.width = c.image_folder.width;
  o.resize = c.image_folder.resize;
  fs::path root(c.path);
  if (!fs::is_directory(root / "train")) return {data::load_image_folder(root, o), std::nullopt};
  std::optional<data::Dataset> test;
  if (fs::is_directory(root / "test")) test = data::load_image_folder(root / "test", o);
  return {data::load_image_folder(root / "train", o), std::move(test)};
}

std::pair<data::Dataset, std::optional<data::Dataset>> load_splits(const DataConfig& c) {
  using data::DataSplit;
  switch (c.kind) {
    case DataKind::FashionMnist:
      return {data::load_idx_dir(c.path, DataSplit::Train, data::fashion_mnist_class_names()),
              data::load_idx_dir(c.path, DataSplit::Test, data::fashion_mnist_class_names())};
    case DataKind::Mnist:
      return {data::load_idx_dir(c.path, DataSplit::Train, data::mnist_class_names()),
              data::load_idx_dir(c.path, DataSplit::Test, data::mnist_class_names())};
    case DataKind::Cifar10:
      return {data::load_cifar10(c.path, DataSplit::Train),
              data::load_cifar10(c.path, DataSplit::Test)};
    case DataKind::Cifar100: {
      auto labels = c.label == Cifar100Label::Fine ? data::Cifar100Labels::Fine
                                                   : data::Cifar100Labels::Coarse;
      return {data::load_cifar100(c.path, DataSplit::Train, labels),
              data::load_cifar100(c.path, DataSplit::Test, labels)};
    }
    case DataKind::ImageFolder:
      return image_folder_splits(c);
    case DataKind::Synthetic:
      return {synthetic_split(c.synthetic, DataSplit::Train),
              synthetic_split(c.synthetic, DataSplit::Test)};
  }
  throw std::logic_error("load_splits: unknown data kind");
}

}  // namespace

ExperimentData load_experiment_data(const DataConfig& c) {
  ExperimentData out;
  auto [train, test] = load_splits(c);
  out.test = std::move(test);
  // The config could not know the data's size; these are still the user's values (exit 2).
  if (c.train_subset > train.size()) {
    throw ConfigError(c.source, "data.train_subset",
                      "asks for " + std::to_string(c.train_subset) +
                          " images, but the training set" +
                          (c.path.empty() ? "" : " in \"" + c.path + "\"") + " has " +
                          std::to_string(train.size()));
  }
  if (c.train_subset > 0 && c.train_subset < train.size())
    train = c.subset_mode == SubsetMode::First
                ? data::take_first(train, c.train_subset)
                : data::random_subset(train, c.train_subset, c.subset_seed, /*stratified=*/true);
  if (c.validation_split > 0) {
    const int64_t n_val = c.validation_size(train.size());
    if (n_val < 1 || n_val >= train.size())
      throw ConfigError(c.source, "data.validation_split",
                        describe_json_value(c.validation_split) + " of " +
                            std::to_string(train.size()) + " training images holds out " +
                            std::to_string(n_val) + ", which leaves an empty " +
                            (n_val < 1 ? "validation" : "training") + " set");
    auto split = data::split_validation(train, n_val, c.subset_seed + 1, /*stratified=*/true);
    train = std::move(split.train);
    out.validation = std::move(split.validation);
  }
  if (c.label_noise > 0) {
    // After the split, so that validation and test keep their true labels; the same images
    // and subset as without noise, only the training labels differ.
    const auto n = static_cast<int64_t>(c.label_noise * static_cast<double>(train.size()));
    data::corrupt_labels(train, n, c.subset_seed + 2);
    train.description += " (" + std::to_string(n) + " labels made wrong)";
  }
  out.train = std::move(train);
  const NormalizeConfig& n = c.augmentation.normalize;
  if (n.mode == NormalizeMode::Computed) {
    out.normalization = data::normalization_from(out.train);
  } else if (n.mode == NormalizeMode::Given) {
    out.normalization.mean.assign(n.mean.begin(), n.mean.end());
    out.normalization.std.assign(n.std.begin(), n.std.end());
  }
  return out;
}

data::LoaderOptions train_loader_options(const ExperimentConfig& c,
                                         const data::Normalization& norm) {
  data::LoaderOptions o;
  o.batch_size = c.training.batch_size;
  o.shuffle = true;
  o.drop_last = c.training.drop_last;
  o.seed = c.training.seed;
  o.normalization = norm;
  o.augmentation.crop_padding = c.data.augmentation.random_crop_padding;
  o.augmentation.horizontal_flip = c.data.augmentation.horizontal_flip;
  o.prefetch = c.data.loader.prefetch;
  return o;
}

data::LoaderOptions eval_loader_options(int64_t batch_size, const data::Normalization& norm) {
  data::LoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = false;
  o.normalization = norm;
  return o;
}

}  // namespace st
