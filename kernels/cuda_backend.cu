#include "cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
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

// Pins whole pages inside a slightly larger allocation: CUDA refuses to register
// a page twice, and small neighbouring allocations would otherwise share pages.
PinnedHostBuffer::PinnedHostBuffer(Shape shape, DType dtype) {
  const int64_t elem = static_cast<int64_t>(dtype_size(dtype));
  const int64_t bytes = shape_numel(shape) * elem;
  const int64_t page = std::max<int64_t>(sysconf(_SC_PAGESIZE), elem);
  const int64_t span = std::max<int64_t>((bytes + page - 1) / page * page, page);
  const Tensor block({(span + page) / elem}, dtype);
  const auto base = reinterpret_cast<std::uintptr_t>(block.raw());
  const std::uintptr_t aligned = (base + page - 1) / page * page;
  tensor_ = block.view(static_cast<int64_t>(aligned - base) / elem, std::move(shape));
  pinned_ = reinterpret_cast<void*>(aligned);
  cuda::check(cudaHostRegister(pinned_, static_cast<std::size_t>(span), cudaHostRegisterDefault),
              "PinnedHostBuffer", "cudaHostRegister");
}

PinnedHostBuffer::~PinnedHostBuffer() {
  // Pending copies from this memory must finish before it is unpinned.
  if (pinned_) {
    cudaDeviceSynchronize();
    cudaHostUnregister(pinned_);
  }
}

struct CudaState {
  CudaOptions options;
  int device = 0;
  std::string device_name;
  cudaStream_t compute = nullptr;
  cudaStream_t copy = nullptr;
  cudaEvent_t copy_done = nullptr;     // the latest upload
  cudaEvent_t compute_mark = nullptr;  // compute work queued before the latest upload
  bool has_compute_mark = false;
  cublasHandle_t cublas = nullptr;
  void* host_scratch = nullptr;
  cuda::Workspace workspace;
  cuda::DeviceSegments segments;
  cuda::Context ctx;

  explicit CudaState(const CudaOptions& o);
  ~CudaState();
};

CudaState::CudaState(const CudaOptions& o) : options(o) {
  const char* op = "CudaBackend";
  cuda::check(cudaGetDevice(&device), op, "cudaGetDevice");
  cudaDeviceProp prop{};
  cuda::check(cudaGetDeviceProperties(&prop, device), op, "cudaGetDeviceProperties");
  device_name = prop.name;
  if (o.tf32 && prop.major < 8)
    throw std::runtime_error(std::string(op) + ": TF32 needs compute capability 8.0 or newer; " +
                             prop.name + " has " + std::to_string(prop.major) + "." +
                             std::to_string(prop.minor) + " (unset SPARSETRAIN_CUDA_TF32)");
  cuda::check(cudaStreamCreateWithFlags(&compute, cudaStreamDefault), op, "cudaStreamCreate");
  cuda::check(cudaStreamCreateWithFlags(&copy, cudaStreamDefault), op, "cudaStreamCreate");
  cuda::check(cudaEventCreateWithFlags(&copy_done, cudaEventDisableTiming), op, "cudaEventCreate");
  cuda::check(cudaEventCreateWithFlags(&compute_mark, cudaEventDisableTiming), op,
              "cudaEventCreate");
  if (cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(op) + ": cublasCreate failed");
  cublasSetStream(cublas, compute);
  cublasSetMathMode(cublas, CUBLAS_DEFAULT_MATH);  // TF32 only through the compute type
  cuda::check(cudaMallocHost(&host_scratch, cuda::kHostScratchBytes), op, "cudaMallocHost");
  ctx.stream = compute;
  ctx.cublas = cublas;
  ctx.tf32 = o.tf32;
  ctx.sm_count = prop.multiProcessorCount;
  ctx.workspace = &workspace;
  ctx.segments = &segments;
  ctx.host_scratch = host_scratch;
}

CudaState::~CudaState() {
  // No throwing here: errors were reported by the ops or synchronize().
  if (compute) cudaStreamSynchronize(compute);
  if (copy) cudaStreamSynchronize(copy);
  if (host_scratch) cudaFreeHost(host_scratch);
  if (cublas) cublasDestroy(cublas);
  if (compute_mark) cudaEventDestroy(compute_mark);
  if (copy_done) cudaEventDestroy(copy_done);
  if (copy) cudaStreamDestroy(copy);
  if (compute) cudaStreamDestroy(compute);
}

CudaBackend::CudaBackend(const CudaOptions& options)
    : state_(std::make_unique<CudaState>(options)) {}

CudaBackend::~CudaBackend() = default;

std::string CudaBackend::name() const {
  return "cuda";
}

std::string CudaBackend::description() const {
  return state_->device_name + (state_->options.tf32 ? ", TF32 tensor cores" : ", exact FP32");
}

bool CudaBackend::tf32() const {
  return state_->options.tf32;
}

void CudaBackend::synchronize() {
  cuda::check(cudaDeviceSynchronize(), "synchronize", "cudaDeviceSynchronize");
  cuda::check(cudaGetLastError(), "synchronize", "an earlier kernel");
}

void CudaBackend::upload_async(const Tensor& host_pinned, Tensor& device) {
  const char* op = "upload_async";
  cuda::require(host_pinned.defined() && host_pinned.device() == Device::CPU, op,
                "the source must be a CPU tensor");
  cuda::require(device.defined() && device.device() == Device::CUDA, op,
                "the destination must be a CUDA tensor");
  cuda::require(host_pinned.numel() == device.numel() && host_pinned.dtype() == device.dtype(), op,
                "source " + shape_str(host_pinned.shape()) + " " + dtype_name(host_pinned.dtype()) +
                    " does not match destination " + shape_str(device.shape()) + " " +
                    dtype_name(device.dtype()));
  if (device.bytes() == 0) return;
  cudaPointerAttributes attr{};
  cuda::check(cudaPointerGetAttributes(&attr, host_pinned.raw()), op, "cudaPointerGetAttributes");
  cuda::require(attr.type == cudaMemoryTypeHost, op,
                "the source is not page-locked; allocate it with PinnedHostBuffer");
  CudaState& s = *state_;
  if (s.has_compute_mark) cuda::check(cudaStreamWaitEvent(s.copy, s.compute_mark, 0), op, "wait");
  cuda::check(cudaMemcpyAsync(device.raw(), host_pinned.raw(), device.bytes(),
                              cudaMemcpyHostToDevice, s.copy),
              op, "cudaMemcpyAsync");
  cuda::check(cudaEventRecord(s.copy_done, s.copy), op, "cudaEventRecord");
  cuda::check(cudaEventRecord(s.compute_mark, s.compute), op, "cudaEventRecord");
  s.has_compute_mark = true;
  cuda::check(cudaStreamWaitEvent(s.compute, s.copy_done, 0), op, "cudaStreamWaitEvent");
}

void CudaBackend::wait_uploads() {
  cuda::check(cudaStreamSynchronize(state_->copy), "wait_uploads", "cudaStreamSynchronize");
}

void CudaBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* bias,
                                 const ConvGeom& g, Tensor& y) {
  cuda::conv2d_forward(state_->ctx, x, w, bias, g, y);
}

void CudaBackend::conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy,
                                  const ConvGeom& g, Tensor* dx, Tensor& dw, Tensor* db) {
  cuda::conv2d_backward(state_->ctx, x, w, dy, g, dx, dw, db);
}

void CudaBackend::batchnorm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          Tensor& running_mean, Tensor& running_var,
                                          double momentum, double eps, Tensor& y, Tensor& save_mean,
                                          Tensor& save_invstd) {
  cuda::batchnorm_forward_train(state_->ctx, x, gamma, beta, running_mean, running_var, momentum,
                                eps, y, save_mean, save_invstd);
}

void CudaBackend::batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                         const Tensor& running_mean, const Tensor& running_var,
                                         double eps, Tensor& y) {
  cuda::batchnorm_forward_eval(state_->ctx, x, gamma, beta, running_mean, running_var, eps, y);
}

void CudaBackend::batchnorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                                     const Tensor& save_invstd, const Tensor& dy, Tensor& dx,
                                     Tensor& dgamma, Tensor& dbeta) {
  cuda::batchnorm_backward(state_->ctx, x, gamma, save_mean, save_invstd, dy, dx, dgamma, dbeta);
}

void CudaBackend::relu_forward(const Tensor& x, Tensor& y) {
  cuda::relu_forward(state_->ctx, x, y);
}

void CudaBackend::relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  cuda::relu_backward(state_->ctx, y, dy, dx);
}

void CudaBackend::maxpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y, Tensor& argmax) {
  cuda::maxpool2d_forward(state_->ctx, x, g, y, argmax);
}

void CudaBackend::maxpool2d_backward(const Tensor& dy, const Tensor& argmax, Tensor& dx) {
  cuda::maxpool2d_backward(state_->ctx, dy, argmax, dx);
}

void CudaBackend::avgpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y) {
  cuda::avgpool2d_forward(state_->ctx, x, g, y);
}

void CudaBackend::avgpool2d_backward(const Tensor& dy, const PoolGeom& g, Tensor& dx) {
  cuda::avgpool2d_backward(state_->ctx, dy, g, dx);
}

void CudaBackend::global_avgpool_forward(const Tensor& x, Tensor& y) {
  cuda::global_avgpool_forward(state_->ctx, x, y);
}

void CudaBackend::global_avgpool_backward(const Tensor& dy, Tensor& dx) {
  cuda::global_avgpool_backward(state_->ctx, dy, dx);
}

void CudaBackend::linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  cuda::linear_forward(state_->ctx, x, w, bias, y);
}

void CudaBackend::linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx,
                                  Tensor& dw, Tensor* db) {
  cuda::linear_backward(state_->ctx, x, w, dy, dx, dw, db);
}

double CudaBackend::softmax_xent_forward(const Tensor& logits, const Tensor& labels,
                                         Tensor& probs) {
  return cuda::softmax_xent_forward(state_->ctx, logits, labels, probs);
}

void CudaBackend::softmax_xent_backward(const Tensor& probs, const Tensor& labels,
                                        Tensor& dlogits) {
  cuda::softmax_xent_backward(state_->ctx, probs, labels, dlogits);
}

int64_t CudaBackend::count_correct(const Tensor& logits, const Tensor& labels) {
  return cuda::count_correct(state_->ctx, logits, labels);
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& y) {
  cuda::add(state_->ctx, a, b, y);
}

void CudaBackend::add_inplace(Tensor& y, const Tensor& x) {
  cuda::add_inplace(state_->ctx, y, x);
}

void CudaBackend::dropout_forward(const Tensor& x, double p, uint64_t seed, Tensor& mask,
                                  Tensor& y) {
  cuda::dropout_forward(state_->ctx, x, p, seed, mask, y);
}

void CudaBackend::dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx) {
  cuda::dropout_backward(state_->ctx, dy, mask, dx);
}

void CudaBackend::channel_absmax(const Tensor& h, Tensor& out) {
  cuda::channel_absmax(state_->ctx, h, out);
}

void CudaBackend::optimizer_step(const OptimStep& s, Tensor& params, const Tensor& grads,
                                 std::vector<Tensor>& state,
                                 const std::vector<UpdateSegment>& segments) {
  cuda::optimizer_step(state_->ctx, s, params, grads, state, segments);
}

std::unique_ptr<Backend> make_cuda_backend() {
  return make_cuda_backend(cuda_options_from_env());
}

std::unique_ptr<Backend> make_cuda_backend(const CudaOptions& options) {
  return std::make_unique<CudaBackend>(options);
}

}  // namespace st
