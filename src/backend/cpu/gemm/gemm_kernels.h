// What each ISA translation unit exports to the GEMM driver: its register
// blocks and their macro-kernels. Internal to the gemm folder.
#pragma once

#include <cstdint>

#include "backend/cpu/gemm/gemm.h"

namespace st::cpu::gemm_detail {

// C[mc, nc] (ldc) = alpha * Ap Bp + beta * C for one packed block: Ap holds
// ceil(mc / mr) panels of kc x mr (row i of the panel at p * mr + i), Bp
// ceil(nc / nr) panels of kc x nr, both zero-padded. beta == 0 does not read C.
using MacroKernel = void (*)(int64_t mc, int64_t nc, int64_t kc, const float* ap, const float* bp,
                             float* c, int64_t ldc, float alpha, float beta);

// A register block (mr x nr tile of C) and its rows per cache block.
struct Block {
  int mr, nr;
  int64_t mc;                   // a multiple of mr
  MacroKernel macro = nullptr;  // null: not compiled into this build
};

struct KernelSet {
  const char* name;
  Block wide;      // the default
  Block narrow;    // for products at most narrow.nr columns wide
  int64_t kc, nc;  // cache blocks shared by both (nc a multiple of both nr)
};

// One per translation unit, each compiled with its own target flags.
extern const KernelSet kBaselineKernels;
extern const KernelSet kAvx2Kernels;
extern const KernelSet kAvx512fKernels;

const KernelSet& kernels_of(Isa isa);

}  // namespace st::cpu::gemm_detail
