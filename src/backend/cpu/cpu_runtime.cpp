#include "backend/cpu/cpu_runtime.h"

#include <omp.h>

#include <algorithm>
#include <atomic>

#include "backend/cpu/cpu_backend.h"

namespace st {
namespace {

std::atomic<int> g_threads{0};  // 0: not set, OpenMP's default applies

}  // namespace

void set_cpu_threads(int threads) {
  if (threads <= 0) threads = omp_get_num_procs();
  g_threads = threads;
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

int cpu_threads() {
  const int t = g_threads.load();
  return t > 0 ? t : omp_get_max_threads();
}

namespace cpu {

int threads() {
  return cpu_threads();
}

int threads_for(int64_t work, int64_t cost) {
  // Below ~64k flops of total work a fork/join costs more than it saves.
  constexpr int64_t kMinWork = 1 << 16;
  if (work < 2 || work * cost < kMinWork) return 1;
  return static_cast<int>(std::min<int64_t>(threads(), work));
}

SingleThreadedBlas::SingleThreadedBlas(bool active) {
  if (!active) return;
  previous_ = openblas_get_num_threads();
  if (previous_ > 1) openblas_set_num_threads(1);
}

SingleThreadedBlas::~SingleThreadedBlas() {
  if (previous_ > 1) openblas_set_num_threads(previous_);
}

}  // namespace cpu
}  // namespace st
