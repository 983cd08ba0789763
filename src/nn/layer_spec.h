// A model is a list of layer specs, run in order. Each layer reads the output of
// the layer before it unless `inputs` names others ("input" is the model input),
// which is how residual adds and shortcuts are written.
//
// Naming convention: a layer's `name` is its PyTorch module path ("conv1",
// "layer1.0.bn2", "layer2.0.shortcut.0"); its tensors are name + ".weight",
// ".bias", ".running_mean", ".running_var", ".num_batches_tracked", exactly the
// keys of a PyTorch state_dict of a module tree with those paths.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace st {

enum class LayerKind { Conv, BatchNorm, ReLU, MaxPool, AvgPool, GlobalAvgPool, Linear, Flatten,
                       Dropout, Add };

const char* layer_kind_name(LayerKind k);
// Throws std::invalid_argument for an unknown name.
LayerKind layer_kind_from_name(const std::string& name);

// Marks `LayerSpec::out` of a linear layer as "as many as the data has classes".
constexpr int64_t kOutClasses = -1;

struct LayerSpec {
  LayerKind kind = LayerKind::ReLU;
  std::string name;                 // unique; filled in by the model when empty
  std::vector<std::string> inputs;  // empty: the previous layer
  int64_t out = 0;                  // conv: output channels; linear: output features
  int kernel = 3, stride = 1, pad = 0;  // conv and pools (pool stride 0 = kernel)
  bool bias = false;                // conv and linear
  double p = 0.5;                   // dropout probability
  double eps = 1e-5, momentum = 0.1;  // batchnorm
};

// Presets. `in_channels` and `classes` come from the data; `width` multiplies
// every conv width (rounded, at least 1).
//  basicnet: our reconstruction of the paper's BasicNet (exact widths and pool
//            positions are not published): 7 x conv3x3-BN-ReLU with widths
//            64-128-128-256-256-512-512, 2x2 max-pool after C2, C4 and C6,
//            global average pool, linear.
//  vgg11, vgg16: VGG with BN, CIFAR variant (global average pool + linear),
//            torchvision's "features.<i>" numbering, "classifier". Convs have no
//            bias (torchvision keeps one before BN, where it is redundant).
//  resnet18: CIFAR ResNet-18 (3x3 stem, basic blocks, 1x1 conv+BN shortcuts).
std::vector<LayerSpec> make_preset(const std::string& preset, double width);
std::vector<std::string> preset_names();

}  // namespace st
