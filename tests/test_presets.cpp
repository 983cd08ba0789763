// Presets against PyTorch references written independently of our layer lists
// (scripts/torch_model.py: reference_model, conventional nn.Module classes).
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "nn/model.h"

using namespace st;

namespace {

struct PresetCase {
  const char* preset;
  double width;
  int64_t in_channels, classes;
  int64_t torch_params;
};

// Parameter counts printed by
//   /usr/bin/python3 scripts/torch_model.py reference-counts
// (PyTorch 1.13; sum of p.numel() over the reference module's parameters).
// Sanity anchors: resnet18 at width 1 is kuangliu/pytorch-cifar's 11,173,962;
// vgg16 is the CIFAR VGG-16-BN's 14,728,266 minus the 4,224 conv biases we drop.
const PresetCase kCases[] = {
    {"basicnet", 1.0, 3, 10, 4655434},  {"basicnet", 0.3, 1, 100, 436140},
    {"vgg11", 1.0, 3, 10, 9228362},     {"vgg11", 0.3, 1, 100, 850572},
    {"vgg16", 1.0, 3, 10, 14724042},    {"vgg16", 0.3, 1, 100, 1347950},
    {"resnet18", 1.0, 3, 10, 11173962}, {"resnet18", 0.3, 1, 100, 1026010},
};

nlohmann::json load_reference_state_dicts() {
  const std::string path = std::string(SPARSETRAIN_FIXTURES_DIR) + "/preset_state_dicts.json";
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(f);
}

}  // namespace

TEST_CASE("preset parameter counts equal PyTorch's", "[presets]") {
  auto be = make_cpu_backend();
  for (const auto& c : kCases) {
    INFO(c.preset << " width " << c.width);
    Model m(make_preset(c.preset, c.width), {c.in_channels, 32, 32}, c.classes, *be);
    REQUIRE(m.num_params() == c.torch_params);
  }
}

TEST_CASE("preset state_dict keys - order and shapes equal PyTorch's", "[presets]") {
  // tests/fixtures/preset_state_dicts.json comes from
  //   /usr/bin/python3 scripts/torch_model.py reference-state-dicts <file>
  // and lists every state_dict entry of the reference modules in order.
  auto be = make_cpu_backend();
  const auto refs = load_reference_state_dicts();
  REQUIRE(refs.size() == std::size(kCases));
  for (const auto& ref : refs) {
    const std::string preset = ref["preset"];
    INFO(preset << " width " << ref["width"].get<double>());
    Model m(make_preset(preset, ref["width"].get<double>()),
            {ref["in_channels"].get<int64_t>(), 32, 32}, ref["classes"].get<int64_t>(), *be);
    // PyTorch's order: per module, parameters then buffers.
    std::vector<std::pair<std::string, Shape>> ours;
    std::size_t b = 0;
    for (std::size_t p = 0; p < m.param_views().size(); ++p) {
      const ParamView& v = m.param_views()[p];
      ours.emplace_back(v.name, v.shape);
      const bool last_of_layer =
          p + 1 == m.param_views().size() || m.param_views()[p + 1].layer != v.layer;
      for (; last_of_layer && b < m.buffer_views().size() && m.buffer_views()[b].layer == v.layer;
           ++b)
        ours.emplace_back(m.buffer_views()[b].name, m.buffer_views()[b].shape);
    }
    REQUIRE(b == m.buffer_views().size());
    std::vector<std::pair<std::string, Shape>> theirs;
    for (const auto& e : ref["state_dict"])
      theirs.emplace_back(e[0].get<std::string>(), e[1].get<Shape>());
    REQUIRE(ours == theirs);
  }
}
