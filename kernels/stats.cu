// Sparsity statistics: the largest |activation| of every (image, channel) plane,
// one warp per plane. max is order-independent, so the result is exact.
#include <string>

#include "cuda_common.cuh"

namespace st::cuda {
namespace {

__global__ void channel_absmax_kernel(const float* h, float* out, int64_t planes, int64_t plane) {
  const int lane = threadIdx.x & 31;
  for (int64_t pl = first_warp(); pl < planes; pl += warp_count()) {
    const float* hp = h + pl * plane;
    float m = 0.0f;
    for (int64_t i = lane; i < plane; i += 32) m = fmaxf(m, fabsf(hp[i]));
    m = warp_max(m);
    if (lane == 0) out[pl] = m;
  }
}

}  // namespace

void channel_absmax(Context& c, const Tensor& h, Tensor& out) {
  const char* op = "cuda channel_absmax";
  const float* hp = f32_in(h);
  float* op_out = f32_out(out);
  const int64_t planes = h.dim(0) * h.dim(1);
  if (planes == 0) return;
  const int64_t plane = h.numel() / planes;
  channel_absmax_kernel<<<warp_grid_for(planes), kBlock, 0, c.stream>>>(hp, op_out, planes, plane);
  check_launch(op, c.stream);
}

}  // namespace st::cuda
