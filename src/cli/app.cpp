#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <iostream>

namespace st {

int run_cli(int argc, char** argv) {
  CLI::App app{"sparsetrain: train CNNs and study their implicit filter sparsity"};
  app.set_version_flag("--version", "sparsetrain 0.1.0");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  std::cout << app.help();
  return 0;
}

}  // namespace st
