// Checked, atomic file output: every write, fsync, close and rename is checked, and a failure
// (full disk, missing or read-only folder) leaves nothing under the final name.
#pragma once

#include <string>
#include <string_view>

namespace st {

// Writes `bytes` to a temporary file next to `path`, fsyncs it, renames it over `path` and
// fsyncs the folder. Throws std::runtime_error naming `path` and the system's reason (the
// CLI's exit code 1); the temporary file is removed on failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace st
