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
// SPARSETRAIN_CUDA_SYNC=1 synchronizes after every kernel, so that a fault is
// reported by the op that caused it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace st {

int cuda_device_count();  // 0 when there is no driver or no device

struct CudaOptions {
  bool tf32 = false;  // TF32 tensor cores for conv and linear GEMMs
};
// tf32 from SPARSETRAIN_CUDA_TF32 ("1" or "true"); the defaults otherwise.
CudaOptions cuda_options_from_env();

// A CPU tensor in page-locked (pinned) memory, so that copies from it to the
// device are asynchronous DMA. The memory stays valid for as long as any view of
// tensor() lives; it is pinned while this object lives.
class PinnedHostBuffer {
 public:
  explicit PinnedHostBuffer(Shape shape, DType dtype = DType::F32);
  ~PinnedHostBuffer();
  PinnedHostBuffer(const PinnedHostBuffer&) = delete;
  PinnedHostBuffer& operator=(const PinnedHostBuffer&) = delete;
  Tensor& tensor() { return tensor_; }
  const Tensor& tensor() const { return tensor_; }

 private:
  Tensor tensor_;
  void* pinned_ = nullptr;  // start of the registered pages
};

struct CudaState;  // streams, handles and scratch memory (cuda_backend.cu)

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaOptions& options = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::CUDA; }
  std::string name() const override;  // "cuda"
  std::string description() const;    // the GPU's name and the GEMM precision
  bool tf32() const;
  // Waits for the device and reports any error left by an earlier kernel.
  void synchronize() override;

  // Batch upload overlapped with compute. Copies host_pinned (a PinnedHostBuffer
  // tensor or a view of one) into `device` on the copy stream and returns at once.
  // Ops queued on this backend after the call wait for the copy (an event the
  // compute stream waits on); ops queued before it run alongside. The copy itself
  // first waits for the compute work queued before the previous upload_async call,
  // so two device batch buffers used alternately (upload the next batch right
  // after queueing the step that reads the current one) are never overwritten
  // while a step still reads them.
  void upload_async(const Tensor& host_pinned, Tensor& device);
  // Blocks the host until every upload has landed, so their host buffers can be
  // refilled.
  void wait_uploads();

  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvGeom& g,
                      Tensor& y) override;
  void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const ConvGeom& g,
                       Tensor* dx, Tensor& dw, Tensor* db) override;
  void batchnorm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                               Tensor& running_mean, Tensor& running_var, double momentum,
                               double eps, Tensor& y, Tensor& save_mean,
                               Tensor& save_invstd) override;
  void batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              const Tensor& running_mean, const Tensor& running_var, double eps,
                              Tensor& y) override;
  void batchnorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                          const Tensor& save_invstd, const Tensor& dy, Tensor& dx, Tensor& dgamma,
                          Tensor& dbeta) override;
  void relu_forward(const Tensor& x, Tensor& y) override;
  void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void maxpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y, Tensor& argmax) override;
  void maxpool2d_backward(const Tensor& dy, const Tensor& argmax, Tensor& dx) override;
  void avgpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y) override;
  void avgpool2d_backward(const Tensor& dy, const PoolGeom& g, Tensor& dx) override;
  void global_avgpool_forward(const Tensor& x, Tensor& y) override;
  void global_avgpool_backward(const Tensor& dy, Tensor& dx) override;
  void linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                       Tensor* db) override;
  double softmax_xent_forward(const Tensor& logits, const Tensor& labels, Tensor& probs) override;
  void softmax_xent_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits) override;
  int64_t count_correct(const Tensor& logits, const Tensor& labels) override;
  void add(const Tensor& a, const Tensor& b, Tensor& y) override;
  void add_inplace(Tensor& y, const Tensor& x) override;
  void dropout_forward(const Tensor& x, double p, uint64_t seed, Tensor& mask, Tensor& y) override;
  void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx) override;
  void channel_absmax(const Tensor& h, Tensor& out) override;
  void optimizer_step(const OptimStep& s, Tensor& params, const Tensor& grads,
                      std::vector<Tensor>& state,
                      const std::vector<UpdateSegment>& segments) override;

 private:
  std::unique_ptr<CudaState> state_;
};

std::unique_ptr<Backend> make_cuda_backend();  // options from the environment
std::unique_ptr<Backend> make_cuda_backend(const CudaOptions& options);

}  // namespace st
