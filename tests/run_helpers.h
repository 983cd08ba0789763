// Helpers for tests that train: scratch directories, the test configs, running
// the sparsetrain binary, reading run directories.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "fixtures.h"

namespace st::test {

// A fresh directory under the system temp folder, removed with the object.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("sparsetrain-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline std::string test_config(const std::string& name) {
  return std::string(SPARSETRAIN_FIXTURES_DIR) + "/../configs/" + name;
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs the sparsetrain binary with `args` and waits for it.
inline ProcessResult run_sparsetrain(const std::vector<std::string>& args,
                                     const std::string& log_path) {
  std::string cmd = std::string("'") + SPARSETRAIN_BINARY + "'";
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " > '" + log_path + "' 2>&1";
  int status = std::system(cmd.c_str());
  ProcessResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log_path);
  r.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return r;
}

// Starts the binary in the background; returns its pid.
inline pid_t spawn_sparsetrain(const std::vector<std::string>& args, const std::string& log_path) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::FILE* log = std::freopen(log_path.c_str(), "w", stdout);
    if (log) ::dup2(::fileno(stdout), STDERR_FILENO);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(SPARSETRAIN_BINARY));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(SPARSETRAIN_BINARY, argv.data());
    ::_exit(127);
  }
  return pid;
}

// A metrics record without the fields that measure time.
inline nlohmann::json without_timing(nlohmann::json r) {
  for (const char* k : {"elapsed_s", "epoch_time_s", "train_time_s", "exact_pass_s",
                        "images_per_sec", "loader_wait_fraction"})
    r.erase(k);
  return r;
}

}  // namespace st::test
