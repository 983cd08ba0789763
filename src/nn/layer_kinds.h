// One descriptor per layer kind: its name, JSON keys and defaults, inputs, shape inference,
// parameters, how channels and gradients flow through it, and what it exports to. The model,
// the layer JSON, compaction and the ONNX export ask this table instead of keeping their own
// lists of kinds.
//
// Adding a layer kind:
//  1. add it to enum LayerKind (nn/layer_spec.h);
//  2. describe it in describe() (nn/layer_kinds.cpp): -Wswitch flags the missing case, and
//     all_layer_kinds() ends at the first value without a descriptor;
//  3. give it a case in the switches -Wswitch then flags: forward and backward
//     (nn/model.cpp), the ONNX node (io/onnx_export.cpp); a new ChannelFlow or ParamLayout
//     value also needs its cases in sparsity/compaction.cpp and nn/model.cpp;
//  4. build it in scripts/torch_model.py (KIND_KEYS, _make);
//  5. use it in every_kind_net() of tests/test_layer_kinds.cpp, which walks every kind through
//     build, train step, compaction, ONNX and the PyTorch model, and fails for a kind it
//     does not meet.
// A kind that needs a new backend op adds that op as well (see backend/backend.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "nn/layer_spec.h"
#include "tensor/tensor.h"

namespace st {

// Every kind, in enum order: the enum's values up to the first one describe() does not know.
const std::vector<LayerKind>& all_layer_kinds();

// The LayerSpec fields a kind reads. Each is the JSON key of the same name.
enum class LayerField { Out, Kernel, Stride, Pad, Bias, P, Eps, Momentum };
const std::vector<LayerField>& all_layer_fields();
// "out", "kernel", "stride", "pad", "bias", "p", "eps", "momentum".
const char* layer_field_name(LayerField f);

struct LayerKey {
  LayerField field;
  bool required = false;  // else the descriptor's `defaults` holds its value
};

// The parameters and buffers a kind owns, in PyTorch's state_dict order.
enum class ParamLayout {
  None,
  Conv,       // weight [out, in_channels, k, k], bias [out] when `bias`
  Linear,     // weight [out, in_features], bias [out] when `bias`
  BatchNorm,  // weight, bias, running_mean, running_var [C]; num_batches_tracked []
};

// How output channel c relates to the input channels: compaction groups channels along the
// kinds that keep them, and carries per-channel constants (a dead filter's output) through.
enum class ChannelFlow {
  Mix,       // conv: new channels, each from all input channels; its filters can be removed
  Features,  // linear: new features from all inputs; never removed
  Affine,    // bn: a_c * x_c + b_c with per-channel parameters, sliced with the channels
  Rectify,   // relu: max(x_c, 0)
  Average,   // avgpool: a constant stays constant unless zero padding enters the mean
  Same,      // maxpool, global pool, flatten, dropout in eval: a constant stays the same
  Sum,       // add: channel c of the inputs summed
};

struct LayerKindInfo {
  LayerKind kind = LayerKind::ReLU;
  const char* name = "";       // JSON "kind"; unnamed layers are named <name><k>
  int inputs = 1;              // tensors read; a kind reading more than one needs "inputs"
  std::vector<LayerKey> keys;  // JSON keys besides kind, name and inputs, in writing order
  LayerSpec defaults;          // the values of keys left out of the JSON
  ParamLayout params = ParamLayout::None;
  // Backward hands the output gradient to every input unchanged (up to a reshape), so the
  // model may alias it instead of copying.
  bool gradient_passes_through = false;
  ChannelFlow channels = ChannelFlow::Same;
  // The ONNX ops of the nodes it exports to, in order (empty: the identity, no node). A linear
  // reading [C, H, W] gets a Flatten in front as well.
  std::vector<std::string> onnx_ops;
  // Per-image output shape (no batch dimension) from the input shapes; checks the spec's
  // values. Throws std::invalid_argument with a message the model prefixes with the layer.
  Shape (*infer_shape)(const LayerSpec& spec, const std::vector<Shape>& inputs,
                       int64_t classes) = nullptr;
};

const LayerKindInfo& layer_kind_info(LayerKind k);

// The output channel c depends only on channel c of the inputs.
bool keeps_channels(LayerKind k);

// Window of a conv or pool; a pool's stride 0 means "= kernel".
ConvGeom window_geometry(const LayerSpec& s);

}  // namespace st
