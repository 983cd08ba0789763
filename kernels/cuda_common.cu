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

static void require_on_device(const Tensor& t, DType dtype, const char* op, const char* name) {
  require(t.defined(), op, std::string(name) + " is undefined");
  if (t.device() != Device::CUDA || t.dtype() != dtype)
    throw std::invalid_argument(std::string(op) + ": the CUDA backend needs " + name + " as " +
                                dtype_name(dtype) + " on cuda, got " + dtype_name(t.dtype()) +
                                " on " + device_name(t.device()) + " (shape " +
                                shape_str(t.shape()) + ")");
}

const float* f32_in(const Tensor& t, const char* op, const char* name) {
  require_on_device(t, DType::F32, op, name);
  return static_cast<const float*>(t.raw());
}

float* f32_out(Tensor& t, const char* op, const char* name) {
  require_on_device(t, DType::F32, op, name);
  return static_cast<float*>(t.raw());
}

const int32_t* i32_in(const Tensor& t, const char* op, const char* name) {
  require_on_device(t, DType::I32, op, name);
  return static_cast<const int32_t*>(t.raw());
}

int32_t* i32_out(Tensor& t, const char* op, const char* name) {
  require_on_device(t, DType::I32, op, name);
  return static_cast<int32_t*>(t.raw());
}

void require_shape(const Tensor& t, const Shape& expected, const char* op, const char* name) {
  if (t.shape() != expected)
    throw std::invalid_argument(std::string(op) + ": " + name + " must have shape " +
                                shape_str(expected) + ", got " + shape_str(t.shape()));
}

void require_ndim(const Tensor& t, int ndim, const char* op, const char* name) {
  if (t.ndim() != ndim)
    throw std::invalid_argument(std::string(op) + ": " + name + " must have " +
                                std::to_string(ndim) + " dimensions, got " + shape_str(t.shape()));
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
