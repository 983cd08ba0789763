#include "config/json_reader.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "config/config_error.h"
#include "config/suggest.h"

namespace st {

namespace {

std::string format_number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Upper bounds at the type's limit are implementation detail, not worth showing.
std::string integer_range_text(int64_t lo, int64_t hi) {
  if (hi >= std::numeric_limits<int>::max()) return ">= " + std::to_string(lo);
  return "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

const nlohmann::json& empty_object() {
  static const nlohmann::json empty = nlohmann::json::object();
  return empty;
}

}  // namespace

bool NumberRange::contains(double v) const {
  bool above = lo_open ? v > lo : v >= lo;
  bool below = hi_open ? v < hi : v <= hi;
  return above && below;
}

std::string NumberRange::describe() const {
  bool has_lo = std::isfinite(lo), has_hi = std::isfinite(hi);
  if (has_lo && has_hi) {
    return "in " + std::string(lo_open ? "(" : "[") + format_number(lo) + ", " + format_number(hi) +
           (hi_open ? ")" : "]");
  }
  if (has_lo) return (lo_open ? "> " : ">= ") + format_number(lo);
  if (has_hi) return (hi_open ? "< " : "<= ") + format_number(hi);
  return "";
}

std::string describe_json_value(const nlohmann::json& value) {
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array of " + std::to_string(value.size());
  return value.dump();
}

JsonReader::JsonReader(const nlohmann::json& object, std::string path, std::string source)
    : object_(&object), path_(std::move(path)), source_(std::move(source)) {
  if (object.is_null()) {
    object_ = &empty_object();
  } else if (!object.is_object()) {
    fail_at(path_, "expected an object, got " + describe_json_value(object));
  }
}

void JsonReader::fail_at(const std::string& path, const std::string& message) const {
  throw ConfigError(source_, path, message);
}

void JsonReader::fail_missing(const std::string& key) const {
  fail(key, "missing required key");
}

bool JsonReader::has(const std::string& key) const {
  return object_->contains(key);
}

const nlohmann::json& JsonReader::get(const std::string& key) const {
  auto it = object_->find(key);
  if (it == object_->end()) fail_missing(key);
  return *it;
}

std::vector<std::string> JsonReader::keys() const {
  std::vector<std::string> out;
  for (auto it = object_->begin(); it != object_->end(); ++it) out.push_back(it.key());
  return out;
}

void JsonReader::allow_keys(const std::vector<std::string>& valid) const {
  allow_keys(valid, valid, "");
}

void JsonReader::allow_keys(const std::vector<std::string>& valid,
                            const std::vector<std::string>& known,
                            const std::string& context) const {
  for (const std::string& key : keys()) {
    if (std::find(valid.begin(), valid.end(), key) != valid.end()) continue;
    if (std::find(known.begin(), known.end(), key) != known.end()) {
      fail(key, "does not apply to " + context + " (its keys: " + quoted_list(valid) + ")");
    }
    std::string message = "unknown key";
    std::string suggestion = closest_match(key, valid);
    if (!suggestion.empty()) message += "; did you mean \"" + suggestion + "\"?";
    fail(key, message + " (valid keys here: " + quoted_list(valid) + ")");
  }
}

JsonReader JsonReader::child(const std::string& key) const {
  if (!has(key)) return JsonReader(empty_object(), path_of(key), source_);
  const nlohmann::json& v = get(key);
  if (!v.is_object()) fail(key, "expected an object, got " + describe_json_value(v));
  return JsonReader(v, path_of(key), source_);
}

double JsonReader::as_number(const nlohmann::json& v, const std::string& path,
                             NumberRange range) const {
  std::string wanted = "a number";
  if (!range.describe().empty()) wanted += " " + range.describe();
  if (!v.is_number()) fail_at(path, "expected " + wanted + ", got " + describe_json_value(v));
  double x = v.get<double>();
  if (!range.contains(x)) fail_at(path, "expected " + wanted + ", got " + describe_json_value(v));
  return x;
}

int64_t JsonReader::as_integer(const nlohmann::json& v, const std::string& path, int64_t lo,
                               int64_t hi) const {
  std::string wanted = "an integer " + integer_range_text(lo, hi);
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi) || static_cast<int64_t>(u) < lo)
      fail_at(path, "expected " + wanted + ", got " + v.dump());
    return static_cast<int64_t>(u);
  }
  int64_t x = 0;
  if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_number_float() && std::nearbyint(v.get<double>()) == v.get<double>() &&
             std::abs(v.get<double>()) < 9.0e18) {
    x = static_cast<int64_t>(v.get<double>());  // 1e4 written for 10000
  } else {
    fail_at(path, "expected " + wanted + ", got " + describe_json_value(v));
  }
  if (x < lo || x > hi) fail_at(path, "expected " + wanted + ", got " + v.dump());
  return x;
}

std::string JsonReader::as_choice(const nlohmann::json& v, const std::string& path,
                                  const std::vector<std::string>& options) const {
  std::string wanted = "one of " + quoted_list(options);
  if (!v.is_string()) fail_at(path, "expected " + wanted + ", got " + describe_json_value(v));
  const std::string s = v.get<std::string>();
  if (std::find(options.begin(), options.end(), s) != options.end()) return s;
  std::string message = "expected " + wanted + ", got " + v.dump();
  std::string suggestion = closest_match(s, options);
  if (!suggestion.empty()) message += "; did you mean \"" + suggestion + "\"?";
  fail_at(path, message);
}

double JsonReader::number(const std::string& key, NumberRange range,
                          std::optional<double> def) const {
  if (!has(key)) {
    if (!def) fail_missing(key);
    return *def;
  }
  return as_number(get(key), path_of(key), range);
}

int64_t JsonReader::integer(const std::string& key, int64_t lo, int64_t hi,
                            std::optional<int64_t> def) const {
  if (!has(key)) {
    if (!def) fail_missing(key);
    return *def;
  }
  return as_integer(get(key), path_of(key), lo, hi);
}

bool JsonReader::boolean(const std::string& key, std::optional<bool> def) const {
  if (!has(key)) {
    if (!def) fail_missing(key);
    return *def;
  }
  const nlohmann::json& v = get(key);
  if (!v.is_boolean()) fail(key, "expected true or false, got " + describe_json_value(v));
  return v.get<bool>();
}

std::string JsonReader::string(const std::string& key, std::optional<std::string> def) const {
  if (!has(key)) {
    if (!def) fail_missing(key);
    return *def;
  }
  const nlohmann::json& v = get(key);
  if (!v.is_string()) fail(key, "expected a string, got " + describe_json_value(v));
  if (v.get<std::string>().empty()) fail(key, "expected a non-empty string, got \"\"");
  return v.get<std::string>();
}

std::string JsonReader::choice(const std::string& key, const std::vector<std::string>& options,
                               std::optional<std::string> def) const {
  if (!has(key)) {
    if (!def) fail(key, "missing required key (one of " + quoted_list(options) + ")");
    return *def;
  }
  return as_choice(get(key), path_of(key), options);
}

const nlohmann::json& JsonReader::array_at(const std::string& key, size_t exact_size) const {
  const nlohmann::json& v = get(key);
  std::string wanted = exact_size > 0 ? "an array of " + std::to_string(exact_size) : "an array";
  if (!v.is_array()) fail(key, "expected " + wanted + ", got " + describe_json_value(v));
  if (exact_size > 0 && v.size() != exact_size) {
    fail(key, "expected " + wanted + ", got " + describe_json_value(v));
  }
  return v;
}

std::vector<double> JsonReader::number_array(const std::string& key, NumberRange range,
                                             size_t exact_size,
                                             std::optional<std::vector<double>> def) const {
  if (!has(key)) {
    if (!def) fail_missing(key);
    return *def;
  }
  const nlohmann::json& v = array_at(key, exact_size);
  std::vector<double> out;
  for (size_t i = 0; i < v.size(); ++i) {
    out.push_back(as_number(v[i], json_path_index(path_of(key), i), range));
  }
  return out;
}

std::vector<int64_t> JsonReader::integer_array(const std::string& key, int64_t lo, int64_t hi,
                                               size_t exact_size,
                                               std::optional<std::vector<int64_t>> def) const {
  if (!has(key)) {
    if (!def) fail_missing(key);
    return *def;
  }
  const nlohmann::json& v = array_at(key, exact_size);
  std::vector<int64_t> out;
  for (size_t i = 0; i < v.size(); ++i) {
    out.push_back(as_integer(v[i], json_path_index(path_of(key), i), lo, hi));
  }
  return out;
}

}  // namespace st
