#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cuda_common.cuh"

namespace st::cuda {

void check(cudaError_t e, const char* op, const char* what) {
  if (e == cudaSuccess) return;
  throw std::runtime_error(std::string(op) + ": " + what + " failed: " + cudaGetErrorName(e) +
                           " (" + cudaGetErrorString(e) + ")");
}

void check_cublas(cublasStatus_t s, const char* op, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw std::runtime_error(std::string(op) + ": " + what + " failed: " + cublasGetStatusString(s));
}

static bool sync_after_launch() {
  static const bool enabled = [] {
    const char* v = std::getenv("SPARSETRAIN_CUDA_SYNC");
    return v != nullptr && std::string(v) == "1";
  }();
  return enabled;
}

void check_launch(const char* op, cudaStream_t stream) {
  check(cudaGetLastError(), op, "kernel launch");
  if (sync_after_launch()) check(cudaStreamSynchronize(stream), op, "kernel execution");
}

void require(bool cond, const char* op, const std::string& message) {
  if (!cond) throw std::invalid_argument(std::string(op) + ": " + message);
}

void* Workspace::get(std::size_t bytes, cudaStream_t stream) {
  if (!buffer_.defined() || buffer_.bytes() < bytes) {
    check(cudaStreamSynchronize(stream), "workspace", "cudaStreamSynchronize");
    const std::size_t grown = std::max(bytes, buffer_.defined() ? buffer_.bytes() * 3 / 2 : 0);
    buffer_ = Tensor({static_cast<int64_t>((grown + 3) / 4)}, DType::F32, Device::CUDA);
  }
  return buffer_.raw();
}

}  // namespace st::cuda
