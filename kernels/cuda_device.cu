#include <cuda_runtime.h>

#include <string>

#include "cuda_backend.h"

namespace st {
namespace {

std::string version_str(int v) {
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

}  // namespace

CudaProbe cuda_probe() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaSuccess && n > 0) return {n, {}};
  cudaGetLastError();  // clear the sticky error
  // The driver's CUDA version is 0 when no driver is installed.
  int driver = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
  cudaGetLastError();
  CudaProbe p;
  if (e == cudaSuccess || e == cudaErrorNoDevice)
    p.problem = "no CUDA device found";
  else if (driver == 0)
    p.problem = "no CUDA device found (no NVIDIA driver is installed)";
  else if (e == cudaErrorInsufficientDriver || driver < CUDART_VERSION)
    p.problem = "the NVIDIA driver supports CUDA " + version_str(driver) +
                ", older than this build's CUDA " + version_str(CUDART_VERSION) +
                " runtime (cudaErrorInsufficientDriver): update the driver or build with an "
                "older CUDA toolkit";
  else
    p.problem = std::string("the CUDA runtime cannot list the devices: ") + cudaGetErrorName(e) +
                " (" + cudaGetErrorString(e) + ")";
  return p;
}

}  // namespace st
