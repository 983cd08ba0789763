// Subcommands register themselves on the CLI11 app. When one is chosen, its
// callback stores in `run` the function that does the work, so that parsing
// finishes before anything runs and run_cli maps exceptions to exit codes:
// UsageError and ConfigError -> 2, any other exception -> 1.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <stdexcept>

namespace st {

using CommandRun = std::function<int()>;

// Bad usage found after parsing (conflicting flags, missing inputs): exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void add_train_command(CLI::App& app, CommandRun& run);
void add_eval_command(CLI::App& app, CommandRun& run);
void add_report_command(CLI::App& app, CommandRun& run);
void add_bench_command(CLI::App& app, CommandRun& run);
void add_export_command(CLI::App& app, CommandRun& run);

}  // namespace st
