// The CUDA backend: hand-written kernels for every op, cuBLAS for linear layers.
//
// Numerics: F32 only. Convolutions and linear layers compute in exact FP32 by
// default; CudaOptions::tf32 (or SPARSETRAIN_CUDA_TF32=1 in the environment for
// make_cuda_backend()) switches them to TF32 tensor cores (sm_80+), about 1e-3
// relative error. Every reduction runs in a fixed order, so results are bitwise
// reproducible on one GPU model.
//
// Streams: ops are queued on the backend's compute stream and return at once,
// except those returning a host value (softmax_xent_forward, count_correct). The
// compute and copy streams are ordinary (blocking) streams, so Tensor's own
// cudaMemcpy/cudaMemset calls on the default stream stay ordered with them.
// upload_batch copies a batch through pinned staging on the copy stream; the
// compute stream waits for it on the device, not the host.
// SPARSETRAIN_CUDA_SYNC=1 synchronizes after every kernel, so that a fault is
// reported by the op that caused it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace st {

// The device count and, when it is 0, why (backend.h's probe_cuda() on CUDA builds).
CudaProbe cuda_probe();

struct CudaOptions {
  bool tf32 = false;  // TF32 tensor cores for conv and linear GEMMs
};
// tf32 from SPARSETRAIN_CUDA_TF32 ("1" or "true"); the defaults otherwise.
CudaOptions cuda_options_from_env();

struct CudaState;  // streams, handles, staging and scratch memory (cuda_backend.cu)

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaOptions& options = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::CUDA; }
  std::string name() const override;  // "cuda"
  bool supports(DType dtype) const override { return dtype == DType::F32; }
  // Waits for the device and reports any error left by an earlier kernel.
  void synchronize() override;

 protected:
  ST_BACKEND_OVERRIDES

 private:
  std::unique_ptr<CudaState> state_;
};

std::unique_ptr<Backend> make_cuda_backend();  // options from the environment
std::unique_ptr<Backend> make_cuda_backend(const CudaOptions& options);

}  // namespace st
