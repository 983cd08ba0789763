// upload_batch: the host batch goes through page-locked staging so that the
// copy to the device is asynchronous DMA on the copy stream, overlapping the
// host's work on the next batch. Two staging slots alternate, so filling one
// waits only for the copy issued two uploads earlier.
#include <cstring>

#include "cuda_common.cuh"

namespace st::cuda {

void UploadStaging::init() {
  for (Slot& s : slots_)
    check(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming), "upload_batch",
          "cudaEventCreate");
  check(cudaEventCreateWithFlags(&compute_mark_, cudaEventDisableTiming), "upload_batch",
        "cudaEventCreate");
}

UploadStaging::~UploadStaging() {
  // No throwing here; a failed copy was reported by a later op or synchronize().
  for (Slot& s : slots_) {
    if (s.copied) {
      cudaEventSynchronize(s.copied);
      cudaEventDestroy(s.copied);
    }
    if (s.host) cudaFreeHost(s.host);
  }
  if (compute_mark_) cudaEventDestroy(compute_mark_);
}

void UploadStaging::upload(Context& c, const Tensor& images, const Tensor& labels, Tensor& x,
                           Tensor& y) {
  const char* op = "upload_batch";
  Slot& s = slots_[next_];
  next_ ^= 1;
  // The slot's previous copy must have left the pinned memory before it is refilled.
  if (s.pending) check(cudaEventSynchronize(s.copied), op, "cudaEventSynchronize");
  s.pending = false;
  const std::size_t image_bytes = images.bytes(), label_bytes = labels.bytes();
  const std::size_t label_offset = (image_bytes + 255) / 256 * 256;
  const std::size_t need = label_offset + label_bytes;
  if (s.bytes < need) {
    if (s.host) check(cudaFreeHost(s.host), op, "cudaFreeHost");
    s.host = nullptr;
    s.bytes = 0;
    check(cudaMallocHost(&s.host, need), op, "cudaMallocHost");
    s.bytes = need;
  }
  char* host = static_cast<char*>(s.host);
  if (image_bytes) std::memcpy(host, images.raw(), image_bytes);
  if (label_bytes) std::memcpy(host + label_offset, labels.raw(), label_bytes);
  // x and y may still be read by work queued before this call: the copies wait for it.
  check(cudaEventRecord(compute_mark_, c.stream), op, "cudaEventRecord");
  check(cudaStreamWaitEvent(c.copy_stream, compute_mark_, 0), op, "cudaStreamWaitEvent");
  if (image_bytes)
    check(cudaMemcpyAsync(x.raw(), host, image_bytes, cudaMemcpyHostToDevice, c.copy_stream), op,
          "cudaMemcpyAsync (images)");
  if (label_bytes)
    check(cudaMemcpyAsync(y.raw(), host + label_offset, label_bytes, cudaMemcpyHostToDevice,
                          c.copy_stream),
          op, "cudaMemcpyAsync (labels)");
  check(cudaEventRecord(s.copied, c.copy_stream), op, "cudaEventRecord");
  s.pending = true;
  // Ops queued from now on wait for the batch on the device; the host does not wait.
  check(cudaStreamWaitEvent(c.stream, s.copied, 0), op, "cudaStreamWaitEvent");
}

void upload_batch(Context& c, const Tensor& images, const Tensor& labels, Tensor& x, Tensor& y) {
  c.staging->upload(c, images, labels, x, y);
}

}  // namespace st::cuda
