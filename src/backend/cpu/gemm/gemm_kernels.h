// What each ISA translation unit exports to the GEMM driver: its register
// blocks and their macro-kernels. Internal to the gemm folder.
#pragma once

#include <cstdint>

#include "backend/cpu/gemm/gemm.h"

namespace st::cpu::gemm_detail {

// One operand of a block product: panel r (mr rows of A or nr columns of B)
// starts at data + r * panel, and its values for k = p + 1 lie `step` floats
// after those for k = p. Packed panels have step mr (nr) and panel kc * mr
// (kc * nr); an operand already laid out that way in memory (A transposed, B
// not, full panels only) is used in place with step lda (ldb) and panel mr (nr).
struct Operand {
  const float* data;
  int64_t panel, step;
};

// C[mc, nc] (ldc) = alpha * A B + beta * C for one block: A has ceil(mc / mr)
// panels, B ceil(nc / nr), each kc deep; rows and columns of partial panels
// past mc and nc are read but not stored. beta == 0 does not read C.
using MacroKernel = void (*)(int64_t mc, int64_t nc, int64_t kc, Operand a, Operand b, float* c,
                             int64_t ldc, float alpha, float beta);

// A register block (mr x nr tile of C) and its rows per cache block.
struct Block {
  int mr, nr;
  int64_t mc;                   // a multiple of mr
  MacroKernel macro = nullptr;  // null: not compiled into this build
};

// See sdot_accumulate in gemm.h; k is a multiple of the set's dot lanes.
using DotKernel = void (*)(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                           const float* b, int64_t ldb, float* acc);

struct KernelSet {
  const char* name;
  Block wide;      // the default
  Block narrow;    // for products at most narrow.nr columns wide
  int64_t kc, nc;  // cache blocks shared by both (nc a multiple of both nr)
  int dot_lanes;   // vector lanes of the row dot products
  DotKernel dot;   // null where the set is not compiled in
};

// One per translation unit, each compiled with its own target flags.
extern const KernelSet kBaselineKernels;
extern const KernelSet kAvx2Kernels;
extern const KernelSet kAvx512fKernels;

const KernelSet& kernels_of(Isa isa);

}  // namespace st::cpu::gemm_detail
