#include "data/cifar.h"

#include <stdexcept>

#include "data/file_bytes.h"
#include "io/validate.h"

namespace st::data {

namespace {

constexpr int kSide = 32;
constexpr int kImageBytes = 3 * kSide * kSide;

// `dir` itself when it holds `probe`, else its conventional subdirectory when that does.
std::filesystem::path resolve_cifar_dir(const std::filesystem::path& dir, const char* probe,
                                        const char* subdir) {
  if (std::filesystem::is_regular_file(dir / probe)) return dir;
  if (std::filesystem::is_regular_file(dir / subdir / probe)) return dir / subdir;
  throw InputError("CIFAR directory " + dir.string() + ": no " + probe + " in it or in " +
                   (dir / subdir).string());
}

// Names from a text file next to the data, if it exists and has one per class.
std::vector<std::string> names_from_file(const std::filesystem::path& path, int classes,
                                         std::vector<std::string> fallback) {
  if (!std::filesystem::is_regular_file(path)) return fallback;
  std::vector<std::string> names = read_text_lines(path);
  if (static_cast<int>(names.size()) != classes) {
    throw InputError("CIFAR class names " + path.string() + ": " + std::to_string(names.size()) +
                     " names for " + std::to_string(classes) + " classes");
  }
  return names;
}

}  // namespace

void append_cifar_bytes(const std::vector<uint8_t>& bytes, const std::filesystem::path& path,
                        int label_bytes, int label_index, int classes, Dataset& d) {
  if (label_bytes < 1 || label_index < 0 || label_index >= label_bytes)
    throw std::invalid_argument("CIFAR: label index " + std::to_string(label_index) + " with " +
                                std::to_string(label_bytes) + " label bytes");
  const std::size_t record = static_cast<std::size_t>(label_bytes) + kImageBytes;
  if (bytes.empty() || bytes.size() % record != 0) {
    throw InputError("CIFAR file " + path.string() + ": size " + std::to_string(bytes.size()) +
                     " is not a positive multiple of the " + std::to_string(record) +
                     "-byte record (truncated or wrong format)");
  }
  const std::size_t n = bytes.size() / record;
  d.pixels.reserve(d.pixels.size() + n * kImageBytes);
  for (std::size_t i = 0; i < n; ++i) {
    const uint8_t* r = bytes.data() + i * record;
    const int label = r[label_index];
    if (label >= classes) {
      throw InputError("CIFAR file " + path.string() + ": label " + std::to_string(label) +
                       " of record " + std::to_string(i) + " is out of range [0, " +
                       std::to_string(classes) + ")");
    }
    d.labels.push_back(label);
    d.pixels.insert(d.pixels.end(), r + label_bytes, r + record);
  }
}

namespace {

void append_cifar_file(const std::filesystem::path& path, int label_bytes, int label_index,
                       int classes, Dataset& d) {
  append_cifar_bytes(read_file_bytes(path), path, label_bytes, label_index, classes, d);
}

}  // namespace

Dataset load_cifar_files(const std::vector<std::filesystem::path>& files, int label_bytes,
                         int label_index, int classes) {
  if (label_bytes < 1 || label_index < 0 || label_index >= label_bytes) {
    throw std::invalid_argument("load_cifar_files: label index " + std::to_string(label_index) +
                                " with " + std::to_string(label_bytes) + " label bytes");
  }
  if (files.empty()) throw std::invalid_argument("load_cifar_files: no files given");
  Dataset d;
  d.channels = 3;
  d.height = kSide;
  d.width = kSide;
  d.classes = classes;
  for (const auto& f : files) append_cifar_file(f, label_bytes, label_index, classes, d);
  d.description = files.front().string() + (files.size() > 1 ? " ..." : "");
  return d;
}

std::vector<std::string> cifar10_class_names() {
  return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
}

Dataset load_cifar10(const std::filesystem::path& dir, DataSplit split) {
  const std::filesystem::path root =
      resolve_cifar_dir(dir, split == DataSplit::Train ? "data_batch_1.bin" : "test_batch.bin",
                        "cifar-10-batches-bin");
  std::vector<std::filesystem::path> files;
  if (split == DataSplit::Train) {
    for (int b = 1; b <= 5; ++b)
      files.push_back(root / ("data_batch_" + std::to_string(b) + ".bin"));
  } else {
    files.push_back(root / "test_batch.bin");
  }
  Dataset d = load_cifar_files(files, 1, 0, 10);
  d.class_names = names_from_file(root / "batches.meta.txt", 10, cifar10_class_names());
  d.description = "CIFAR-10 " + std::string(split_name(split)) + " (" + root.string() + ")";
  d.validate();
  return d;
}

Dataset load_cifar100(const std::filesystem::path& dir, DataSplit split, Cifar100Labels labels) {
  const char* file = split == DataSplit::Train ? "train.bin" : "test.bin";
  const std::filesystem::path root = resolve_cifar_dir(dir, file, "cifar-100-binary");
  const bool fine = labels == Cifar100Labels::Fine;
  const int classes = fine ? 100 : 20;
  Dataset d = load_cifar_files({root / file}, 2, fine ? 1 : 0, classes);
  d.class_names = names_from_file(root / (fine ? "fine_label_names.txt" : "coarse_label_names.txt"),
                                  classes, {});
  d.description = "CIFAR-100 " + std::string(split_name(split)) + " (" +
                  (fine ? "fine" : "coarse") + " labels, " + root.string() + ")";
  d.validate();
  return d;
}

}  // namespace st::data
