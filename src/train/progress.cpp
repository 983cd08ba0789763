#include "train/progress.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace st {

Progress::Progress(ProgressMode mode, bool quiet) : quiet_(quiet) {
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  bar_ = !quiet && (mode == ProgressMode::Bar || (mode == ProgressMode::Auto && tty));
  if (mode == ProgressMode::None) quiet_ = true;
}

void Progress::line(const std::string& text) {
  if (quiet_) return;
  epoch_end();
  std::cout << text << std::endl;
}

void Progress::epoch_begin(int epoch, int epochs, int64_t batches) {
  epoch_ = epoch;
  epochs_ = epochs;
  batches_ = batches;
  start_ = last_draw_ = std::chrono::steady_clock::now();
  drawn_ = false;
}

void Progress::batch_done(int64_t done, double running_loss) {
  if (!bar_) return;
  auto now = std::chrono::steady_clock::now();
  if (done < batches_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double eta =
      done > 0 ? elapsed * static_cast<double>(batches_ - done) / static_cast<double>(done) : 0.0;
  const int width = 30;
  const int filled = batches_ > 0 ? static_cast<int>(width * done / batches_) : width;
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r  epoch %d/%d [%s] %lld/%lld loss %.4f  ETA %4.0fs ", epoch_, epochs_,
               bar.c_str(), static_cast<long long>(done), static_cast<long long>(batches_),
               running_loss, eta);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::epoch_end() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r%*s\r", 90, "");
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace st
