#include "backend/cpu/layer_bench.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "backend/cpu/cpu_backend.h"
#include "tensor/tensor.h"

namespace st::cpu {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

Tensor filled(const Shape& s, uint64_t seed) {
  std::vector<float> v(static_cast<std::size_t>(shape_numel(s)));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& e : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    e = static_cast<float>(static_cast<double>(x >> 40) / static_cast<double>(1ull << 24) - 0.5);
  }
  return Tensor::from_vector(v, s);
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

std::vector<ConvLayerShape> conv_layer_shapes() {
  return {
      // BasicNet at width 1 (after the first layer).
      {64, 128, 32, false},
      {128, 128, 16, false},
      {128, 256, 16, false},
      {256, 256, 8, false},
      {256, 512, 8, false},
      {512, 512, 4, false},
      // Thin: BasicNet at widths 0.125 to 0.5, and filters left after skipping.
      {8, 16, 32, true},
      {16, 16, 32, true},
      {16, 32, 16, true},
      {32, 32, 16, true},
      {32, 64, 8, true},
      {64, 64, 8, true},
      {64, 64, 4, true},
      {24, 40, 16, true},
      // What a compacted network keeps (13 to 23 filters; the quickstart's Adam run).
      {13, 17, 32, true},
      {12, 20, 16, true},
      {14, 13, 14, true},
      {13, 23, 7, true},
      {23, 22, 7, true},
      // What skipping 75 % of width 0.25's filters leaves on its first planes.
      {4, 8, 32, true},
  };
}

std::vector<ConvLayerTiming> bench_conv_layers(const std::vector<ConvLayerShape>& shapes,
                                               int64_t batch, int repeats) {
  using Clock = std::chrono::steady_clock;
  std::unique_ptr<Backend> be = make_cpu_backend();
  ConvGeom g;
  g.kh = g.kw = 3;
  g.stride_h = g.stride_w = 1;
  g.pad_h = g.pad_w = 1;
  std::vector<ConvLayerTiming> out;
  for (const ConvLayerShape& s : shapes) {
    Tensor x = filled({batch, s.c, s.hw, s.hw}, 1), w = filled({s.o, s.c, 3, 3}, 2);
    Tensor b = filled({s.o}, 3), dy = filled({batch, s.o, s.hw, s.hw}, 4);
    Tensor y({batch, s.o, s.hw, s.hw}, DType::F32), dx(x.shape(), DType::F32);
    Tensor dw(w.shape(), DType::F32), db(b.shape(), DType::F32);
    const double flop = 2.0 * static_cast<double>(batch * s.o * s.c * 9 * s.hw * s.hw);
    auto seconds = [](Clock::time_point t0) {
      return std::chrono::duration<double>(Clock::now() - t0).count();
    };
    be->conv2d_forward(x, w, &b, g, y);  // warm-up: scratch buffers, page faults
    be->conv2d_backward(x, w, dy, g, &dx, dw, &db);
    std::vector<double> fwd, bwd, fwd_cpu, bwd_cpu;
    for (int r = 0; r < repeats; ++r) {
      auto t0 = Clock::now();
      double c0 = process_cpu_seconds();
      be->conv2d_forward(x, w, &b, g, y);
      fwd.push_back(flop / seconds(t0) * 1e-9);
      fwd_cpu.push_back(flop / (process_cpu_seconds() - c0) * 1e-9);
      t0 = Clock::now();
      c0 = process_cpu_seconds();
      be->conv2d_backward(x, w, dy, g, &dx, dw, &db);
      bwd.push_back(2 * flop / seconds(t0) * 1e-9);
      bwd_cpu.push_back(2 * flop / (process_cpu_seconds() - c0) * 1e-9);
    }
    out.push_back({s, median(fwd), median(bwd), median(fwd_cpu), median(bwd_cpu),
                   *std::max_element(fwd.begin(), fwd.end()),
                   *std::max_element(bwd.begin(), bwd.end())});
  }
  return out;
}

std::string format_conv_layer_timings(const std::vector<ConvLayerTiming>& t) {
  std::vector<double> wide_f, wide_b;
  for (const ConvLayerTiming& l : t)
    if (!l.shape.thin)
      wide_f.push_back(l.forward_cpu_gflops), wide_b.push_back(l.backward_cpu_gflops);
  const double ref_f = median(wide_f), ref_b = median(wide_b);
  std::ostringstream s;
  char line[160];
  std::snprintf(line, sizeof line, "  %-22s %7s %7s %8s %8s %9s %9s %8s %8s\n", "conv 3x3 layer",
                "fwd", "bwd", "fwd/cpu", "bwd/cpu", "fwd/wide", "bwd/wide", "fwd/best", "bwd/best");
  s << line;
  for (const ConvLayerTiming& l : t) {
    char name[64];
    std::snprintf(name, sizeof name, "%lld->%lld @%lldx%lld%s", static_cast<long long>(l.shape.c),
                  static_cast<long long>(l.shape.o), static_cast<long long>(l.shape.hw),
                  static_cast<long long>(l.shape.hw), l.shape.thin ? " (thin)" : "");
    std::snprintf(line, sizeof line,
                  "  %-22s %7.1f %7.1f %8.1f %8.1f %8.0f%% %8.0f%% %8.1f %8.1f\n", name,
                  l.forward_gflops, l.backward_gflops, l.forward_cpu_gflops, l.backward_cpu_gflops,
                  ref_f > 0 ? 100 * l.forward_cpu_gflops / ref_f : 0.0,
                  ref_b > 0 ? 100 * l.backward_cpu_gflops / ref_b : 0.0, l.forward_best_gflops,
                  l.backward_best_gflops);
    s << line;
  }
  s << "  (direct-convolution GFLOP/s, medians: per wall-clock second, then per second of "
       "process CPU time;\n   backward counts dx and dW; x/wide: CPU-time rate against the wide "
       "layers' median;\n   x/best: the fastest repeat, per wall-clock second)\n";
  return s.str();
}

}  // namespace st::cpu
