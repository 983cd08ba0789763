#include "io/file_write.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace st {

namespace {

std::runtime_error write_error(const std::string& path, const std::string& what, int err) {
  return std::runtime_error(path + ": " + what + ": " + std::strerror(err));
}

void write_all(int fd, const char* p, std::size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw write_error(path, "write failed", errno);
    }
    if (w == 0) throw write_error(path, "write failed", EIO);
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view bytes) {
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw write_error(path, "cannot create a temporary file next to it", errno);
  try {
    write_all(fd, bytes.data(), bytes.size(), path);
    if (::fchmod(fd, 0644) != 0) throw write_error(path, "cannot set permissions", errno);
    if (::fsync(fd) != 0) throw write_error(path, "cannot flush to disk", errno);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw write_error(path, "close failed", err);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw write_error(path, "cannot rename the temporary file into place", err);
  }
  // Make the rename itself durable.
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace st
