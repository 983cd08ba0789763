#include "data/file_bytes.h"

#include <zlib.h>

#include <fstream>
#include <stdexcept>

#include "data/dataset.h"
#include "io/validate.h"

namespace st::data {

namespace {

std::runtime_error file_error(const std::filesystem::path& path, const std::string& what) {
  return std::runtime_error(path.string() + ": " + what);
}

// A missing file or a directory in its place is the user's input (exit code 2), and must be
// refused before its "size" is used to allocate.
void require_regular_file(const std::filesystem::path& path) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) throw InputError(path.string() + ": cannot open (no such file)");
  if (!std::filesystem::is_regular_file(st))
    throw InputError(path.string() + ": not a regular file (a directory?)");
}

std::vector<uint8_t> read_raw(const std::filesystem::path& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error(path, "cannot open file");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  std::vector<uint8_t> bytes(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) {
    throw file_error(path, "read error");
  }
  return bytes;
}

std::vector<uint8_t> read_gzip(const std::filesystem::path& path) {
  gzFile f = gzopen(path.string().c_str(), "rb");
  if (!f) throw file_error(path, "cannot open gzip file");
  gzbuffer(f, 1 << 20);
  std::vector<uint8_t> bytes;
  constexpr unsigned kChunk = 1u << 20;
  for (;;) {
    const std::size_t old = bytes.size();
    bytes.resize(old + kChunk);
    const int got = gzread(f, bytes.data() + old, kChunk);
    if (got < 0) {
      int err = 0;
      const std::string msg = gzerror(f, &err);
      gzclose(f);
      throw InputError(path.string() + ": corrupt gzip stream (" + msg + ")");
    }
    bytes.resize(old + static_cast<std::size_t>(got));
    if (got == 0) break;
    // A gzip bomb must not take the machine's memory.
    if (bytes.size() > max_dataset_bytes()) {
      gzclose(f);
      throw InputError(path.string() + ": decompresses to more than " +
                       std::to_string(max_dataset_bytes()) + " bytes");
    }
  }
  // gzread returns the data it has at a premature end; the error shows up here.
  int err = 0;
  const std::string msg = gzerror(f, &err);
  gzclose(f);
  if (err != Z_OK && err != Z_STREAM_END) {
    throw InputError(path.string() + ": truncated or corrupt gzip stream (" + msg + ")");
  }
  return bytes;
}

}  // namespace

bool is_gzip_file(const std::filesystem::path& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error(path, "cannot open file");
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  return in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path) {
  return is_gzip_file(path) ? read_gzip(path) : read_raw(path);
}

std::vector<std::string> read_text_lines(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw file_error(path, "cannot open file");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

}  // namespace st::data
