// The lock of a run directory: one process at a time trains, resumes or overwrites a run. It is
// an flock on DIR/run.lock, so the kernel releases it when the process ends, however it ends; the
// file itself stays (removing it would let two processes lock two different files).
#pragma once

#include <stdexcept>
#include <string>

namespace st {

// The directory is locked by another process. A runtime condition (it ends when that process
// does), so the CLI exits with code 1.
class RunLockedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class RunLock {
 public:
  RunLock() = default;
  // Creates `dir` when it does not exist, then takes the lock without waiting: RunLockedError
  // naming the directory (and the holder's pid) when another process holds it.
  static RunLock acquire(const std::string& dir);
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();
  bool held() const { return fd_ >= 0; }

 private:
  explicit RunLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace st
