// The optimizer step: one kernel over the whole flat parameter buffer, for
// every rule and regularization kind. The per-element math is apply_update()
// from optim/update_rules.h, the same code the CPU loop runs; each element
// finds its segment (and so its lambda) by binary search in a small device
// array.
#include <string>

#include "cuda_common.cuh"
#include "optim/update_rules.h"

namespace st::cuda {
namespace {

__global__ void optimizer_step_kernel(RuleScalars k, float* params, const float* grads, float* s0,
                                      float* s1, float* s2, const UpdateSegment* segments,
                                      int segment_count, int64_t n) {
  ST_GRID_STRIDE(i, n) {
    // The last segment that starts at or before i (segments tile [0, n) in
    // order; an empty segment shares its offset with the next, and the later
    // one wins).
    int lo = 0, hi = segment_count - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (segments[mid].offset <= i)
        lo = mid;
      else
        hi = mid - 1;
    }
    const float lambda = segments[lo].lambda;
    const float factor = static_cast<float>(decoupled_factor(k, lambda));
    float unused[3] = {0.0f, 0.0f, 0.0f};  // for the slots the rule does not keep
    float& r0 = s0 ? s0[i] : unused[0];
    float& r1 = s1 ? s1[i] : unused[1];
    float& r2 = s2 ? s2[i] : unused[2];
    apply_update<float>(k, lambda, factor, params[i], grads[i], r0, r1, r2);
  }
}

// Backend checked the buffers and that the segments tile them; these are the
// kernel's own limits.
void check_limits(const std::vector<Tensor>& state, const std::vector<UpdateSegment>& segments,
                  const char* op) {
  require(state.size() <= 3, op, "at most 3 state buffers, got " + std::to_string(state.size()));
  require(segments.size() < (std::size_t{1} << 30), op, "too many segments");
}

bool same_segments(const std::vector<UpdateSegment>& a, const std::vector<UpdateSegment>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].offset != b[i].offset || a[i].length != b[i].length || a[i].lambda != b[i].lambda)
      return false;
  return true;
}

}  // namespace

const UpdateSegment* DeviceSegments::upload(const std::vector<UpdateSegment>& segments,
                                            cudaStream_t stream) {
  const char* op = "cuda optimizer_step";
  if (device_.defined() && same_segments(segments, host_)) return device_ptr();
  // The previous step's kernel may still read the old table.
  check(cudaStreamSynchronize(stream), op, "cudaStreamSynchronize");
  const std::size_t bytes = sizeof(UpdateSegment) * segments.size();
  if (!device_.defined() || device_.bytes() < bytes)
    device_ = Tensor({static_cast<int64_t>((bytes + 3) / 4)}, DType::F32, Device::CUDA);
  check(cudaMemcpy(device_.raw(), segments.data(), bytes, cudaMemcpyHostToDevice), op,
        "cudaMemcpy of the segment table");
  host_ = segments;
  return device_ptr();
}

void optimizer_step(Context& c, const OptimStep& s, Tensor& params, const Tensor& grads,
                    std::vector<Tensor>& state, const std::vector<UpdateSegment>& segments) {
  const char* op = "cuda optimizer_step";
  float* pp = f32_out(params);
  const float* gp = f32_in(grads);
  check_limits(state, segments, op);
  float* slots[3] = {nullptr, nullptr, nullptr};
  for (std::size_t j = 0; j < state.size(); ++j) slots[j] = f32_out(state[j]);
  const int64_t n = params.numel();
  if (n == 0) return;
  const UpdateSegment* table = c.segments->upload(segments, c.stream);
  optimizer_step_kernel<<<grid_for(n), kBlock, 0, c.stream>>>(make_rule_scalars(s), pp, gp,
                                                              slots[0], slots[1], slots[2], table,
                                                              static_cast<int>(segments.size()), n);
  check_launch(op, c.stream);
}

}  // namespace st::cuda
