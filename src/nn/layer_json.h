// A layer list as JSON, for config files and for rebuilding a model in PyTorch
// (scripts/torch_model.py reads the same form).
//
// Each layer is an object with "kind" (a kind's name: conv, bn, relu, ...), optional "name"
// and "inputs" (array of layer names or "input"), and the keys its kind uses, with the
// defaults and required keys its descriptor gives (nn/layer_kinds.cpp, describe()), e.g.
// conv: out (required), kernel = 3, stride = 1, pad = 0, bias = false.
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
