// What each ISA translation unit exports to the GEMM driver: its register
// block and its macro-kernel. Internal to the gemm folder.
#pragma once

#include <cstdint>

#include "backend/cpu/gemm/gemm.h"

namespace st::cpu::gemm_detail {

// C[mc, nc] (ldc) = alpha * Ap Bp + beta * C for one packed block: Ap holds
// ceil(mc / mr) panels of kc x mr (row i of the panel at p * mr + i), Bp
// ceil(nc / nr) panels of kc x nr, both zero-padded. beta == 0 does not read C.
using MacroKernel = void (*)(int64_t mc, int64_t nc, int64_t kc, const float* ap, const float* bp,
                             float* c, int64_t ldc, float alpha, float beta);

struct KernelSet {
  const char* name;
  int mr, nr;                   // register block
  int64_t mc, kc, nc;           // cache blocks (mc a multiple of mr, nc of nr)
  MacroKernel macro = nullptr;  // null: not compiled into this build
};

// One per translation unit, each compiled with its own target flags.
extern const KernelSet kBaselineKernels;
extern const KernelSet kAvx2Kernels;
extern const KernelSet kAvx512fKernels;

const KernelSet& kernels_of(Isa isa);

}  // namespace st::cpu::gemm_detail
