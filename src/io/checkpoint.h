// Checkpoints: one safetensors file holding everything a run needs to continue
// or to be evaluated and exported on its own.
//
//   <state_dict key>        every parameter and BN buffer (num_batches_tracked as I64),
//                           named as in PyTorch, so the file loads there directly;
//   optimizer.<state name>  the optimizer's flat state buffers (e.g. optimizer.exp_avg);
//   __metadata__["sparsetrain"]  JSON: {"format": 1, "model": {"layers", "input", "classes"},
//                           plus whatever the caller adds (epoch, RNG counters, history, ...).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "io/checkpoint_meta.h"
#include "io/safetensors.h"
#include "nn/model.h"
#include "optim/optimizer.h"

namespace st {

// The model's architecture as stored in checkpoints and exports.
nlohmann::json model_architecture_json(const Model& model);

// The model's parameters and buffers by state_dict key, and the set of keys stored as I64.
std::vector<std::pair<std::string, Tensor>> model_state_tensors(const Model& model);
std::set<std::string> int64_state_keys(const Model& model);

// Writes atomically (temp file, fsync, rename). `extra` is merged into the metadata JSON.
void save_checkpoint(const std::string& path, const Model& model, const Optimizer* optimizer,
                     const nlohmann::json& extra);

// Loading validates everything before use (io/validate.h): the safetensors layout, the
// metadata, every tensor's shape against the architecture, and that weights and optimizer
// state are finite. Failures raise InputError (exit code 2) naming the file and the tensor/key.
class Checkpoint {
 public:
  static Checkpoint load(const std::string& path);
  const nlohmann::json& meta() const { return meta_; }
  const std::string& path() const { return reader_.origin(); }
  // A model of the stored architecture on `backend`, holding the stored weights.
  std::unique_ptr<Model> make_model(Backend& backend) const;
  // Copies every stored parameter and buffer into `model`; the keys and shapes must match.
  void load_model_state(Model& model) const;
  void load_optimizer_state(Optimizer& optimizer) const;
  bool has_optimizer_state() const;
  const SafetensorsReader& reader() const { return reader_; }

 private:
  Checkpoint(SafetensorsReader reader, nlohmann::json meta)
      : reader_(std::move(reader)), meta_(std::move(meta)) {}
  SafetensorsReader reader_;
  nlohmann::json meta_;
};

}  // namespace st
