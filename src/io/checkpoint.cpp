#include "io/checkpoint.h"

#include <cmath>
#include <limits>
#include <new>
#include <stdexcept>

#include "io/validate.h"
#include "nn/layer_json.h"

namespace st {

namespace {
const char* kMetaKey = "sparsetrain";
const char* kOptimizerPrefix = "optimizer.";

// Bounds for numbers in a stored architecture: any channel count, kernel, stride or image side
// above this is not a network sparsetrain made, and would only serve to allocate gigabytes.
constexpr int64_t kMaxArchitectureInt = 1 << 16;

bool is_count_buffer(const std::string& name) {
  const std::string suffix = ".num_batches_tracked";
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

nlohmann::json model_architecture_json(const Model& model) {
  InputShape in = model.input_shape();
  return {{"layers", layers_to_json(model.specs())},
          {"input", {in.channels, in.height, in.width}},
          {"classes", model.classes()}};
}

std::vector<std::pair<std::string, Tensor>> model_state_tensors(const Model& model) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const ParamView& v : model.param_views()) out.emplace_back(v.name, model.tensor(v.name));
  for (const BufferView& v : model.buffer_views()) out.emplace_back(v.name, model.tensor(v.name));
  return out;
}

std::set<std::string> int64_state_keys(const Model& model) {
  std::set<std::string> keys;
  for (const BufferView& v : model.buffer_views())
    if (is_count_buffer(v.name)) keys.insert(v.name);
  return keys;
}

void save_checkpoint(const std::string& path, const Model& model, const Optimizer* optimizer,
                     const nlohmann::json& extra) {
  auto tensors = model_state_tensors(model);
  nlohmann::json meta = extra;
  meta["format"] = kCheckpointFormat;
  meta["model"] = model_architecture_json(model);
  if (optimizer) {
    std::vector<std::string> names = optimizer->state_names();
    for (std::size_t i = 0; i < names.size(); ++i)
      tensors.emplace_back(kOptimizerPrefix + names[i], optimizer->state()[i]);
    meta["optimizer_steps"] = optimizer->steps();
  }
  // Never write metadata that Checkpoint::load would refuse (e.g. a deeply nested `extra`).
  validate_checkpoint_meta(meta, path);
  if (json_depth(meta) > kMaxJsonDepth)
    throw std::runtime_error(path + ": checkpoint metadata nests deeper than " +
                             std::to_string(kMaxJsonDepth) + " levels");
  write_safetensors(path, tensors, {{kMetaKey, meta.dump()}}, int64_state_keys(model));
}

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
  if (meta.contains("optimizer_steps"))
    meta_int(meta, "optimizer_steps", 0, std::numeric_limits<int64_t>::max(), origin);
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
  nlohmann::json meta = parse_json_checked(text, origin + ": __metadata__." + kMetaKey);
  validate_checkpoint_meta(meta, origin);
  return meta;
}

Checkpoint Checkpoint::load(const std::string& path) {
  SafetensorsReader reader = SafetensorsReader::load(path);
  auto it = reader.metadata().find(kMetaKey);
  if (it == reader.metadata().end())
    throw InputError(path + ": not a sparsetrain checkpoint (no __metadata__." + kMetaKey + ")");
  nlohmann::json meta = parse_checkpoint_meta(it->second, path);
  return Checkpoint(std::move(reader), std::move(meta));
}

std::unique_ptr<Model> Checkpoint::make_model(Backend& backend) const {
  const nlohmann::json& m = meta_.at("model");
  std::unique_ptr<Model> model;
  try {
    std::vector<LayerSpec> layers = layers_from_json(m.at("layers"), path() + ": model.layers");
    InputShape in{m.at("input").at(0).get<int64_t>(), m.at("input").at(1).get<int64_t>(),
                  m.at("input").at(2).get<int64_t>()};
    model = std::make_unique<Model>(std::move(layers), in, m.at("classes").get<int64_t>(), backend);
  } catch (const std::bad_alloc&) {
    throw InputError(path() + ": the stored architecture needs more memory than is available");
  } catch (const std::invalid_argument& e) {
    // The architecture's own checks: the message already names the layer and key.
    throw InputError(path() + ": stored architecture: " + e.what());
  }
  load_model_state(*model);
  return model;
}

void Checkpoint::load_model_state(Model& model) const {
  for (auto& [name, dst] : model_state_tensors(model)) {
    if (!reader_.has(name))
      throw InputError(path() + ": missing tensor '" + name + "' for this model");
    const SafetensorsEntry& e = reader_.entry(name);
    if (e.shape != dst.shape())
      throw InputError(path() + ": tensor '" + name + "' has shape " + shape_str(e.shape) +
                       ", the model expects " + shape_str(dst.shape()));
    Tensor src = reader_.get_f32(name);
    check_finite(src, name, path());
    Tensor target = dst;
    target.copy_from(src.to(dst.dtype()));
  }
}

bool Checkpoint::has_optimizer_state() const {
  return meta_.contains("optimizer_steps");
}

void Checkpoint::load_optimizer_state(Optimizer& optimizer) const {
  if (!has_optimizer_state()) throw InputError(path() + ": no optimizer state stored");
  std::vector<std::string> names = optimizer.state_names();
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string key = kOptimizerPrefix + names[i];
    if (!reader_.has(key))
      throw InputError(path() + ": missing optimizer state '" + key +
                       "' (was the run made with another optimizer?)");
    Tensor& dst = optimizer.state()[i];
    // Checked before decoding: a hostile shape must not allocate.
    if (shape_numel(reader_.entry(key).shape) != dst.numel())
      throw InputError(path() + ": optimizer state '" + key + "' has " +
                       std::to_string(shape_numel(reader_.entry(key).shape)) +
                       " elements, expected " + std::to_string(dst.numel()));
    Tensor src = reader_.get(key);
    check_finite(src, key, path());
    dst.copy_from(src.to(dst.dtype()).reshape(dst.shape()));
  }
  optimizer.set_steps(meta_.at("optimizer_steps").get<int64_t>());
}

}  // namespace st
