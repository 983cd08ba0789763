// CIFAR-10 and CIFAR-100 in their binary distributions ("cifar-10-batches-bin",
// "cifar-100-binary"): fixed-size records of label byte(s) then 3072 pixel bytes
// (1024 red, 1024 green, 1024 blue; row-major 32x32), i.e. already CHW.
#pragma once

#include <filesystem>
#include <vector>

#include "data/dataset.h"

namespace st::data {

// Reads data_batch_1..5.bin (train) or test_batch.bin (test) from `dir`, or from
// dir/cifar-10-batches-bin when `dir` does not hold them itself. Class names come from
// batches.meta.txt when present, else the standard ten.
Dataset load_cifar10(const std::filesystem::path& dir, DataSplit split);

enum class Cifar100Labels { Fine, Coarse };

// Reads train.bin or test.bin from `dir` (or dir/cifar-100-binary): records of coarse label,
// fine label, pixels. Class names come from {fine,coarse}_label_names.txt when present.
Dataset load_cifar100(const std::filesystem::path& dir, DataSplit split,
                      Cifar100Labels labels = Cifar100Labels::Fine);

// Reads explicit CIFAR binary files. `label_bytes` is 1 (CIFAR-10) or 2 (CIFAR-100, coarse
// first); `label_index` picks which of them is the label; `classes` bounds it. Errors name
// the file: a size that is not a whole number of records, a label out of range.
Dataset load_cifar_files(const std::vector<std::filesystem::path>& files, int label_bytes,
                         int label_index, int classes);

// Appends the records of one file image in memory to `d` (the fuzzing entry point); `path`
// only names it in errors.
void append_cifar_bytes(const std::vector<uint8_t>& bytes, const std::filesystem::path& path,
                        int label_bytes, int label_index, int classes, Dataset& d);

std::vector<std::string> cifar10_class_names();

}  // namespace st::data
