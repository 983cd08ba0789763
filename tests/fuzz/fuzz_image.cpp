// Image-folder decoding: one PNG/JPEG file image, to grey and to RGB, and the folder's size
// check with the decoded size. The side limit is lowered so that one run stays within
// libFuzzer's memory limit; the check itself is the same code.
#include "data/dataset.h"
#include "data/image_folder.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes = st::fuzz::bytes_of(data, size);
  for (int channels : {1, 3}) {
    st::fuzz::expect_clean([&] {
      const st::data::DecodedImage img =
          st::data::decode_image_bytes(bytes, channels, "img.png", 2048);
      if (img.chw.size() != static_cast<size_t>(channels) * img.height * img.width) std::abort();
      st::data::check_dataset_size(size, channels, img.height, img.width, "image folder x");
    });
  }
  return 0;
}
