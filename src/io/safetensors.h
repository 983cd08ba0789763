// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of UTF-8 JSON mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (byte offsets into the data
// section that follows), plus an optional "__metadata__" string-to-string map.
// The reader enforces the format's rules and rejects anything else with a
// SafetensorsError naming the file and the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "io/validate.h"
#include "tensor/tensor.h"

namespace st {

// A file that breaks the format's rules, or tensors the writer cannot store. Failures to
// write (full disk, missing folder) are std::runtime_error instead.
class SafetensorsError : public InputError {
 public:
  using InputError::InputError;
};

// Largest header the reader accepts (the reference implementation's limit).
constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;
// Most dimensions a stored tensor may have (sparsetrain writes at most 4).
constexpr std::size_t kMaxTensorDims = 8;

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range in the data section
};

class SafetensorsReader {
 public:
  // Reads and validates the whole file.
  static SafetensorsReader load(const std::string& path);
  // Validates an in-memory image of a file; `origin` names it in errors.
  static SafetensorsReader parse(std::vector<uint8_t> bytes, const std::string& origin);

  const std::string& origin() const { return origin_; }
  // Tensor names in data order.
  std::vector<std::string> names() const;
  bool has(const std::string& name) const { return index_.count(name) > 0; }
  const SafetensorsEntry& entry(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A CPU tensor: F32, F64 and I32 as stored; F16 and BF16 widened to F32; I64,
  // I16, I8, U8 and BOOL as I32 (I64 values must fit in 32 bits).
  Tensor get(const std::string& name) const;
  // Any dtype converted to F32 (or F64).
  Tensor get_f32(const std::string& name) const;
  Tensor get_f64(const std::string& name) const;

 private:
  SafetensorsReader() = default;
  const uint8_t* data_of(const SafetensorsEntry& e) const;
  std::string where(const std::string& name) const;

  std::string origin_;
  std::vector<uint8_t> bytes_;
  uint64_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;  // sorted by begin
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// The file image: F32, F64 and I32 tensors keep their dtype; names in `as_int64`
// are stored as I64 (their values must be integers), e.g. BatchNorm's
// num_batches_tracked so that PyTorch's strict state_dict loading accepts them.
// Tensors may live on any device.
std::vector<uint8_t> serialize_safetensors(
    const std::vector<std::pair<std::string, Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {},
    const std::set<std::string>& as_int64 = {});

// Writes atomically: a temporary file in the same folder, fsync, then rename (io/file_write.h).
// A header the reader would refuse (over kSafetensorsMaxHeader) is refused here first.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {},
                       const std::set<std::string>& as_int64 = {});

// IEEE half and bfloat16 bit patterns to float (exact).
float half_to_float(uint16_t bits);
float bfloat16_to_float(uint16_t bits);

}  // namespace st
