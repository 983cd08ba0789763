// CIFAR reader: one record file, as CIFAR-10 (1 label byte) and as CIFAR-100 (2).
#include "data/cifar.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes = st::fuzz::bytes_of(data, size);
  st::fuzz::expect_clean([&] {
    st::data::Dataset d;
    d.channels = 3, d.height = 32, d.width = 32, d.classes = 10;
    st::data::append_cifar_bytes(bytes, "data_batch_1.bin", 1, 0, 10, d);
    d.validate();
  });
  st::fuzz::expect_clean([&] {
    st::data::Dataset d;
    d.channels = 3, d.height = 32, d.width = 32, d.classes = 100;
    st::data::append_cifar_bytes(bytes, "train.bin", 2, 1, 100, d);
    d.validate();
  });
  return 0;
}
