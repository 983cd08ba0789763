// The one place where training talks to the terminal: a progress bar with ETA on
// a terminal, plain lines otherwise, nothing but errors with --quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "config/experiment.h"

namespace st {

class Progress {
 public:
  Progress(ProgressMode mode, bool quiet);

  // A per-epoch summary or a notice: stdout, one line.
  void line(const std::string& text);
  // Within an epoch: the bar is redrawn on stderr at most a few times a second.
  void epoch_begin(int epoch, int epochs, int64_t batches);
  void batch_done(int64_t done, double running_loss);
  void epoch_end();

 private:
  bool bar_ = false;
  bool quiet_ = false;
  int epoch_ = 0, epochs_ = 0;
  int64_t batches_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace st
