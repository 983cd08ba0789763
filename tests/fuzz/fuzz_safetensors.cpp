// safetensors reader: parse, then read every tensor as stored and as F32.
#include "fuzz_common.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  st::fuzz::expect_clean([&] {
    const st::SafetensorsReader r =
        st::SafetensorsReader::parse(st::fuzz::bytes_of(data, size), "x.safetensors");
    for (const std::string& name : r.names()) {
      st::fuzz::expect_clean([&] { (void)r.get(name); });
      st::fuzz::expect_clean([&] { (void)r.get_f32(name); });
    }
  });
  return 0;
}
