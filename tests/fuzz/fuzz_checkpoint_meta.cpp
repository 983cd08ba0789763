// Checkpoint metadata (__metadata__.sparsetrain): parse and validate as Checkpoint::load does,
// then read the architecture it describes with the layer reader, as make_model does.
#include <string_view>

#include "fuzz_common.h"
#include "io/checkpoint_meta.h"
#include "nn/layer_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  st::fuzz::expect_clean([&] {
    const nlohmann::json meta = st::parse_checkpoint_meta(text, "ckpt.safetensors");
    (void)st::layers_from_json(meta.at("model").at("layers"), "model.layers");
  });
  return 0;
}
