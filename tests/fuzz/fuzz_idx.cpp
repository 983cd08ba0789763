// IDX reader: the input is split into an image file and a label file at a position taken
// from its first byte.
#include "data/idx.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t split = std::min<size_t>(size - 1, data[0] * 4u);
  const std::vector<uint8_t> images(data + 1, data + 1 + split);
  const std::vector<uint8_t> labels(data + 1 + split, data + size);
  st::fuzz::expect_clean(
      [&] { st::data::parse_idx(images, labels, "images.idx3-ubyte", "labels.idx1-ubyte"); });
  return 0;
}
