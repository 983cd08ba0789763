// Whole-file reads for the dataset readers, with transparent gzip.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace st::data {

// True when the file starts with the gzip magic bytes 1f 8b.
bool is_gzip_file(const std::filesystem::path& path);

// The file's bytes, decompressed when it is gzip. Throws std::runtime_error naming the file
// when it cannot be opened or the gzip stream is corrupt or truncated.
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path);

// The file's lines without trailing '\r'/'\n'; empty lines are dropped.
std::vector<std::string> read_text_lines(const std::filesystem::path& path);

}  // namespace st::data
