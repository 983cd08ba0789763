// Convolution throughput per layer shape on the CPU backend (a benchmark
// figure, never a timed test): do thin layers run at the rate of wide ones?
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace st::cpu {

struct ConvLayerShape {
  int64_t c = 0, o = 0, hw = 0;  // channels in, out, plane side; 3x3, stride 1, pad 1
  bool thin = false;             // 8-64 channels, against the wide layers' rate
};

struct ConvLayerTiming {
  ConvLayerShape shape;
  double forward_gflops = 0, backward_gflops = 0;  // medians; backward counts dx and dW
  // The same per second of process CPU time (all threads): on a shared
  // machine it moves far less with the load than wall-clock time does.
  double forward_cpu_gflops = 0, backward_cpu_gflops = 0;
  // The fastest repeat's wall-clock rate: on a machine whose speed drifts
  // between runs, the figure least disturbed by other load.
  double forward_best_gflops = 0, backward_best_gflops = 0;
};

// BasicNet's wide layers and the thin ones that skipping dead filters leaves.
std::vector<ConvLayerShape> conv_layer_shapes();

// Times forward and backward (with the input gradient) of each shape at
// `batch` images on the configured threads, `repeats` times.
std::vector<ConvLayerTiming> bench_conv_layers(const std::vector<ConvLayerShape>& shapes,
                                               int64_t batch, int repeats);

// One line per shape, then each thin layer's rate against the wide layers' median.
std::string format_conv_layer_timings(const std::vector<ConvLayerTiming>& t);

}  // namespace st::cpu
