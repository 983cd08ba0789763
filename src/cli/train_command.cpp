#include <charconv>
#include <iostream>
#include <limits>
#include <memory>

#include "cli/commands.h"
#include "train/trainer.h"

namespace st {

namespace {

struct TrainFlags {
  std::string config, out, resume, device;
  std::vector<std::string> set;
  int64_t seed = -1;
  int threads = -1;
  bool quiet = false, force = false;
};

// CLI11's own range validators print their bounds in full (a 300-digit double for
// NonNegativeNumber); these say what is expected in words.
CLI::Validator integer_in(int64_t lo, int64_t hi) {
  const std::string range = hi == std::numeric_limits<int64_t>::max()
                                ? ">= " + std::to_string(lo)
                                : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        int64_t v = 0;
        const char* end = text.data() + text.size();
        auto [ptr, ec] = std::from_chars(text.data(), end, v);
        if (ec != std::errc() || ptr != end || v < lo || v > hi) {
          return "expected an integer " + range + ", got \"" + text + "\"";
        }
        return "";
      },
      "INT " + range);
}

const CLI::Validator kNonEmpty(
    [](std::string& text) -> std::string {
      return text.empty() ? "expected a directory path, got an empty string" : "";
    },
    "PATH");

void add_train_flags(CLI::App& app, TrainFlags& f) {
  app.add_option("--config,-c", f.config, "experiment config (JSON); see docs/config.md")
      ->check(CLI::ExistingFile);
  app.add_option("--set,-s", f.set,
                 "override a config key with a JSON value, e.g. --set optimizer.lr=1e-3 "
                 "(repeatable)");
  app.add_option("--out,-o", f.out, "run directory (default: output.dir of the config)")
      ->check(kNonEmpty);
  app.add_option("--device", f.device, "cpu, cuda or auto (overrides training.device)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  app.add_option("--resume", f.resume,
                 "continue the run in this directory from its last checkpoint")
      ->check(CLI::ExistingDirectory);
  app.add_option("--seed", f.seed, "overrides training.seed")
      ->check(integer_in(0, std::numeric_limits<int64_t>::max()));
  app.add_option("--threads", f.threads, "CPU threads, 0 = all cores (overrides training.threads)")
      ->check(integer_in(0, 4096));
  app.add_flag("--force", f.force,
               "resume although the config changed, or overwrite an existing run directory");
  app.add_flag("--quiet,-q", f.quiet, "print nothing but errors");
}

int run_train(const TrainFlags& f) {
  if (f.config.empty() && f.resume.empty())
    throw UsageError("train: give --config FILE, or --resume DIR to continue a run");
  TrainRequest req;
  req.config_path = f.config;
  req.overrides = f.set;
  if (f.seed >= 0) req.overrides.push_back("training.seed=" + std::to_string(f.seed));
  if (f.threads >= 0) req.overrides.push_back("training.threads=" + std::to_string(f.threads));
  if (!f.device.empty()) req.overrides.push_back("training.device=\"" + f.device + "\"");
  req.out_dir = f.out;
  req.resume_dir = f.resume;
  req.force = f.force;
  req.quiet = f.quiet;
  TrainResult r = run_training(req);
  if (!f.quiet) std::cout << "run directory: " << r.run_dir << std::endl;
  return 0;
}

}  // namespace

// Training is the default command: its flags work with or without "train".
void add_train_command(CLI::App& app, CommandRun& run) {
  auto top = std::make_shared<TrainFlags>();
  add_train_flags(app, *top);
  app.final_callback([&app, &run, top] {
    if (!run && app.get_subcommands().empty() && (!top->config.empty() || !top->resume.empty()))
      run = [top] { return run_train(*top); };
  });
  CLI::App* sub = app.add_subcommand("train", "train a model (the default command)");
  auto flags = std::make_shared<TrainFlags>();
  add_train_flags(*sub, *flags);
  sub->callback([&run, flags] { run = [flags] { return run_train(*flags); }; });
}

}  // namespace st
