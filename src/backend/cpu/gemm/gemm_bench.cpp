#include "backend/cpu/gemm/gemm_bench.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "backend/cpu/cpu_runtime.h"

namespace st::cpu {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

std::vector<GemmShape> step_gemm_shapes() {
  return {
      {"square 1024^3", false, false, 1024, 1024, 1024},
      // Winograd F(2x2,3x3), one of the 16 points: forward [tiles, C] x [O, C]^T,
      // weight gradient [tiles, O]^T x [tiles, C], input gradient [tiles, O] x [O, C].
      {"wino fwd 64->128 @32x32", false, true, 256, 128, 64},
      {"wino fwd 128->256 @16x16", false, true, 192, 256, 128},
      {"wino fwd 512->512 @4x4", false, true, 64, 512, 512},
      {"wino dW 512->512 @4x4", true, false, 512, 512, 64},
      {"wino dX 512->512 @4x4", false, false, 64, 512, 512},
      {"wino fwd 16->32 @32x32 (w0.25)", false, true, 256, 32, 16},
      {"wino dW 16->32 @32x32 (w0.25)", true, false, 32, 16, 256},
      {"wino fwd 128->128 @4x4 (w0.25)", false, true, 64, 128, 128},
      // im2col: the 3-channel first layer, 4 images side by side.
      {"im2col fwd 3->64 @32x32", false, false, 64, 1024, 27},
      {"im2col dW 3->64 @32x32", false, true, 64, 27, 1024},
      {"linear fwd 512->10", false, true, 64, 10, 512},
      {"linear dW 512->10", true, false, 10, 512, 64},
  };
}

std::vector<GemmTiming> bench_gemm(const std::vector<GemmShape>& shapes, Isa isa, int threads,
                                   int repeats) {
  std::vector<GemmTiming> out;
  using Clock = std::chrono::steady_clock;
  for (const GemmShape& s : shapes) {
    const int64_t a_size = s.m * s.k, b_size = s.k * s.n;
    std::vector<float> a(a_size), b(b_size), c(s.m * s.n);
    for (int64_t i = 0; i < a_size; ++i) a[i] = static_cast<float>((i * 7919) % 1000) * 1e-3f;
    for (int64_t i = 0; i < b_size; ++i) b[i] = static_cast<float>((i * 104729) % 1000) * 1e-3f;
    const int64_t lda = s.trans_a ? s.m : s.k, ldb = s.trans_b ? s.k : s.n;
    // Small products are repeated within one timing so each lasts about a millisecond or more.
    const double flop = 2.0 * s.m * s.n * s.k;
    const int inner = static_cast<int>(std::clamp(2e7 / flop, 1.0, 1e4));
    auto ours = [&] {
      for (int i = 0; i < inner; ++i)
        sgemm_on(isa, threads, s.trans_a, s.trans_b, s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(),
                 ldb, 0.0f, c.data(), s.n);
    };
    auto blas = [&] {
      for (int i = 0; i < inner; ++i)
        cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
                    s.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(s.m),
                    static_cast<int>(s.n), static_cast<int>(s.k), 1.0f, a.data(),
                    static_cast<int>(lda), b.data(), static_cast<int>(ldb), 0.0f, c.data(),
                    static_cast<int>(s.n));
    };
    auto time = [&](auto&& f) {
      const auto t0 = Clock::now();
      f();
      const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
      return flop * inner / sec * 1e-9;
    };
    const int saved = openblas_get_num_threads();
    openblas_set_num_threads(threads);
    ours(), blas();  // warm-up: page faults, packing buffers, OpenBLAS's threads
    std::vector<double> g_ours, g_blas;
    for (int r = 0; r < repeats; ++r) {
      g_ours.push_back(time(ours));
      g_blas.push_back(time(blas));
    }
    openblas_set_num_threads(saved);
    out.push_back({s, median(g_ours), median(g_blas)});
  }
  return out;
}

std::string format_gemm_timings(const std::vector<GemmTiming>& t) {
  std::ostringstream s;
  char line[200];
  std::snprintf(line, sizeof line, "  %-32s %5s %5s %5s %2s%2s %9s %9s %6s\n", "sgemm shape", "M",
                "N", "K", "tA", "tB", "ours", "OpenBLAS", "ratio");
  s << line;
  for (const GemmTiming& g : t) {
    std::snprintf(line, sizeof line, "  %-32s %5lld %5lld %5lld %2d%2d %9.1f %9.1f %6.2f\n",
                  g.shape.what.c_str(), static_cast<long long>(g.shape.m),
                  static_cast<long long>(g.shape.n), static_cast<long long>(g.shape.k),
                  g.shape.trans_a, g.shape.trans_b, g.ours_gflops, g.openblas_gflops,
                  g.openblas_gflops > 0 ? g.ours_gflops / g.openblas_gflops : 0.0);
    s << line;
  }
  s << "  (GFLOP/s, medians; ratio = ours / OpenBLAS)\n";
  return s.str();
}

}  // namespace st::cpu
