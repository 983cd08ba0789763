// MNIST-style IDX files (MNIST, Fashion-MNIST), raw or gzip-compressed.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace st::data {

// Reads an idx3-ubyte image file [N, H, W] and an idx1-ubyte label file [N]. Errors name the
// file: bad magic, wrong number of dimensions, truncated or oversized data, count mismatch
// between the two files, label out of [0, classes).
Dataset load_idx(const std::filesystem::path& images_path, const std::filesystem::path& labels_path,
                 int classes = 10, std::vector<std::string> class_names = {});

// The same from file images in memory (the fuzzing entry point); the paths only name them.
Dataset parse_idx(const std::vector<uint8_t>& images, const std::vector<uint8_t>& labels,
                  const std::filesystem::path& images_path,
                  const std::filesystem::path& labels_path, int classes = 10,
                  std::vector<std::string> class_names = {});

// Finds {train,t10k}-{images-idx3,labels-idx1}-ubyte in `dir`, also with '.' before "idx"
// and with ".gz" appended (the first that exists wins), and loads them.
Dataset load_idx_dir(const std::filesystem::path& dir, DataSplit split,
                     std::vector<std::string> class_names = {});

// Class names of the two IDX datasets: the digits, and Zalando's article names.
std::vector<std::string> mnist_class_names();
std::vector<std::string> fashion_mnist_class_names();

// Where Debian's dataset-fashion-mnist package puts the files.
inline constexpr const char* kDebianFashionMnistDir = "/usr/share/datasets/fashion-mnist";

}  // namespace st::data
