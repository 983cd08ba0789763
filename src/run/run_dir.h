// The files of a run directory:
//   config.json              the resolved config
//   metrics.jsonl            one JSON object per finished epoch
//   summary.json             the final figures
//   stats/filters_final.json per-filter statistics after the last epoch
//   checkpoints/last.safetensors and checkpoints/epoch_NNNN.safetensors
//   export/                  what `sparsetrain export --run` writes by default
//   run.lock                 held (flock) by the process that trains in the directory
// Every file name of a run lives here; the typed readers and writers are in run/run_files.h.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "config/config_error.h"

namespace st {

struct RunPaths {
  std::string dir;
  std::string config() const { return dir + "/config.json"; }
  std::string metrics() const { return dir + "/metrics.jsonl"; }
  std::string summary() const { return dir + "/summary.json"; }
  std::string stats_dir() const { return dir + "/stats"; }
  std::string filters_final() const { return dir + "/stats/filters_final.json"; }
  std::string checkpoints_dir() const { return dir + "/checkpoints"; }
  std::string last_checkpoint() const { return dir + "/checkpoints/last.safetensors"; }
  std::string epoch_checkpoint(int epoch) const;
  std::string export_dir() const { return dir + "/export"; }
  std::string export_report() const { return dir + "/export/export_report.json"; }
  std::string lock_file() const { return dir + "/run.lock"; }
};

// A run file that is missing where it must exist, or holds what its reader refuses. It is the
// user's file, so the CLI exits with code 2; what() names the file (and the line or key).
class RunFileError : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

// Runs `f`, turning the ConfigError of a JSON reader (config/json_reader.h) into a RunFileError
// with the same message.
template <class F>
auto as_run_file_error(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const RunFileError&) {
    throw;
  } catch (const ConfigError& e) {
    throw RunFileError(e.what());
  }
}

// Writes `text` to `path` atomically: a temporary file beside it, fsync, rename.
void write_file_atomic(const std::string& path, const std::string& text);
void write_json_atomic(const std::string& path, const nlohmann::json& j);

// Appends one line and fsyncs, so a killed run leaves whole lines only.
void append_jsonl(const std::string& path, const nlohmann::json& j);

// Reads a whole JSON file; a missing, unreadable or malformed file is a RunFileError naming it.
nlohmann::json read_run_json(const std::string& path);
// parse_json_strict (io/json_text.h) for run files: RunFileError naming `where` and the path.
nlohmann::json parse_run_json(std::string_view text, const std::string& where);

}  // namespace st
