// sparsetrain eval --run DIR | --checkpoint FILE | --model FILE: the flags of eval/eval_run.h.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "eval/eval_run.h"

namespace st {

namespace {

int run_eval(const EvalRequest& f, bool json) {
  const int given = !f.run.empty() + !f.checkpoint.empty() + !f.model.empty();
  if (given != 1) throw UsageError("eval: give exactly one of --run, --checkpoint or --model");
  if (f.batch_size < 1) throw UsageError("eval: --batch-size must be positive");
  if (f.dump_count < 1) throw UsageError("eval: --dump-count must be positive");
  if (f.full && !f.model.empty())
    throw UsageError(
        "eval: --full applies to --run and --checkpoint; a --model file is evaluated as it is");
  const EvalReport r =
      run_evaluation(f, [](const std::string& msg) { std::cerr << "eval: " << msg << "\n"; });
  if (json)
    std::cout << r.json.dump(2) << "\n";
  else
    std::cout << r.text;
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& app, CommandRun& run) {
  auto flags = std::make_shared<EvalRequest>();
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "eval",
      "evaluate a run, checkpoint or exported model on its test set (eval mode); a run's or "
      "checkpoint's dead filters are removed first (same outputs, less compute) unless --full");
  sub->add_option("--run", flags->run,
                  "run directory (uses checkpoints/last.safetensors and stats/)");
  sub->add_option("--checkpoint", flags->checkpoint, "checkpoint file");
  sub->add_option("--model", flags->model, "model file written by `sparsetrain export`");
  sub->add_option("--device", flags->device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  sub->add_option("--batch-size", flags->batch_size, "evaluation batch size (default 256)");
  sub->add_option("--data-path", flags->data_path, "dataset directory, replacing data.path");
  sub->add_flag("--json", *json, "print the result as JSON");
  sub->add_option("--dump-outputs", flags->dump_outputs,
                  "write the first test images, labels and logits to this safetensors file");
  sub->add_option("--dump-count", flags->dump_count, "images for --dump-outputs (default 64)");
  sub->add_flag("--full", flags->full,
                "evaluate the stored network as it is, without removing its dead filters");
  sub->callback([&run, flags, json] { run = [flags, json] { return run_eval(*flags, *json); }; });
}

}  // namespace st
