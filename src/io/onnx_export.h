// ONNX export of a model's eval-mode graph, built with the ONNX project's own protobuf
// classes (Debian's libonnx-dev) and checked by its checker and shape inference.
//
// Opset 13. Input "input" [batch, C, H, W] (float, batch symbolic), output "logits"
// [batch, classes]. Layers map to Conv, BatchNormalization (eval), Relu, MaxPool,
// AveragePool (count_include_pad), GlobalAveragePool + Flatten, Flatten, Gemm (transB) and
// Add; dropout is the identity and is left out. Weights are initializers named by their
// state_dict keys; node and value names are the layer names.
#pragma once

#include <map>
#include <string>

#include "nn/model.h"

namespace st {

constexpr int kOnnxOpset = 13;

// The serialized ModelProto. `metadata` goes to metadata_props. Throws std::runtime_error
// when the ONNX checker or shape inference rejects the graph (which would be a bug here).
std::string onnx_model_bytes(const Model& model,
                             const std::map<std::string, std::string>& metadata = {});

// Writes onnx_model_bytes atomically (temporary file, then rename).
void write_onnx(const std::string& path, const Model& model,
                const std::map<std::string, std::string>& metadata = {});

}  // namespace st
