// The CPU optimizer loop: validates the buffers, then runs apply_update() over
// every element, one segment (one regularization strength) at a time.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "optim/update_rules.h"

namespace st {
namespace {

void check_step_buffers(const OptimStep& s, const Tensor& params, const Tensor& grads,
                        const std::vector<Tensor>& state) {
  if (params.dtype() != DType::F32 && params.dtype() != DType::F64)
    throw std::invalid_argument(std::string("optimizer_step: parameters must be f32 or f64, got ") +
                                dtype_name(params.dtype()));
  if (params.device() != Device::CPU || grads.device() != Device::CPU)
    throw std::invalid_argument(
        "optimizer_step (cpu): parameters and gradients must be on the cpu");
  if (grads.numel() != params.numel() || grads.dtype() != params.dtype())
    throw std::invalid_argument("optimizer_step: gradients " + shape_str(grads.shape()) + " " +
                                dtype_name(grads.dtype()) + " do not match parameters " +
                                shape_str(params.shape()) + " " + dtype_name(params.dtype()));
  const int expected = optimizer_state_count(s.hyper);
  if (static_cast<int>(state.size()) != expected)
    throw std::invalid_argument("optimizer_step: the rule keeps " + std::to_string(expected) +
                                " state buffers, got " + std::to_string(state.size()));
  for (std::size_t j = 0; j < state.size(); ++j) {
    const Tensor& t = state[j];
    if (t.numel() != params.numel() || t.dtype() != params.dtype() || t.device() != Device::CPU)
      throw std::invalid_argument("optimizer_step: state buffer " + std::to_string(j) + " (" +
                                  shape_str(t.shape()) + " " + dtype_name(t.dtype()) +
                                  ") does not match the cpu parameters " +
                                  shape_str(params.shape()) + " " + dtype_name(params.dtype()));
  }
  if (s.step < 1)
    throw std::invalid_argument("optimizer_step: step must count from 1, got " +
                                std::to_string(s.step));
}

// Segments must tile [0, numel) in order, so every element is updated exactly once.
void check_segments(const std::vector<UpdateSegment>& segments, int64_t numel) {
  int64_t next = 0;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const UpdateSegment& seg = segments[i];
    if (seg.offset != next || seg.length < 0)
      throw std::invalid_argument("optimizer_step: segment " + std::to_string(i) + " covers [" +
                                  std::to_string(seg.offset) + ", " +
                                  std::to_string(seg.offset + seg.length) +
                                  ") but should start at " + std::to_string(next));
    next += seg.length;
  }
  if (next != numel)
    throw std::invalid_argument("optimizer_step: segments cover " + std::to_string(next) +
                                " elements, the parameters have " + std::to_string(numel));
}

template <typename T>
void run_step(const RuleScalars& k, T* p, const T* g, std::vector<T*> st,
              const std::vector<UpdateSegment>& segments) {
  T* slots[3] = {nullptr, nullptr, nullptr};
  for (std::size_t j = 0; j < st.size(); ++j) slots[j] = st[j];
#pragma omp parallel
  {
    T dummy[3] = {0, 0, 0};  // stands in for the slots the rule does not keep
    for (const UpdateSegment& seg : segments) {
      const T lambda = static_cast<T>(seg.lambda);
      const T factor = static_cast<T>(decoupled_factor(k, seg.lambda));
      const int64_t end = seg.offset + seg.length;
#pragma omp for schedule(static) nowait
      for (int64_t i = seg.offset; i < end; ++i) {
        T& s0 = slots[0] ? slots[0][i] : dummy[0];
        T& s1 = slots[1] ? slots[1][i] : dummy[1];
        T& s2 = slots[2] ? slots[2][i] : dummy[2];
        apply_update<T>(k, lambda, factor, p[i], g[i], s0, s1, s2);
      }
    }
  }
}

template <typename T>
void run_typed(const RuleScalars& k, Tensor& params, const Tensor& grads,
               std::vector<Tensor>& state, const std::vector<UpdateSegment>& segments) {
  std::vector<T*> st;
  for (Tensor& t : state) st.push_back(t.data<T>());
  run_step<T>(k, params.data<T>(), grads.data<T>(), st, segments);
}

}  // namespace

void cpu_optimizer_step(const OptimStep& s, Tensor& params, const Tensor& grads,
                        std::vector<Tensor>& state, const std::vector<UpdateSegment>& segments) {
  check_step_buffers(s, params, grads, state);
  check_segments(segments, params.numel());
  const RuleScalars k = make_rule_scalars(s);
  if (params.dtype() == DType::F32) {
    run_typed<float>(k, params, grads, state, segments);
  } else {
    run_typed<double>(k, params, grads, state, segments);
  }
}

}  // namespace st
