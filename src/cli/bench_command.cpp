// `sparsetrain bench`: the flags. What the benchmark does: bench/bench.h.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "cli/commands.h"

namespace st {

void add_bench_command(CLI::App& app, CommandRun& run) {
  auto opts = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Time the training step of a training run (forward, softmax cross-entropy, backward, "
      "non-finite checks, Adam + L2) of a preset on synthetic data");
  cmd->add_option("--preset", opts->preset, "Model preset")->capture_default_str();
  cmd->add_option("--width", opts->width, "Width multiplier of the convolutions")
      ->capture_default_str();
  cmd->add_option("--batch", opts->batch, "Images per step")->capture_default_str();
  cmd->add_option("--channels", opts->channels, "Input channels")->capture_default_str();
  cmd->add_option("--size", opts->size, "Input height and width")->capture_default_str();
  cmd->add_option("--classes", opts->classes, "Classes")->capture_default_str();
  cmd->add_option("--threads", opts->threads, "CPU threads (0: all cores)")->capture_default_str();
  cmd->add_option("--device", opts->device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  cmd->add_option("--precision", opts->precision,
                  "fp32: exact FP32; tf32: TF32 tensor cores for conv and linear (CUDA only)")
      ->check(CLI::IsMember({"fp32", "tf32"}))
      ->capture_default_str();
  cmd->add_flag("--resident", opts->resident,
                "Upload the batches to the device once and time steady-state steps on them "
                "(no loader, no upload in the step)");
  cmd->add_option("--warmup", opts->warmup, "Untimed steps first")->capture_default_str();
  cmd->add_option("--steps", opts->steps, "Timed steps")->capture_default_str();
  cmd->add_option("--epoch", opts->epoch,
                  "Time one epoch of this many synthetic images instead of --steps");
  cmd->add_option("--lr", opts->lr, "Adam learning rate")->capture_default_str();
  cmd->add_option("--weight-decay", opts->weight_decay, "L2 regularization strength")
      ->capture_default_str();
  cmd->add_option("--dead-fraction", opts->dead_fraction,
                  "Fraction of each BN layer's channels silenced (gamma = beta = 0)")
      ->capture_default_str();
  cmd->add_flag("--skip-dead", opts->skip_dead,
                "Train the network with the --dead-fraction filters removed, as sparsity.skip_dead "
                "does");
  cmd->add_flag(
      "--no-fuse", [opts](int64_t) { opts->fuse = false; },
      "Run each ReLU as its own op, apart from the BatchNorm or conv before it (the fused ops' "
      "baseline)");
  cmd->add_option("--dead-sweep", opts->dead_sweep,
                  "Time these dead fractions (e.g. 0,0.5,0.75), skipping the dead filters, and "
                  "print the speed-up next to the FLOP ratio")
      ->delimiter(',');
  cmd->add_option("--rounds", opts->rounds, "Interleaved rounds of --dead-sweep")
      ->capture_default_str();
  cmd->add_flag("--gemm", opts->gemm,
                "Also time OpenBLAS sgemm at 1024^3 as a reference, and the engine's sgemm "
                "against it at 1024^3 and on the step's shapes");
  cmd->add_flag("--layers", opts->layers,
                "Also time 3x3 convolutions per layer shape (GFLOP/s, wide and thin layers)");
  cmd->add_flag("--profile", opts->profile, "Time every backend op and print a breakdown");
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of text");
  cmd->callback([opts, &run] {
    run = [opts] {
      const std::vector<std::string> errors = bench_option_errors(*opts);
      if (!errors.empty()) throw UsageError("bench: " + errors.front());
      run_bench(*opts, std::cout);
      return 0;
    };
  });
}

}  // namespace st
