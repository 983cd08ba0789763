// `sparsetrain bench`: times the training step that training runs (train/train_step.h:
// forward, softmax cross-entropy, backward, the non-finite checks, Adam with L2) of a preset on
// synthetic data, and prints ms per step, GFLOP/s and images/s. FLOP convention: a training
// step counts 3 x the forward FLOPs of Model::flops_per_image() (2 x the multiply-accumulates
// of conv and linear layers: forward, input gradient, weight gradient); BN, ReLU, pooling and
// the optimizer are not counted.
//
// Data comes either from the real BatchLoader with its prefetch thread (the default: what a
// training run sees), or, with `resident`, from a few batches uploaded to the device once
// and cycled through (steady-state steps, as a framework benchmark with data on the GPU does).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace st {

struct BenchOptions {
  std::string preset = "basicnet";
  double width = 1.0;
  int64_t batch = 64;
  int channels = 3;
  int size = 32;
  int classes = 10;
  int threads = 0;                 // 0: all cores
  std::string device = "cpu";      // cpu, cuda or auto
  std::string precision = "fp32";  // fp32 (exact) or tf32 (CUDA tensor cores for conv/linear)
  bool resident = false;           // batches uploaded once, no loader in the timed steps
  int warmup = 2;
  int steps = 10;
  int64_t epoch = 0;  // > 0: time one epoch of this many images instead of `steps`
  bool gemm = false;
  bool layers = false;  // time 3x3 convolutions per layer shape (CPU)
  bool profile = false;
  bool json = false;
  double lr = 1e-3;
  double weight_decay = 5e-4;
  double dead_fraction = 0;
  bool skip_dead = false;          // train the network with the silenced filters removed
  bool fuse = true;                // ReLUs fused into their BatchNorm or conv (Model::set_fuse_relu)
  std::vector<double> dead_sweep;  // time these dead fractions, skipping, side by side
  int rounds = 2;                  // interleaved rounds of the sweep
};

// What is wrong with the options, one message per problem, each naming its flag; empty when
// they can run.
std::vector<std::string> bench_option_errors(const BenchOptions& options);

// Runs the benchmark (options already checked) and prints its report, text or JSON, to `out`.
// Throws std::runtime_error for runtime failures (no CUDA device, a diverged step).
void run_bench(const BenchOptions& options, std::ostream& out);

}  // namespace st
