// The ONNX export entry points of a build configured with -DSPARSETRAIN_ONNX=OFF
// (no Protobuf or ONNX library): they fail with a message that says so.
#include <stdexcept>

#include "io/onnx_export.h"

namespace st {

namespace {

[[noreturn]] void no_onnx() {
  throw std::runtime_error(
      "this build of sparsetrain has no ONNX support (configured with -DSPARSETRAIN_ONNX=OFF); "
      "export with --format safetensors, or rebuild with Protobuf and ONNX installed");
}

}  // namespace

std::string onnx_model_bytes(const Model&, const std::map<std::string, std::string>&) {
  no_onnx();
}

void write_onnx(const std::string&, const Model&, const std::map<std::string, std::string>&) {
  no_onnx();
}

}  // namespace st
