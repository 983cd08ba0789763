// Strict, path-aware reading of one JSON object level: every accessor checks the type and range
// of its value and every error names the source and the dotted JSON path of the value.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/json_text.h"  // json_path_join, json_path_index

namespace st {

// An interval of allowed numbers, described in messages as "> 0", "in [0, 1)", ...
struct NumberRange {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;

  bool contains(double v) const;
  std::string describe() const;  // empty when unbounded

  static NumberRange any() { return {}; }
  static NumberRange positive() { return {0.0, kInf, true, false}; }
  static NumberRange non_negative() { return {0.0, kInf, false, false}; }
  static NumberRange unit_right_open() { return {0.0, 1.0, false, true}; }  // [0, 1)
  static NumberRange unit_left_open() { return {0.0, 1.0, true, false}; }   // (0, 1]
  static NumberRange unit_closed() { return {0.0, 1.0, false, false}; }     // [0, 1]

 private:
  static constexpr double kInf = std::numeric_limits<double>::infinity();
};

// A value as a message shows it: 1.5, "abc", true, null, an object, an array of 3.
std::string describe_json_value(const nlohmann::json& value);

class JsonReader {
 public:
  // `object` must outlive the reader. A null `object` reads as an empty object (a section that
  // was left out, so all its defaults apply).
  JsonReader(const nlohmann::json& object, std::string path, std::string source);

  const std::string& path() const { return path_; }
  const std::string& source() const { return source_; }
  std::string path_of(const std::string& key) const { return json_path_join(path_, key); }
  [[noreturn]] void fail_at(const std::string& path, const std::string& message) const;
  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    fail_at(path_of(key), message);
  }

  bool has(const std::string& key) const;
  const nlohmann::json& get(const std::string& key) const;  // the key must exist
  std::vector<std::string> keys() const;

  // Rejects the first key not in `valid`, suggesting the closest valid key.
  void allow_keys(const std::vector<std::string>& valid) const;
  // As allow_keys, but keys in `known` that are not `valid` here get "does not apply to
  // <context>" instead of "unknown key" (e.g. "amsgrad" with optimizer "sgd").
  void allow_keys(const std::vector<std::string>& valid, const std::vector<std::string>& known,
                  const std::string& context) const;

  // The nested object at `key` (absent: an empty one).
  JsonReader child(const std::string& key) const;

  // Optional values take a default; without one (std::nullopt) the key is required.
  double number(const std::string& key, NumberRange range, std::optional<double> def) const;
  int64_t integer(const std::string& key, int64_t lo, int64_t hi, std::optional<int64_t> def) const;
  bool boolean(const std::string& key, std::optional<bool> def) const;
  std::string string(const std::string& key, std::optional<std::string> def) const;
  std::string choice(const std::string& key, const std::vector<std::string>& options,
                     std::optional<std::string> def) const;
  // An array of numbers; `exact_size` 0 means any non-empty length.
  std::vector<double> number_array(const std::string& key, NumberRange range, size_t exact_size,
                                   std::optional<std::vector<double>> def) const;
  std::vector<int64_t> integer_array(const std::string& key, int64_t lo, int64_t hi,
                                     size_t exact_size,
                                     std::optional<std::vector<int64_t>> def) const;

  // Checks for single values at a given path (array elements, values of several types).
  double as_number(const nlohmann::json& v, const std::string& path, NumberRange range) const;
  int64_t as_integer(const nlohmann::json& v, const std::string& path, int64_t lo,
                     int64_t hi) const;
  std::string as_choice(const nlohmann::json& v, const std::string& path,
                        const std::vector<std::string>& options) const;

 private:
  [[noreturn]] void fail_missing(const std::string& key) const;
  const nlohmann::json& array_at(const std::string& key, size_t exact_size) const;

  const nlohmann::json* object_;  // null for an absent section
  std::string path_;
  std::string source_;
};

}  // namespace st
