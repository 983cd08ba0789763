// Experiment config reader: the input is written to a file and loaded as --config does
// (without checking that dataset files exist).
#include <unistd.h>

#include <fstream>
#include <string>

#include "config/experiment.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      "/tmp/sparsetrain-fuzz-config-" + std::to_string(::getpid()) + ".json";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  st::fuzz::expect_clean(
      [&] { (void)st::load_experiment(path, {}, st::ParseOptions{.check_files = false}); });
  return 0;
}
