#include "bench/bench.h"

#include <cblas.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/denormals.h"
#include "backend/cpu/gemm/gemm_bench.h"
#include "backend/cpu/layer_bench.h"
#include "bench/profiling_backend.h"
#include "config/experiment.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "nn/layer_spec.h"
#include "nn/model.h"
#include "optim/optimizer.h"
#include "train/filter_skipping.h"
#include "train/train_step.h"

#ifdef SPARSETRAIN_WITH_CUDA
#include "cuda_backend.h"
#endif

namespace st {
namespace {

// One batch as the step reads it: on the CPU (from the loader) or on the device (resident).
struct BenchBatch {
  Tensor images, labels;
  int64_t size = 0;
};

using Clock = std::chrono::steady_clock;

// CPU time of the whole process (all threads, the loader's included): under
// load from other processes it grows far less than the wall-clock time.
double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// Learnable synthetic images (noise 1.0: the loss falls visibly over a few steps).
data::Dataset make_bench_data(const BenchOptions& o, int64_t images) {
  data::SyntheticOptions s;
  s.size = images;
  s.channels = o.channels;
  s.height = o.size;
  s.width = o.size;
  s.classes = o.classes;
  s.noise = 1.0f;
  return data::make_synthetic(s);
}

// Batches as a training run sees them: shuffled, normalized, randomly cropped
// and flipped, prepared on the loader's worker thread.
data::LoaderOptions loader_options(const BenchOptions& o, const data::Dataset& d) {
  data::LoaderOptions l;
  l.batch_size = o.batch;
  l.shuffle = true;
  l.drop_last = false;
  l.seed = 1;
  l.normalization = data::normalization_from(d);
  l.augmentation.crop_padding = 4;
  l.augmentation.horizontal_flip = true;
  l.prefetch = true;
  return l;
}

// Silences a fraction of every BN channel (gamma = beta = 0), so the ReLU after
// it outputs zeros: the dead filters of the paper. A dead channel stays dead (its
// gradients are zero). Returns the silenced channels per conv-BN-ReLU block.
BlockChannels kill_filters(Model& model, double fraction) {
  BlockChannels killed;
  for (const ConvBNReLU& b : model.conv_bn_relu_blocks()) {
    const std::string bn = model.specs()[b.bn].name;
    const auto dead = static_cast<int64_t>(fraction * static_cast<double>(b.channels));
    for (const char* field : {".weight", ".bias"}) {
      Tensor t = model.tensor(bn + field);
      std::vector<float> v = t.to_vector_f32();
      std::fill(v.begin(), v.begin() + dead, 0.0f);
      t.copy_from(Tensor::from_vector(v, t.shape()));
    }
    killed.emplace_back(dead);
    std::iota(killed.back().begin(), killed.back().end(), int64_t{0});
  }
  return killed;
}

// One training step's buffers and the objects it drives. With skipping, the step trains the
// network with the silenced filters removed, as a run with sparsity.skip_dead does once it
// has found them dead.
class Trainer {
 public:
  Trainer(const BenchOptions& o, double dead_fraction, bool skip_dead, Backend& backend)
      : model_(make_preset(o.preset, o.width),
               InputShape{o.channels, static_cast<int64_t>(o.size), static_cast<int64_t>(o.size)},
               o.classes, backend),
        optimizer_(adam(o), RegKind::L2, o.weight_decay, model_),
        // The checks a training run with default settings makes.
        state_(backend, step_checks(TrainingConfig{}, o.classes, backend.device())),
        backend_(backend),
        lr_(o.lr),
        fuse_(o.fuse) {
    const BlockChannels killed = kill_filters(model_, dead_fraction);
    if (skip_dead) {
      const auto make_optimizer = [o](const Model& m) {
        return std::make_unique<Optimizer>(adam(o), RegKind::L2, o.weight_decay, m);
      };
      skipper_.emplace(model_, optimizer_, make_optimizer, 1, 1e-12);
      skipper_->force_skip(killed);
    }
  }

  // The network the step trains, and the full one.
  Model& model() { return skipper_ ? skipper_->model() : model_; }
  const Model& full_model() const { return model_; }

  // The training run's step (train_step), waited for; returns the loss.
  double step(const BenchBatch& b) {
    Model& net = model();
    net.set_fuse_relu(fuse_);  // also reaches the skipper's compacted network
    Optimizer& opt = skipper_ ? skipper_->optimizer() : optimizer_;
    const StepResult r = train_step(state_, net, opt, {b.images, b.labels, lr_, lr_, 1, ++steps_});
    backend_.synchronize();
    return r.loss;
  }

 private:
  static OptimHyper adam(const BenchOptions& o) {
    OptimHyper h;
    h.rule = UpdateRule::Adam;
    h.lr = o.lr;
    return h;
  }

  Model model_;
  Optimizer optimizer_;
  std::optional<FilterSkipper> skipper_;
  StepState state_;
  Backend& backend_;
  double lr_;
  bool fuse_;
  int64_t steps_ = 0;
};

// Where the steps get their batches: the loader (prefetch thread, augmentation: what a training
// run does), or batches taken from it once and kept on the backend's device (`--resident`).
class BatchSource {
 public:
  BatchSource(const BenchOptions& o, const data::Dataset& d, Backend& backend)
      : loader_(d, loader_options(o, d)) {
    loader_.start_epoch(0);
    if (!o.resident) return;
    const int64_t per_epoch = loader_.batches_per_epoch();
    const int64_t wanted =
        o.epoch > 0 ? per_epoch : std::min<int64_t>(per_epoch, o.warmup + o.steps);
    for (int64_t i = 0; i < wanted; ++i) {
      std::optional<data::Batch> b = loader_.next();
      resident_.push_back(
          {b->images.to(backend.device()), b->labels.to(backend.device()), b->size()});
    }
    backend.synchronize();
  }

  int64_t batches_per_epoch() const {
    return resident_.empty() ? loader_.batches_per_epoch() : static_cast<int64_t>(resident_.size());
  }
  void start_epoch(int64_t epoch) {
    epoch_ = epoch;
    position_ = 0;
    if (resident_.empty()) loader_.start_epoch(epoch);
  }
  // The next batch of the epoch; none at its end.
  std::optional<BenchBatch> next_in_epoch() {
    if (!resident_.empty()) {
      if (position_ >= resident_.size()) return std::nullopt;
      return resident_[position_++];
    }
    std::optional<data::Batch> b = loader_.next();
    if (!b) return std::nullopt;
    return BenchBatch{b->images, b->labels, b->size()};
  }
  // The next batch, moving on to the next epoch when one ends.
  BenchBatch next() {
    if (std::optional<BenchBatch> b = next_in_epoch()) return *b;
    start_epoch(epoch_ + 1);
    return *next_in_epoch();
  }
  double wait_seconds() const { return resident_.empty() ? loader_.wait_seconds() : 0.0; }
  void reset_wait_seconds() { loader_.reset_wait_seconds(); }

 private:
  data::BatchLoader loader_;
  std::vector<BenchBatch> resident_;
  std::size_t position_ = 0;
  int64_t epoch_ = 0;
};

struct RunStats {
  std::vector<double> step_seconds;  // each step, loader wait included
  double total_seconds = 0;
  double cpu_seconds = 0;  // process CPU time over the timed steps
  double loader_wait_seconds = 0;
  int64_t images = 0;
  double first_loss = 0, last_loss = 0;
};

// `steps` timed steps after `warmup` untimed ones, through as many epochs as needed.
RunStats time_steps(Trainer& trainer, BatchSource& source, int warmup, int steps,
                    ProfilingBackend* profiler) {
  source.start_epoch(0);
  for (int i = 0; i < warmup; ++i) trainer.step(source.next());
  source.reset_wait_seconds();
  if (profiler) profiler->reset();
  RunStats r;
  const Clock::time_point start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  for (int i = 0; i < steps; ++i) {
    const Clock::time_point t0 = Clock::now();
    const BenchBatch b = source.next();
    const double loss = trainer.step(b);
    r.step_seconds.push_back(seconds_since(t0));
    r.images += b.size;
    if (i == 0) r.first_loss = loss;
    r.last_loss = loss;
  }
  r.total_seconds = seconds_since(start);
  r.cpu_seconds = process_cpu_seconds() - cpu_start;
  r.loader_wait_seconds = source.wait_seconds();
  return r;
}

// One whole epoch after `warmup` steps taken from a warm-up epoch.
RunStats time_epoch(Trainer& trainer, BatchSource& source, int warmup, ProfilingBackend* profiler) {
  source.start_epoch(0);
  for (int i = 0; i < warmup; ++i) trainer.step(source.next());
  source.start_epoch(1);
  source.reset_wait_seconds();
  if (profiler) profiler->reset();
  RunStats r;
  const Clock::time_point start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  bool first = true;
  for (;;) {
    const Clock::time_point t0 = Clock::now();
    std::optional<BenchBatch> b = source.next_in_epoch();
    if (!b) break;
    const double loss = trainer.step(*b);
    r.step_seconds.push_back(seconds_since(t0));
    r.images += b->size;
    if (first) r.first_loss = loss, first = false;
    r.last_loss = loss;
  }
  r.total_seconds = seconds_since(start);
  r.cpu_seconds = process_cpu_seconds() - cpu_start;
  r.loader_wait_seconds = source.wait_seconds();
  return r;
}

struct GemmResult {
  double best_gflops = 0, median_gflops = 0;
};

// OpenBLAS sgemm C = A B at n x n x n on the configured threads: the ceiling
// the convolutions (lowered to GEMMs) are measured against.
GemmResult gemm_reference(int n = 1024, int repeats = 7) {
  std::vector<float> a(static_cast<std::size_t>(n) * n), b(a.size()), c(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<float>((i * 7919) % 1000) * 1e-3f;
    b[i] = static_cast<float>((i * 104729) % 1000) * 1e-3f;
  }
  auto run = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
  };
  run();
  std::vector<double> gflops;
  const double flop = 2.0 * n * n * n;
  for (int i = 0; i < repeats; ++i) {
    const Clock::time_point t0 = Clock::now();
    run();
    gflops.push_back(flop / seconds_since(t0) * 1e-9);
  }
  return {*std::max_element(gflops.begin(), gflops.end()), median(gflops)};
}

std::string load_average() {
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) != 3) return "unknown";
  std::ostringstream s;
  s << std::fixed << std::setprecision(2) << load[0] << " " << load[1] << " " << load[2];
  return s.str();
}

struct Report {
  nlohmann::json json;
  std::string text;
};

nlohmann::json profile_json(const std::map<std::string, OpTime>& ops, double steps) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, t] : ops)
    j[name] = {{"ms_per_step", t.seconds * 1e3 / steps}, {"calls_per_step", t.calls / steps}};
  return j;
}

// A table of ops sorted by time, with their share of the step.
std::string profile_text(const std::map<std::string, OpTime>& ops, double steps,
                         double step_seconds) {
  std::vector<std::pair<std::string, OpTime>> rows(ops.begin(), ops.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  std::ostringstream s;
  s << std::fixed << std::setprecision(2);
  double sum = 0;
  for (const auto& [name, t] : rows) {
    const double ms = t.seconds * 1e3 / steps;
    sum += ms;
    s << "  " << std::setw(9) << ms << " ms  " << std::setw(5) << 100 * ms / (step_seconds * 1e3)
      << " %  " << name << "\n";
  }
  s << "  " << std::setw(9) << step_seconds * 1e3 - sum << " ms  " << std::setw(5)
    << 100 * (1 - sum / (step_seconds * 1e3)) << " %  (outside backend ops: loader, model)\n";
  return s.str();
}

Report make_report(const BenchOptions& o, Trainer& trainer, Backend& backend, const RunStats& r,
                   const ProfilingBackend* profiler, const std::optional<GemmResult>& gemm) {
  const int64_t flops_per_image = trainer.model().flops_per_image();
  const double med = median(r.step_seconds), avg = mean(r.step_seconds);
  const double images_per_s = static_cast<double>(r.images) / r.total_seconds;
  const double gflops = 3.0 * static_cast<double>(flops_per_image) * images_per_s * 1e-9;
  const double wait_pct = 100.0 * r.loader_wait_seconds / r.total_seconds;
  const int threads = backend.device() == Device::CPU ? cpu_threads() : 0;

  nlohmann::json j;
  j["preset"] = o.preset;
  j["width"] = o.width;
  j["batch"] = o.batch;
  j["input"] = {o.channels, o.size, o.size};
  j["classes"] = o.classes;
  j["device"] = backend.name();
  if (backend.device() == Device::CPU) j["cpu_kernels"] = cpu::cpu_kernel_description();
  j["precision"] = o.precision;
  j["data"] = o.resident ? "resident" : "loader";
  j["threads"] = threads;
  j["load_average"] = load_average();
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  j["omp_wait_policy"] = wait_policy ? wait_policy : "default";
  j["parameters"] = trainer.model().num_params();
  j["forward_gflop_per_image"] = static_cast<double>(flops_per_image) * 1e-9;
  j["flop_convention"] =
      "step = 3 x forward FLOPs (2 x conv/linear MACs); BN/ReLU/pool not counted";
  j["mode"] = o.epoch > 0 ? "epoch" : "steps";
  j["steps"] = r.step_seconds.size();
  j["images"] = r.images;
  j["seconds"] = r.total_seconds;
  j["ms_per_step_median"] = med * 1e3;
  j["ms_per_step_mean"] = avg * 1e3;
  j["cpu_ms_per_step"] = r.cpu_seconds * 1e3 / static_cast<double>(r.step_seconds.size());
  j["images_per_s"] = images_per_s;
  j["gflops"] = gflops;
  j["loader_wait_percent"] = wait_pct;
  j["loss_first"] = r.first_loss;
  j["loss_last"] = r.last_loss;
  if (o.dead_fraction > 0) j["dead_fraction"] = o.dead_fraction;
  j["fused_bn_relu"] = o.fuse;
  const double flop_ratio = static_cast<double>(trainer.full_model().flops_per_image()) /
                            static_cast<double>(flops_per_image);
  if (o.skip_dead) {
    j["skip_dead"] = true;
    j["parameters_full"] = trainer.full_model().num_params();
    j["flop_ratio"] = flop_ratio;
  }
  if (gemm) {
    j["sgemm_1024_gflops_best"] = gemm->best_gflops;
    j["sgemm_1024_gflops_median"] = gemm->median_gflops;
    j["step_gflops_vs_sgemm"] = gflops / gemm->median_gflops;
  }

  std::ostringstream s;
  s << "bench: " << o.preset << " width " << o.width << ", batch " << o.batch << ", " << o.channels
    << "x" << o.size << "x" << o.size << ", " << o.classes << " classes, "
    << trainer.model().num_params() << " parameters";
  if (o.dead_fraction > 0)
    s << ", dead fraction " << o.dead_fraction
      << (o.skip_dead ? " (skipped: the compacted network trains, " : " (computed densely")
      << (o.skip_dead ? std::to_string(flop_ratio).substr(0, 5) + "x fewer FLOPs)" : ")");
  s << "\n";
  s << std::fixed << std::setprecision(1);
  s << "device " << backend.name() << " (" << o.precision << ")";
  if (backend.device() == Device::CPU) s << ", cpu kernels " << cpu::cpu_kernel_description();
  if (threads) s << ", " << threads << " threads";
  s << (o.fuse ? ", BN+ReLU fused" : ", BN and ReLU apart");
  s << (o.resident ? ", data resident on the device" : ", data from the loader");
  s << ", load average " << load_average();
  if (wait_policy) s << ", OMP_WAIT_POLICY=" << wait_policy;
  s << "\n";
  if (o.epoch > 0)
    s << "epoch of " << r.images << " images in " << r.step_seconds.size()
      << " steps: " << r.total_seconds << " s\n";
  else
    s << r.step_seconds.size() << " steps after " << o.warmup << " warm-up\n";
  s << "  ms/step    median " << med * 1e3 << ", mean " << avg * 1e3 << "  (process CPU time "
    << r.cpu_seconds * 1e3 / static_cast<double>(r.step_seconds.size()) << " ms/step)\n";
  s << "  images/s   " << images_per_s << "\n";
  s << "  GFLOP/s    " << gflops << "  (step = 3 x forward, " << std::setprecision(3)
    << static_cast<double>(flops_per_image) * 1e-9 << " GFLOP/image forward)\n"
    << std::setprecision(1);
  if (!o.resident)
    s << "  loader     " << std::setprecision(2) << wait_pct
      << " % of the time waiting for batches\n";
  s << "  loss       " << std::setprecision(4) << r.first_loss << " -> " << r.last_loss << "\n"
    << std::setprecision(1);
  if (gemm) {
    s << "  OpenBLAS sgemm 1024^3: " << gemm->median_gflops << " GFLOP/s (best "
      << gemm->best_gflops << "); the step reaches " << 100 * gflops / gemm->median_gflops
      << " % of it\n";
    // The engine's own GEMM against OpenBLAS, side by side, at 1024^3 and the step's shapes.
    const auto shapes = cpu::bench_gemm(cpu::step_gemm_shapes(), cpu::active_isa(), threads, 7);
    s << cpu::format_gemm_timings(shapes);
    for (const cpu::GemmTiming& g : shapes)
      j["sgemm_shapes"].push_back({{"what", g.shape.what},
                                   {"m", g.shape.m},
                                   {"n", g.shape.n},
                                   {"k", g.shape.k},
                                   {"ours_gflops", g.ours_gflops},
                                   {"openblas_gflops", g.openblas_gflops}});
  }
  if (o.layers && backend.device() == Device::CPU) {
    const auto layers = cpu::bench_conv_layers(cpu::conv_layer_shapes(), o.batch, 5);
    s << cpu::format_conv_layer_timings(layers);
    for (const cpu::ConvLayerTiming& l : layers)
      j["conv_layers"].push_back({{"c", l.shape.c},
                                  {"o", l.shape.o},
                                  {"hw", l.shape.hw},
                                  {"thin", l.shape.thin},
                                  {"forward_gflops", l.forward_gflops},
                                  {"backward_gflops", l.backward_gflops}});
  }
  if (profiler) {
    const double steps = static_cast<double>(r.step_seconds.size());
    const double step_s = r.total_seconds / steps;
    j["profile_by_kind"] = profile_json(profiler->by_kind(), steps);
    j["profile_by_shape"] = profile_json(profiler->by_shape(), steps);
    s << "profile per step, by op (" << (backend.device() == Device::CPU ? "" : "synchronized, ")
      << "mean over the timed steps):\n"
      << profile_text(profiler->by_kind(), steps, step_s) << "profile per step, by op and input:\n"
      << profile_text(profiler->by_shape(), steps, step_s);
  }
  return {j, s.str()};
}

// Step time of the network trained with a fraction of its filters dead and skipped, for each
// fraction, in interleaved rounds (so that a change in machine load hits every fraction); the
// speed-up over the first fraction next to the FLOP ratio.
void run_dead_sweep(const BenchOptions& o, Backend& backend, std::ostream& out) {
  const data::Dataset d = make_bench_data(o, o.batch * (o.warmup + o.steps));
  struct Row {
    double fraction = 0;
    int64_t flops = 0, params = 0;
    std::vector<double> wall, cpu;  // seconds per step, one per round
  };
  std::vector<Row> rows;
  for (double f : o.dead_sweep) {
    Row row;
    row.fraction = f;
    rows.push_back(row);
  }
  for (int round = 0; round < o.rounds; ++round)
    for (Row& row : rows) {
      BatchSource source(o, d, backend);
      Trainer trainer(o, row.fraction, true, backend);
      const RunStats r = time_steps(trainer, source, o.warmup, o.steps, nullptr);
      row.flops = trainer.model().flops_per_image();
      row.params = trainer.model().num_params();
      row.wall.push_back(median(r.step_seconds));
      row.cpu.push_back(r.cpu_seconds / static_cast<double>(r.step_seconds.size()));
    }
  const Row& base = rows.front();
  nlohmann::json j;
  j["preset"] = o.preset;
  j["width"] = o.width;
  j["batch"] = o.batch;
  j["input"] = {o.channels, o.size, o.size};
  j["device"] = backend.name();
  if (backend.device() == Device::CPU) j["cpu_kernels"] = cpu::cpu_kernel_description();
  j["precision"] = o.precision;
  j["data"] = o.resident ? "resident" : "loader";
  j["threads"] = backend.device() == Device::CPU ? cpu_threads() : 0;
  j["load_average"] = load_average();
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  j["omp_wait_policy"] = wait_policy ? wait_policy : "default";
  j["rounds"] = o.rounds;
  j["steps"] = o.steps;
  std::ostringstream s;
  s << "bench dead-filter sweep: " << o.preset << " width " << o.width << ", batch " << o.batch
    << ", " << o.channels << "x" << o.size << "x" << o.size << ", device " << backend.name()
    << (backend.device() == Device::CPU ? ", cpu kernels " + cpu::cpu_kernel_description() : "")
    << ", load average " << load_average() << "\n"
    << "dead filters are skipped (the compacted network trains); medians of " << o.rounds
    << " interleaved rounds of " << o.steps << " steps; speed-ups against dead fraction "
    << base.fraction << "\n";
  s << "  dead   params     GFLOP/img  FLOP ratio  ms/step  CPU ms/step  speed-up (wall, CPU)"
       "  speed-up / FLOP ratio (CPU)\n";
  for (const Row& row : rows) {
    const double wall = median(row.wall), cpu = median(row.cpu);
    const double flop_ratio = static_cast<double>(base.flops) / static_cast<double>(row.flops);
    const double speedup_wall = median(base.wall) / wall, speedup_cpu = median(base.cpu) / cpu;
    j["rows"].push_back({{"dead_fraction", row.fraction},
                         {"parameters", row.params},
                         {"forward_gflop_per_image", static_cast<double>(row.flops) * 1e-9},
                         {"flop_ratio", flop_ratio},
                         {"ms_per_step_median", wall * 1e3},
                         {"cpu_ms_per_step", cpu * 1e3},
                         {"speedup_wall", speedup_wall},
                         {"speedup_cpu", speedup_cpu},
                         {"speedup_cpu_over_flop_ratio", speedup_cpu / flop_ratio}});
    s << std::fixed << std::setprecision(2) << "  " << std::setw(4) << row.fraction << "  "
      << std::setw(9) << row.params << "  " << std::setprecision(4) << std::setw(9)
      << static_cast<double>(row.flops) * 1e-9 << "  " << std::setprecision(2) << std::setw(10)
      << flop_ratio << "  " << std::setprecision(1) << std::setw(7) << wall * 1e3 << "  "
      << std::setw(11) << cpu * 1e3 << "  " << std::setprecision(2) << std::setw(8) << speedup_wall
      << ", " << std::setw(5) << speedup_cpu << "  " << std::setw(16) << speedup_cpu / flop_ratio
      << "\n";
  }
  if (o.json)
    out << j.dump(2) << "\n";
  else
    out << s.str();
}

// The backend the options ask for. On CUDA the precision is set explicitly, so that the
// environment (SPARSETRAIN_CUDA_TF32) cannot change what --precision says.
std::unique_ptr<Backend> make_bench_backend(const BenchOptions& o) {
  const bool cuda = o.device == "cuda" || (o.device == "auto" && cuda_device_available());
  if (!cuda) {
    if (o.precision == "tf32")
      throw std::runtime_error(
          "bench: --precision tf32 needs a CUDA device, and none was found (TF32 is a CUDA "
          "tensor-core mode)");
    return make_backend("cpu");
  }
#ifdef SPARSETRAIN_WITH_CUDA
  if (cuda_device_available()) {
    flush_denormals_to_zero();  // the host threads run the loader
    CudaOptions options;
    options.tf32 = o.precision == "tf32";
    return make_cuda_backend(options);
  }
#endif
  return make_backend("cuda");  // throws: no device, or no CUDA backend in this build
}

// Upper bounds checked before anything is allocated: a mistyped flag must give a message, not
// an allocation of hundreds of gigabytes.
constexpr double kMaxBatchBytes = 4.0 * (1ull << 30);
constexpr double kMaxDataBytes = 16.0 * (1ull << 30);

}  // namespace

std::vector<std::string> bench_option_errors(const BenchOptions& o) {
  std::vector<std::string> errors;
  auto require = [&errors](bool ok, const std::string& what) {
    if (!ok) errors.push_back(what);
  };
  const std::vector<std::string> presets = preset_names();
  std::string known;
  for (const std::string& p : presets) known += (known.empty() ? "" : ", ") + p;
  require(std::find(presets.begin(), presets.end(), o.preset) != presets.end(),
          "--preset '" + o.preset + "' is not one of " + known);
  require(o.width > 0, "--width must be positive, got " + std::to_string(o.width));
  require(o.batch >= 1 && o.batch <= (1 << 20),
          "--batch must lie in [1, 1048576], got " + std::to_string(o.batch));
  require(o.channels >= 1 && o.channels <= 4096,
          "--channels must lie in [1, 4096], got " + std::to_string(o.channels));
  require(o.size >= 8 && o.size <= 4096,
          "--size must lie in [8, 4096] (at least 8: three 2x2 poolings), got " +
              std::to_string(o.size));
  require(o.classes >= 2 && o.classes <= (1 << 20),
          "--classes must lie in [2, 1048576], got " + std::to_string(o.classes));
  require(o.threads >= 0,
          "--threads must be 0 (all cores) or more, got " + std::to_string(o.threads));
  require(o.warmup >= 0 && o.warmup <= 1000000,
          "--warmup must lie in [0, 1000000], got " + std::to_string(o.warmup));
  require(o.steps >= 1 && o.steps <= 1000000,
          "--steps must lie in [1, 1000000], got " + std::to_string(o.steps));
  require(o.epoch >= 0,
          "--epoch must be 0 (off) or a number of images, got " + std::to_string(o.epoch));
  require(o.epoch == 0 || o.epoch >= o.batch, "--epoch " + std::to_string(o.epoch) +
                                                  " is smaller than one batch of " +
                                                  std::to_string(o.batch));
  require(o.device == "cpu" || o.device == "cuda" || o.device == "auto",
          "--device must be cpu, cuda or auto, got '" + o.device + "'");
  require(o.precision == "fp32" || o.precision == "tf32",
          "--precision must be fp32 or tf32, got '" + o.precision + "'");
  require(o.precision != "tf32" || o.device != "cpu",
          "--precision tf32 needs --device cuda (TF32 is a CUDA tensor-core mode)");
  require(o.dead_fraction >= 0 && o.dead_fraction < 1,
          "--dead-fraction must lie in [0, 1), got " + std::to_string(o.dead_fraction));
  for (double f : o.dead_sweep)
    require(f >= 0 && f < 1, "--dead-sweep values must lie in [0, 1), got " + std::to_string(f));
  require(o.rounds >= 1, "--rounds must be at least 1, got " + std::to_string(o.rounds));
  require(o.dead_sweep.empty() || (o.epoch == 0 && !o.profile),
          "--dead-sweep times --steps; it does not combine with --epoch or --profile");
  if (!errors.empty()) return errors;
  // In doubles: the products of valid flags stay far inside their range.
  const double image_bytes = 4.0 * o.channels * static_cast<double>(o.size) * o.size;
  const double images = o.epoch > 0 ? static_cast<double>(o.epoch)
                                    : static_cast<double>(o.batch) * (o.warmup + o.steps);
  const auto gib = [](double bytes) {
    std::ostringstream s;
    s << std::setprecision(3) << bytes / (1ull << 30) << " GiB";
    return s.str();
  };
  require(image_bytes * static_cast<double>(o.batch) <= kMaxBatchBytes,
          "--batch x --channels x --size^2 makes " + gib(image_bytes * o.batch) +
              " per batch, more than the " + gib(kMaxBatchBytes) + " a bench batch may take");
  require(image_bytes * images <= kMaxDataBytes,
          "the synthetic images (--epoch, or --batch x (--warmup + --steps)) would take " +
              gib(image_bytes * images) + ", more than " + gib(kMaxDataBytes));
  return errors;
}

void run_bench(const BenchOptions& o, std::ostream& out) {
  set_cpu_threads(o.threads);
  std::unique_ptr<Backend> backend = make_bench_backend(o);
  if (!o.dead_sweep.empty()) return run_dead_sweep(o, *backend, out);
  std::unique_ptr<ProfilingBackend> profiler;
  if (o.profile) profiler = std::make_unique<ProfilingBackend>(*backend);
  Backend& used = profiler ? static_cast<Backend&>(*profiler) : *backend;

  const int64_t images = o.epoch > 0 ? o.epoch : o.batch * (o.warmup + o.steps);
  const data::Dataset d = make_bench_data(o, images);
  BatchSource source(o, d, used);
  Trainer trainer(o, o.dead_fraction, o.skip_dead, used);

  const RunStats r = o.epoch > 0 ? time_epoch(trainer, source, o.warmup, profiler.get())
                                 : time_steps(trainer, source, o.warmup, o.steps, profiler.get());
  std::optional<GemmResult> gemm;
  if (o.gemm) gemm = gemm_reference();
  const Report rep = make_report(o, trainer, *backend, r, profiler.get(), gemm);
  if (o.json)
    out << rep.json.dump(2) << "\n";
  else
    out << rep.text;
}

}  // namespace st
