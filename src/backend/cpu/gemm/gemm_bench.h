// GEMM benchmark figures (never timed tests): the engine's sgemm against
// OpenBLAS's at 1024^3 and on the shapes the training step multiplies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/cpu/gemm/gemm.h"

namespace st::cpu {

struct GemmShape {
  std::string what;
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
};

struct GemmTiming {
  GemmShape shape;
  double ours_gflops = 0;      // median over the repeats
  double openblas_gflops = 0;  // median, run alternately with ours
};

// 1024^3, then BasicNet's GEMMs (Winograd points, im2col lowering, the
// classifier) at width 1 and 0.25, batch 64 on 32x32 images.
std::vector<GemmShape> step_gemm_shapes();

// Times each shape on `isa` and on OpenBLAS, alternating the two so that both
// see the same machine load; products run on `threads` threads.
std::vector<GemmTiming> bench_gemm(const std::vector<GemmShape>& shapes, Isa isa, int threads,
                                   int repeats);

// One line per shape: GFLOP/s of both and their ratio.
std::string format_gemm_timings(const std::vector<GemmTiming>& t);

}  // namespace st::cpu
