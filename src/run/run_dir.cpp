#include "run/run_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "io/json_text.h"

namespace st {

namespace {

void write_all_and_sync(int fd, const std::string& text, const std::string& path) {
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) throw std::runtime_error(path + ": write failed");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) throw std::runtime_error(path + ": fsync failed");
}

}  // namespace

std::string RunPaths::epoch_checkpoint(int epoch) const {
  char name[64];
  std::snprintf(name, sizeof name, "/epoch_%04d.safetensors", epoch);
  return checkpoints_dir() + name;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error(path + ": cannot write (" + tmp + ")");
  try {
    write_all_and_sync(fd, text, tmp);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error(path + ": cannot rename " + tmp + " into place");
  }
}

void write_json_atomic(const std::string& path, const nlohmann::json& j) {
  write_file_atomic(path, j.dump(2) + "\n");
}

void append_jsonl(const std::string& path, const nlohmann::json& j) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) throw std::runtime_error(path + ": cannot open for appending");
  try {
    write_all_and_sync(fd, j.dump() + "\n", path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

nlohmann::json read_run_json(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw RunFileError(path, "",
                       std::filesystem::exists(path, ec) ? "not a regular file" : "does not exist");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RunFileError(path, "", "cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_run_json(text.str(), path);
}

nlohmann::json parse_run_json(std::string_view text, const std::string& where) {
  try {
    return parse_json_strict(text);
  } catch (const JsonTextError& e) {
    throw RunFileError(where, e.path, e.what());
  }
}

}  // namespace st
