// The CUDA op implementations behind CudaBackend, one group per kernel file.
// Backend's public ops have checked the arguments (backend.cpp: F32 tensors on
// the device, shapes, hyperparameters); these check only the kernels' own limits
// (int32 index ranges) and the values they read on the device (label ranges).
// Each queues its kernels on the context's stream without waiting, unless it
// returns a value.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace st::cuda {

// Scratch device memory that grows on demand. Uses are ordered by the stream;
// growing waits for the stream so no queued kernel still reads the old block.
class Workspace {
 public:
  void* get(std::size_t bytes, cudaStream_t stream);

 private:
  Tensor buffer_;
};

// The optimizer's segment table on the device; re-uploaded only when it changes
// (it normally stays the same for a whole run).
class DeviceSegments {
 public:
  const UpdateSegment* upload(const std::vector<UpdateSegment>& segments, cudaStream_t stream);

 private:
  const UpdateSegment* device_ptr() const {
    return static_cast<const UpdateSegment*>(device_.raw());
  }
  std::vector<UpdateSegment> host_;
  Tensor device_;
};

struct Context;

// Page-locked staging for upload_batch (upload.cu): two slots used in turn.
class UploadStaging {
 public:
  UploadStaging() = default;
  ~UploadStaging();
  UploadStaging(const UploadStaging&) = delete;
  UploadStaging& operator=(const UploadStaging&) = delete;
  void init();  // creates the events; needs a CUDA device
  void upload(Context& c, const Tensor& images, const Tensor& labels, Tensor& x, Tensor& y);

 private:
  struct Slot {
    void* host = nullptr;
    std::size_t bytes = 0;
    cudaEvent_t copied = nullptr;  // the slot's latest copy to the device
    bool pending = false;
  };
  Slot slots_[2];
  int next_ = 0;
  cudaEvent_t compute_mark_ = nullptr;
};

struct Context {
  cudaStream_t stream = nullptr;       // compute
  cudaStream_t copy_stream = nullptr;  // host-to-device batch uploads
  cublasHandle_t cublas = nullptr;
  bool tf32 = false;  // TF32 tensor cores for conv and linear GEMMs
  int sm_count = 1;
  Workspace* workspace = nullptr;
  DeviceSegments* segments = nullptr;
  UploadStaging* staging = nullptr;
  void* host_scratch = nullptr;  // page-locked, kHostScratchBytes, for results read by the host
};
constexpr std::size_t kHostScratchBytes = 256;

// conv.cu
void conv2d_relu_forward(Context& c, const Tensor& x, const Tensor& w, const Tensor* bias,
                         const ConvGeom& g, Tensor& y);
void conv2d_forward(Context& c, const Tensor& x, const Tensor& w, const Tensor* bias,
                    const ConvGeom& g, Tensor& y);
void conv2d_backward(Context& c, const Tensor& x, const Tensor& w, const Tensor& dy,
                     const ConvGeom& g, Tensor* dx, Tensor& dw, Tensor* db);

// batchnorm.cu
void batchnorm_forward_train(Context& c, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             Tensor& running_mean, Tensor& running_var, double momentum, double eps,
                             Tensor& y, Tensor& save_mean, Tensor& save_invstd);
void batchnorm_forward_eval(Context& c, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var, double eps,
                            Tensor& y);
void batchnorm_backward(Context& c, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                        const Tensor& save_invstd, const Tensor& dy, Tensor& dx, Tensor& dgamma,
                        Tensor& dbeta);
// The same with the ReLU that follows fused in (backend.h).
void batchnorm_relu_forward_train(Context& c, const Tensor& x, const Tensor& gamma,
                                  const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                                  double momentum, double eps, Tensor& y, Tensor& save_mean,
                                  Tensor& save_invstd);
void batchnorm_relu_forward_eval(Context& c, const Tensor& x, const Tensor& gamma,
                                 const Tensor& beta, const Tensor& running_mean,
                                 const Tensor& running_var, double eps, Tensor& y);
void batchnorm_relu_backward(Context& c, const Tensor& x, const Tensor& y, const Tensor& gamma,
                             const Tensor& save_mean, const Tensor& save_invstd, const Tensor& dy,
                             Tensor& dx, Tensor& dgamma, Tensor& dbeta);
// Per-channel sum over [N, C, HW] (also the conv bias gradient).
void channel_sum(Context& c, const float* x, int64_t n, int64_t channels, int64_t hw, float* out,
                 const char* op);

// activation.cu
void relu_forward(Context& c, const Tensor& x, Tensor& y);
void relu_backward(Context& c, const Tensor& y, const Tensor& dy, Tensor& dx);
void add(Context& c, const Tensor& a, const Tensor& b, Tensor& y);
void add_inplace(Context& c, Tensor& y, const Tensor& x);
void dropout_forward(Context& c, const Tensor& x, double p, uint64_t seed, Tensor& mask, Tensor& y);
void dropout_backward(Context& c, const Tensor& dy, const Tensor& mask, Tensor& dx);

// pool.cu
void maxpool2d_forward(Context& c, const Tensor& x, const PoolGeom& g, Tensor& y, Tensor& argmax);
void maxpool2d_backward(Context& c, const Tensor& dy, const Tensor& argmax, Tensor& dx);
void avgpool2d_forward(Context& c, const Tensor& x, const PoolGeom& g, Tensor& y);
void avgpool2d_backward(Context& c, const Tensor& dy, const PoolGeom& g, Tensor& dx);
void global_avgpool_forward(Context& c, const Tensor& x, Tensor& y);
void global_avgpool_backward(Context& c, const Tensor& dy, Tensor& dx);

// linear.cu
void linear_forward(Context& c, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y);
void linear_backward(Context& c, const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx,
                     Tensor& dw, Tensor* db);

// loss.cu
double softmax_xent_forward(Context& c, const Tensor& logits, const Tensor& labels, Tensor& probs);
void softmax_xent_backward(Context& c, const Tensor& probs, const Tensor& labels, Tensor& dlogits);
int64_t count_correct(Context& c, const Tensor& logits, const Tensor& labels);

// stats.cu
void channel_absmax(Context& c, const Tensor& h, Tensor& out);

// upload.cu
void upload_batch(Context& c, const Tensor& images, const Tensor& labels, Tensor& x, Tensor& y);

// optim.cu
void optimizer_step(Context& c, const OptimStep& s, Tensor& params, const Tensor& grads,
                    std::vector<Tensor>& state, const std::vector<UpdateSegment>& segments);

}  // namespace st::cuda
