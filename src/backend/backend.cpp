#include "backend/backend.h"

#include <stdexcept>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/denormals.h"

#ifdef SPARSETRAIN_WITH_CUDA
#include "cuda_backend.h"
#endif

namespace st {

bool cuda_device_available() {
#ifdef SPARSETRAIN_WITH_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

std::unique_ptr<Backend> make_backend(const std::string& device) {
  // The host threads also run the data loader and the statistics.
  flush_denormals_to_zero();
  if (device == "cpu") return make_cpu_backend();
  if (device == "cuda" || device == "auto") {
    if (cuda_device_available()) {
#ifdef SPARSETRAIN_WITH_CUDA
      return make_cuda_backend();
#endif
    }
    if (device == "auto") return make_cpu_backend();
#ifdef SPARSETRAIN_WITH_CUDA
    throw std::runtime_error("no CUDA device found; use --device cpu");
#else
    throw std::runtime_error(
        "no CUDA device found (this build has no CUDA backend); use --device cpu");
#endif
  }
  throw std::invalid_argument("unknown device '" + device + "' (expected cpu, cuda or auto)");
}

}  // namespace st
