// Shared by the CUDA kernel files: argument checks that name the op, error checks
// after CUDA calls and launches, launch sizing, and deterministic reductions.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "cuda_ops.h"
#include "tensor/tensor.h"

namespace st::cuda {

// Threads per block for elementwise kernels and per-channel reductions. The block
// reductions depend on it, so it is fixed: results are bitwise reproducible.
constexpr int kBlock = 256;
constexpr unsigned kFullMask = 0xffffffffu;

// Throws std::runtime_error "<op>: <what>: <CUDA message>" when e is an error.
void check(cudaError_t e, const char* op, const char* what);
// The same for a cuBLAS status.
void check_cublas(cublasStatus_t s, const char* op, const char* what);
// After a kernel launch: throws naming the op when the launch failed. With
// SPARSETRAIN_CUDA_SYNC=1 it also synchronizes, so that a fault inside a kernel
// is reported by the op that caused it.
void check_launch(const char* op, cudaStream_t stream);

// Throws std::invalid_argument "<op>: <message>" when cond is false: the kernels'
// own limits (int32 indexing), beyond the op contract Backend checks.
void require(bool cond, const char* op, const std::string& message);
// Typed device pointers of tensors whose dtype and device Backend checked.
inline const float* f32_in(const Tensor& t) {
  return static_cast<const float*>(t.raw());
}
inline float* f32_out(Tensor& t) {
  return static_cast<float*>(t.raw());
}
inline const int32_t* i32_in(const Tensor& t) {
  return static_cast<const int32_t*>(t.raw());
}
inline int32_t* i32_out(Tensor& t) {
  return static_cast<int32_t*>(t.raw());
}

// Blocks for a grid-stride loop over n elements.
inline unsigned grid_for(int64_t n, int block = kBlock) {
  const int64_t blocks = (n + block - 1) / block;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t{1} << 20));
}

// Warp-per-item kernels (one warp per row or plane, in a grid-stride loop over
// items): blocks to launch, the global warp index and the number of warps.
inline unsigned warp_grid_for(int64_t items) {
  return grid_for(items * 32, kBlock);
}
__device__ __forceinline__ int64_t first_warp() {
  return (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
}
__device__ __forceinline__ int64_t warp_count() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
}

// Grid-stride loop over [0, n) with an int64_t index.
#define ST_GRID_STRIDE(i, n)                                                             \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// Warp and block sums in a fixed order: the same inputs give the same bits.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(kFullMask, v, o);
  return v;  // valid in lane 0
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_down_sync(kFullMask, v, o));
  return v;  // valid in lane 0
}

// Sum over the block; every thread gets the result. `scratch` holds 32 values.
// All threads of the block must call it.
template <typename T>
__device__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? scratch[lane] : T(0);
    v = warp_sum(v);
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  const T total = scratch[0];
  __syncthreads();  // scratch may be reused right after
  return total;
}

}  // namespace st::cuda
