// A layer list as JSON, for config files and for rebuilding a model in PyTorch
// (scripts/torch_model.py reads the same form).
//
// Each layer is an object with "kind" (conv, bn, relu, maxpool, avgpool, gap,
// linear, flatten, dropout, add), optional "name" and "inputs" (array of layer
// names or "input"), and the fields its kind uses:
//   conv:            out (required), kernel = 3, stride = 1, pad = 0, bias = false
//   maxpool/avgpool: kernel = 3, stride = kernel, pad = 0
//   linear:          out = "classes" (or a positive integer), bias = false
//   bn:              eps = 1e-5, momentum = 0.1
//   dropout:         p = 0.5
// Any other key is an error naming its JSON path.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/layer_spec.h"

namespace st {

// Writes every field the layer's kind uses, so reading it back gives the same specs.
nlohmann::json layers_to_json(const std::vector<LayerSpec>& layers);

// `j` must be an array of layer objects; `json_path` is its path in the
// document (e.g. "model.layers"), used in error messages like
// "model.layers[3].strid: unknown key (did you mean 'stride'?)".
// Throws std::invalid_argument.
std::vector<LayerSpec> layers_from_json(const nlohmann::json& j, const std::string& json_path);

}  // namespace st
