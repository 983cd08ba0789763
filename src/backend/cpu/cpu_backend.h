// The CPU backend: the numeric reference (F32 and F64) and a fast path
// (Winograd and im2col on the engine's own SGEMM kernels, OpenMP across the batch; F64 on
// OpenBLAS).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace st {

std::unique_ptr<Backend> make_cpu_backend();

// Threads for OpenMP and OpenBLAS; 0 keeps the default (all cores).
void set_cpu_threads(int threads);
int cpu_threads();

}  // namespace st

namespace st {

// The optimizer update over the flat buffer (optim/cpu_optimizer_step.cpp);
// CpuBackend::optimizer_step forwards here.
void cpu_optimizer_step(const OptimStep& s, Tensor& params, const Tensor& grads,
                        std::vector<Tensor>& state, const std::vector<UpdateSegment>& segments);

}  // namespace st
