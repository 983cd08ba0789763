#pragma once

namespace st {

// Parses the command line, runs the subcommand and returns the exit code:
// 0 success, 1 runtime failure, 2 bad usage or bad config.
int run_cli(int argc, char** argv);

}  // namespace st
