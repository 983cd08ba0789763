#include "cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cuda_common.cuh"
#include "cuda_ops.h"

namespace st {

CudaOptions cuda_options_from_env() {
  CudaOptions o;
  if (const char* v = std::getenv("SPARSETRAIN_CUDA_TF32")) {
    const std::string s(v);
    o.tf32 = s == "1" || s == "true";
  }
  return o;
}

struct CudaState {
  CudaOptions options;
  int device = 0;
  cudaStream_t compute = nullptr;
  cudaStream_t copy = nullptr;
  cublasHandle_t cublas = nullptr;
  void* host_scratch = nullptr;
  cuda::Workspace workspace;
  cuda::DeviceSegments segments;
  cuda::UploadStaging staging;
  cuda::Context ctx;

  explicit CudaState(const CudaOptions& o);
  ~CudaState();
};

CudaState::CudaState(const CudaOptions& o) : options(o) {
  const char* op = "CudaBackend";
  cuda::check(cudaGetDevice(&device), op, "cudaGetDevice");
  cudaDeviceProp prop{};
  cuda::check(cudaGetDeviceProperties(&prop, device), op, "cudaGetDeviceProperties");
  if (o.tf32 && prop.major < 8)
    throw std::runtime_error(std::string(op) + ": TF32 needs compute capability 8.0 or newer; " +
                             prop.name + " has " + std::to_string(prop.major) + "." +
                             std::to_string(prop.minor) + " (unset SPARSETRAIN_CUDA_TF32)");
  cuda::check(cudaStreamCreateWithFlags(&compute, cudaStreamDefault), op, "cudaStreamCreate");
  cuda::check(cudaStreamCreateWithFlags(&copy, cudaStreamDefault), op, "cudaStreamCreate");
  cuda::check_cublas(cublasCreate(&cublas), op, "cublasCreate");
  cuda::check_cublas(cublasSetStream(cublas, compute), op, "cublasSetStream");
  // TF32 only through the GEMM compute type (linear.cu), never by the handle's default.
  cuda::check_cublas(cublasSetMathMode(cublas, CUBLAS_DEFAULT_MATH), op, "cublasSetMathMode");
  cuda::check(cudaMallocHost(&host_scratch, cuda::kHostScratchBytes), op, "cudaMallocHost");
  staging.init();
  ctx.stream = compute;
  ctx.copy_stream = copy;
  ctx.cublas = cublas;
  ctx.tf32 = o.tf32;
  ctx.sm_count = prop.multiProcessorCount;
  ctx.workspace = &workspace;
  ctx.segments = &segments;
  ctx.staging = &staging;
  ctx.host_scratch = host_scratch;
}

CudaState::~CudaState() {
  // No throwing here: errors were reported by the ops or synchronize(). Members
  // (staging, workspace) are released after this body, once the streams are idle.
  if (compute) cudaStreamSynchronize(compute);
  if (copy) cudaStreamSynchronize(copy);
  if (host_scratch) cudaFreeHost(host_scratch);
  if (cublas) cublasDestroy(cublas);
  if (copy) cudaStreamDestroy(copy);
  if (compute) cudaStreamDestroy(compute);
}

CudaBackend::CudaBackend(const CudaOptions& options)
    : state_(std::make_unique<CudaState>(options)) {}

CudaBackend::~CudaBackend() = default;

std::string CudaBackend::name() const {
  return "cuda";
}

void CudaBackend::synchronize() {
  cuda::check(cudaDeviceSynchronize(), "synchronize", "cudaDeviceSynchronize");
  cuda::check(cudaGetLastError(), "synchronize", "an earlier kernel");
}

// Every op forwards to its implementation in the kernel files (cuda_ops.h), which
// takes the backend's context first.
#define ST_CUDA_FORWARD(R, name, params, args, key)         \
  R CudaBackend::do_##name params {                         \
    return cuda::name(state_->ctx, ST_BACKEND_EXPAND args); \
  }
ST_BACKEND_OPS(ST_CUDA_FORWARD)
#undef ST_CUDA_FORWARD

std::unique_ptr<Backend> make_cuda_backend() {
  return make_cuda_backend(cuda_options_from_env());
}

std::unique_ptr<Backend> make_cuda_backend(const CudaOptions& options) {
  return std::make_unique<CudaBackend>(options);
}

}  // namespace st
