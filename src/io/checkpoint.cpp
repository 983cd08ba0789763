#include "io/checkpoint.h"

#include <new>
#include <stdexcept>

#include "io/checkpoint_meta.h"
#include "io/validate.h"
#include "nn/layer_json.h"

namespace st {

namespace {
const char* kMetaKey = "sparsetrain";
const char* kOptimizerPrefix = "optimizer.";

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
  if (json_nested_deeper_than(meta))
    throw std::runtime_error(path + ": checkpoint metadata nests deeper than " +
                             std::to_string(kMaxJsonDepth) + " levels");
  write_safetensors(path, tensors, {{kMetaKey, meta.dump()}}, int64_state_keys(model));
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
