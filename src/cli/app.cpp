#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "config/config_error.h"
#include "io/validate.h"

namespace st {

int run_cli(int argc, char** argv) {
  CLI::App app{
      "sparsetrain: train CNNs and study their implicit filter sparsity.\n"
      "  sparsetrain --config exp.json [--set key=value ...]   train (the default command)\n"
      "  sparsetrain <command> --help                          help on a command"};
  app.set_version_flag("--version", "sparsetrain 0.1.0");
  app.require_subcommand(0, 1);
  CommandRun run;
  add_train_command(app, run);
  add_eval_command(app, run);
  add_export_command(app, run);
  add_report_command(app, run);
  add_bench_command(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (!run) {
    std::cerr << app.help() << "\nerror: nothing to do: give --config FILE or a command\n";
    return 2;
  }
  try {
    return run();
  } catch (const ConfigError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const InputError& e) {  // a file read back that is malformed or hostile
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace st
