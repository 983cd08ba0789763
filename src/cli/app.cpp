#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/cpu/gemm/gemm.h"
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
  std::string cpu_isa;
  app.add_option("--cpu-isa", cpu_isa,
                 "CPU kernel set: avx512f, avx2 or baseline (default: the best this CPU runs; "
                 "also the SPARSETRAIN_ISA variable)");
  for (CLI::App* sub : app.get_subcommands({})) sub->fallthrough();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    // Resolved before any work, so a bad flag or variable is a usage error.
    if (!cpu_isa.empty())
      cpu::select_isa(cpu_isa, "--cpu-isa");
    else
      cpu::active_isa();
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
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
  } catch (const DeviceError& e) {  // --device names a device this machine or build lacks
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const nlohmann::json::exception& e) {
    // A reader let a malformed document through; say so without the library's tag.
    std::string what = e.what();
    const size_t tag_end =
        what.rfind("[json.exception.", 0) == 0 ? what.find("] ") : std::string::npos;
    if (tag_end != std::string::npos) what = what.substr(tag_end + 2);
    std::cerr << "error: unexpected content in a JSON document: " << what << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace st
