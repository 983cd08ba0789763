// Shared checks for everything sparsetrain reads back (checkpoints, safetensors files, dataset
// headers): checked size arithmetic, JSON parsed with a bounded depth and no duplicate keys,
// finite tensors. A file that fails them raises InputError, which the CLI maps to exit code 2
// (the user's file); I/O failures stay std::runtime_error (exit code 1).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "io/json_text.h"
#include "tensor/tensor.h"

namespace st {

// A malformed or hostile input file. what() names the file and what is wrong.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// a * b, or InputError("<what>: size overflows 64 bits") when it does not fit.
uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& what);
// The product of `factors`, each checked.
uint64_t checked_product(std::initializer_list<uint64_t> factors, const std::string& what);
// Throws InputError("<what>: <value> is outside [lo, hi]") unless lo <= value <= hi.
void check_range(int64_t value, int64_t lo, int64_t hi, const std::string& what);

// parse_json_strict for a file read back: InputError("<origin>: [<path>: ]<problem>"). A syntax
// error carries the byte position, never the library's text (which quotes the hostile input).
nlohmann::json parse_json_checked(std::string_view text, const std::string& origin,
                                  int max_depth = kMaxJsonDepth);

// Throws InputError("<origin>: tensor '<name>' holds <NaN|inf> at index i") when a floating
// tensor (CPU) holds a non-finite value; integer tensors always pass.
void check_finite(const Tensor& t, const std::string& name, const std::string& origin);

}  // namespace st
