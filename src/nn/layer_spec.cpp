#include "nn/layer_spec.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace st {

namespace {

// Channel count scaled by the width multiplier: rounded half away from zero, at least 1.
int64_t scaled(int64_t channels, double width) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(channels) * width));
}

LayerSpec conv3x3(const std::string& name, int64_t out, int stride = 1) {
  LayerSpec s;
  s.kind = LayerKind::Conv;
  s.name = name;
  s.out = out;
  s.kernel = 3;
  s.stride = stride;
  s.pad = 1;
  s.bias = false;  // a BN follows every conv: a conv bias would be redundant with BN's beta
  return s;
}

LayerSpec conv1x1(const std::string& name, int64_t out, int stride) {
  LayerSpec s = conv3x3(name, out, stride);
  s.kernel = 1;
  s.pad = 0;
  return s;
}

LayerSpec simple(LayerKind kind, const std::string& name, std::vector<std::string> inputs = {}) {
  LayerSpec s;
  s.kind = kind;
  s.name = name;
  s.inputs = std::move(inputs);
  return s;
}

LayerSpec maxpool2x2(const std::string& name) {
  LayerSpec s = simple(LayerKind::MaxPool, name);
  s.kernel = 2;
  s.stride = 2;
  return s;
}

LayerSpec classifier(const std::string& name) {
  LayerSpec s = simple(LayerKind::Linear, name);
  s.out = kOutClasses;
  s.bias = true;
  return s;
}

std::vector<LayerSpec> basicnet(double width) {
  const int64_t widths[] = {64, 128, 128, 256, 256, 512, 512};
  std::vector<LayerSpec> layers;
  for (int i = 0; i < 7; ++i) {
    const std::string n = std::to_string(i + 1);
    layers.push_back(conv3x3("conv" + n, scaled(widths[i], width)));
    layers.push_back(simple(LayerKind::BatchNorm, "bn" + n));
    layers.push_back(simple(LayerKind::ReLU, "relu" + n));
    if (i == 1 || i == 3 || i == 5) layers.push_back(maxpool2x2("pool" + n));
  }
  layers.push_back(simple(LayerKind::GlobalAvgPool, "avgpool"));
  layers.push_back(classifier("fc"));
  return layers;
}

// VGG with BN in torchvision's module numbering (features.<i>: conv, bn, relu
// take one index each, a max-pool one), with the CIFAR head: global average
// pool and one linear layer named "classifier". Convs have no bias (torchvision
// keeps bias=True before BN; it is redundant there).
std::vector<LayerSpec> vgg(const std::vector<int64_t>& cfg, double width) {
  constexpr int64_t kPool = 0;
  std::vector<LayerSpec> layers;
  int index = 0;
  auto next_name = [&] { return "features." + std::to_string(index++); };
  for (int64_t v : cfg) {
    if (v == kPool) {
      layers.push_back(maxpool2x2(next_name()));
      continue;
    }
    layers.push_back(conv3x3(next_name(), scaled(v, width)));
    layers.push_back(simple(LayerKind::BatchNorm, next_name()));
    layers.push_back(simple(LayerKind::ReLU, next_name()));
  }
  layers.push_back(simple(LayerKind::GlobalAvgPool, "avgpool"));
  layers.push_back(classifier("classifier"));
  return layers;
}

// A ResNet basic block: conv-bn-relu-conv-bn, plus the shortcut (identity, or a
// strided 1x1 conv + BN when the shape changes), add, relu.
void basic_block(std::vector<LayerSpec>& layers, const std::string& prefix,
                 const std::string& block_input, int64_t in_planes, int64_t planes, int stride) {
  layers.push_back(conv3x3(prefix + "conv1", planes, stride));
  layers.back().inputs = {block_input};
  layers.push_back(simple(LayerKind::BatchNorm, prefix + "bn1"));
  layers.push_back(simple(LayerKind::ReLU, prefix + "relu1"));
  layers.push_back(conv3x3(prefix + "conv2", planes));
  layers.push_back(simple(LayerKind::BatchNorm, prefix + "bn2"));
  std::string shortcut = block_input;
  if (stride != 1 || in_planes != planes) {
    layers.push_back(conv1x1(prefix + "shortcut.0", planes, stride));
    layers.back().inputs = {block_input};
    layers.push_back(simple(LayerKind::BatchNorm, prefix + "shortcut.1"));
    shortcut = prefix + "shortcut.1";
  }
  layers.push_back(simple(LayerKind::Add, prefix + "add", {prefix + "bn2", shortcut}));
  layers.push_back(simple(LayerKind::ReLU, prefix + "relu2"));
}

std::vector<LayerSpec> resnet18(double width) {
  std::vector<LayerSpec> layers;
  layers.push_back(conv3x3("conv1", scaled(64, width)));
  layers.push_back(simple(LayerKind::BatchNorm, "bn1"));
  layers.push_back(simple(LayerKind::ReLU, "relu"));
  std::string last = "relu";
  int64_t in_planes = scaled(64, width);
  const int64_t stage_planes[] = {64, 128, 256, 512};
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t planes = scaled(stage_planes[stage], width);
    for (int block = 0; block < 2; ++block) {
      const int stride = (stage > 0 && block == 0) ? 2 : 1;
      const std::string prefix =
          "layer" + std::to_string(stage + 1) + "." + std::to_string(block) + ".";
      basic_block(layers, prefix, last, in_planes, planes, stride);
      in_planes = planes;
      last = prefix + "relu2";
    }
  }
  layers.push_back(simple(LayerKind::GlobalAvgPool, "avgpool"));
  layers.push_back(classifier("linear"));
  return layers;
}

}  // namespace

std::vector<LayerSpec> make_preset(const std::string& preset, double width) {
  if (!(width > 0.0) || !std::isfinite(width))
    throw std::invalid_argument("preset '" + preset + "': width multiplier must be positive, got " +
                                std::to_string(width));
  if (preset == "basicnet") return basicnet(width);
  if (preset == "vgg11") return vgg({64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0}, width);
  if (preset == "vgg16")
    return vgg({64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0},
               width);
  if (preset == "resnet18") return resnet18(width);
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown model preset '" + preset + "' (expected one of " + known +
                              ")");
}

std::vector<std::string> preset_names() {
  return {"basicnet", "vgg11", "vgg16", "resnet18"};
}

}  // namespace st
