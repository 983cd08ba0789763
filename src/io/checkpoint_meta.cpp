#include "io/checkpoint_meta.h"

#include <cmath>
#include <limits>
#include <vector>

#include "io/validate.h"

namespace st {

namespace {

[[noreturn]] void bad_meta(const std::string& origin, const std::string& key,
                           const std::string& what) {
  throw InputError(origin + ": metadata '" + key + "' " + what);
}

// Every number in the architecture is an integer or a probability; bound them all before
// anything is built from them. Iterative, so no nesting can exhaust the stack.
void check_architecture_numbers(const nlohmann::json& layers, const std::string& origin) {
  std::vector<const nlohmann::json*> todo{&layers};
  while (!todo.empty()) {
    const nlohmann::json* v = todo.back();
    todo.pop_back();
    if (v->is_structured()) {
      for (const nlohmann::json& child : *v) todo.push_back(&child);
    } else if (v->is_number_integer()) {
      const int64_t x = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)
                            ? INT64_MAX
                            : v->get<int64_t>();
      if (x > kMaxArchitectureInt)
        bad_meta(origin, "model.layers",
                 "holds the number " + v->dump() + ", more than the " +
                     std::to_string(kMaxArchitectureInt) + " allowed in an architecture");
    } else if (v->is_number_float() && !std::isfinite(v->get<double>())) {
      bad_meta(origin, "model.layers", "holds a non-finite number");
    }
  }
}

int64_t meta_int(const nlohmann::json& meta, const std::string& key, int64_t lo, int64_t hi,
                 const std::string& origin) {
  const nlohmann::json& v = meta.at(key);
  if (!v.is_number_integer())
    bad_meta(origin, key, "must be an integer, got " + std::string(v.type_name()));
  // An unsigned value above INT64_MAX would wrap when read as int64.
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    bad_meta(
        origin, key,
        "is " + v.dump() + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    bad_meta(
        origin, key,
        "is " + v.dump() + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

void check_number_array(const nlohmann::json& v, const std::string& key, bool positive,
                        const std::string& origin) {
  if (!v.is_array() || v.empty() || v.size() > static_cast<std::size_t>(kMaxArchitectureInt))
    bad_meta(origin, key, "must be a non-empty array of numbers");
  for (const nlohmann::json& x : v) {
    if (!x.is_number() || !std::isfinite(x.get<double>()) || (positive && !(x.get<double>() > 0)))
      bad_meta(origin, key,
               std::string("must hold finite") + (positive ? " positive" : "") + " numbers");
  }
}

}  // namespace

void validate_checkpoint_meta(const nlohmann::json& meta, const std::string& origin) {
  if (!meta.is_object()) throw InputError(origin + ": metadata is not a JSON object");
  if (!meta.contains("format") || !meta.at("format").is_number_integer() ||
      meta.at("format").get<int64_t>() != kCheckpointFormat)
    throw InputError(origin + ": unsupported checkpoint format (expected format " +
                     std::to_string(kCheckpointFormat) + ")");
  if (!meta.contains("model") || !meta.at("model").is_object())
    bad_meta(origin, "model", "is missing or not an object");
  const nlohmann::json& m = meta.at("model");
  if (!m.contains("layers") || !m.at("layers").is_array())
    bad_meta(origin, "model.layers", "is missing or not an array");
  check_architecture_numbers(m.at("layers"), origin);
  if (!m.contains("input") || !m.at("input").is_array() || m.at("input").size() != 3)
    bad_meta(origin, "model.input", "must be [channels, height, width]");
  for (const nlohmann::json& d : m.at("input"))
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > kMaxArchitectureInt ||
        (d.is_number_unsigned() && d.get<uint64_t>() > uint64_t(kMaxArchitectureInt)))
      bad_meta(origin, "model.input",
               "must hold integers in [1, " + std::to_string(kMaxArchitectureInt) + "], got " +
                   m.at("input").dump());
  if (!m.contains("classes")) bad_meta(origin, "model.classes", "is missing");
  meta_int(m, "classes", 1, kMaxArchitectureInt, origin + ": model");
  if (meta.contains("epoch")) meta_int(meta, "epoch", 0, std::numeric_limits<int>::max(), origin);
  if (meta.contains("dropout_calls")) {
    const nlohmann::json& d = meta.at("dropout_calls");
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
      bad_meta(origin, "dropout_calls", "must be a non-negative integer");
  }
  if (meta.contains("optimizer_steps")) {
    meta_int(meta, "optimizer_steps", 0, std::numeric_limits<int64_t>::max(), origin);
    // A training checkpoint (it holds optimizer state): a resume reads these.
    for (const char* key : {"epoch", "dropout_calls"})
      if (!meta.contains(key)) bad_meta(origin, key, "is missing (needed to resume)");
  }
  if (meta.contains("elapsed_s")) {
    const nlohmann::json& e = meta.at("elapsed_s");
    if (!e.is_number() || !std::isfinite(e.get<double>()) || e.get<double>() < 0)
      bad_meta(origin, "elapsed_s", "must be a finite number >= 0");
  }
  if (meta.contains("config") && !meta.at("config").is_object())
    bad_meta(origin, "config", "must be an object");
  if (meta.contains("skip_dead") && !meta.at("skip_dead").is_object())
    bad_meta(origin, "skip_dead", "must be an object");
  if (meta.contains("normalization")) {
    const nlohmann::json& n = meta.at("normalization");
    if (!n.is_object() || !n.contains("mean") || !n.contains("std"))
      bad_meta(origin, "normalization", "must be an object with 'mean' and 'std'");
    check_number_array(n.at("mean"), "normalization.mean", false, origin);
    check_number_array(n.at("std"), "normalization.std", true, origin);
    if (n.at("mean").size() != n.at("std").size())
      bad_meta(origin, "normalization", "has mean and std of different lengths");
  }
}

nlohmann::json parse_checkpoint_meta(std::string_view text, const std::string& origin) {
  nlohmann::json meta = parse_json_checked(text, origin + ": __metadata__.sparsetrain");
  validate_checkpoint_meta(meta, origin);
  return meta;
}

}  // namespace st
