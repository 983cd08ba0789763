// The CUDA backend: hand-written kernels for every op, cuBLAS for linear layers.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace st {

int cuda_device_count();  // 0 when there is no driver or no device
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace st
