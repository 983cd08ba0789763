// The files of a run directory:
//   config.json              the resolved config
//   metrics.jsonl            one JSON object per finished epoch
//   summary.json             the final figures
//   stats/filters_final.json per-filter statistics after the last epoch
//   checkpoints/last.safetensors and checkpoints/epoch_NNNN.safetensors
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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
};

// Writes `text` to `path` atomically: a temporary file beside it, fsync, rename.
void write_file_atomic(const std::string& path, const std::string& text);
void write_json_atomic(const std::string& path, const nlohmann::json& j);

// Appends one line and fsyncs, so a killed run leaves whole lines only.
void append_jsonl(const std::string& path, const nlohmann::json& j);

// The records of metrics.jsonl with "epoch" <= max_epoch, in order. A torn last
// line (from a run killed mid-write) is dropped. The file is rewritten to hold
// exactly these records.
std::vector<nlohmann::json> truncate_metrics(const std::string& path, int max_epoch);

}  // namespace st
