// Checkpoint metadata (__metadata__.sparsetrain): parse and validate, then build the model
// it describes on the CPU (the architecture reader), as eval and export do.
#include <string_view>

#include "backend/backend.h"
#include "fuzz_common.h"
#include "io/checkpoint.h"
#include "nn/layer_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  st::fuzz::expect_clean([&] {
    const nlohmann::json meta = st::parse_checkpoint_meta(text, "ckpt.safetensors");
    const nlohmann::json& m = meta.at("model");
    std::vector<st::LayerSpec> layers = st::layers_from_json(m.at("layers"), "model.layers");
    // Building allocates the parameters: only for shapes a fuzz run can afford.
    const st::InputShape in{m["input"][0].get<int64_t>(), m["input"][1].get<int64_t>(),
                            m["input"][2].get<int64_t>()};
    if (in.channels * in.height * in.width > 4096 || layers.size() > 16) return;
    for (const st::LayerSpec& s : layers)
      if (s.out > 64) return;
    static const std::unique_ptr<st::Backend> cpu = st::make_backend("cpu");
    st::Model model(std::move(layers), in, m.at("classes").get<int64_t>(), *cpu);
    (void)st::model_architecture_json(model);
  });
  return 0;
}
