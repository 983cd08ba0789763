// Entry point; the command-line interface lives in cli/app.h.
#include "cli/app.h"

int main(int argc, char** argv) {
  return st::run_cli(argc, argv);
}
