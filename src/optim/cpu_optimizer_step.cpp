#include <stdexcept>

#include "backend/cpu/cpu_backend.h"

namespace st {

// Placeholder until the update rules land (replaced in the optimizer work).
void cpu_optimizer_step(const OptimStep&, Tensor&, const Tensor&, std::vector<Tensor>&,
                        const std::vector<UpdateSegment>&) {
  throw std::logic_error("cpu_optimizer_step: pending");
}

}  // namespace st
