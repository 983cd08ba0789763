// What a run directory holds and what a training process may do with it: start a new run
// (locked, an old one removed only with --force), or continue one from its newest valid
// checkpoint without destroying anything the resume cannot rebuild (docs/reliability.md).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "config/experiment.h"
#include "io/checkpoint.h"
#include "run/run_dir.h"
#include "run/run_lock.h"
#include "train/trainer.h"

namespace st {

class Model;
class Optimizer;

// The training state a checkpoint's metadata holds, validated.
struct CheckpointState {
  int epoch = 0;  // epochs finished
  uint64_t dropout_calls = 0;
  double elapsed_s = 0;
  std::string config_fingerprint;
  nlohmann::json skip_dead;  // null unless the run skips dead filters
};
// RunFileError naming the file and key for metadata that is missing or out of range.
CheckpointState checkpoint_state(const Checkpoint& checkpoint);

struct ResolvedRun {
  ExperimentConfig config;
  RunPaths paths;
  bool resuming = false;
  bool created_dir = false;  // a new run whose directory this process created
  RunLock lock;  // held for as long as the run is trained
  // Resuming: the checkpoint to continue from (none: from the start) and its state.
  std::optional<Checkpoint> checkpoint;
  CheckpointState state;
  std::vector<std::string> notes;  // what the resume found and did, for the log
};

// The config and directory of a request, with the directory locked. A resume also picks its
// checkpoint: the newest one that loads, whose metadata is valid and whose config fingerprint is
// that of config.json (--force accepts another fingerprint); when the run's final files are
// missing, the newest one before the last epoch, so that the last epoch is done again. It
// refuses a metrics.jsonl with a bad line and a checkpoint of another config (RunFileError, exit
// code 2), and a run whose checkpoints are all damaged (InputError, exit code 2). Stale
// temporary files of a killed write are removed.
ResolvedRun resolve_run(const TrainRequest& request);

// The files of a run whose last epoch is done and that are missing (summary.json aside, which a
// resume always writes). `last_record`: the metrics of the last epoch, if any.
std::vector<std::string> missing_final_files(const RunPaths& paths, const ExperimentConfig& config,
                                             const nlohmann::json* last_record);

// Removes files that a killed write left behind (*.tmp, *.safetensors.tmp-XXXXXX) in the run
// directory, stats/ and checkpoints/. Only for the lock holder. Returns their paths.
std::vector<std::string> remove_stale_temp_files(const RunPaths& paths);

// Removes the files of an earlier run (a new run with --force). The lock file stays.
void remove_old_run(const RunPaths& paths);

// Keeps the newest `keep` epoch checkpoints (0 keeps all).
void prune_checkpoints(const RunPaths& paths, int keep, int newest_epoch);

// The epoch file is written atomically, then linked into place as last.safetensors (a rename,
// so a reader never sees a half-written "last"); then old ones are pruned.
void write_checkpoint(const RunPaths& paths, int epoch, const Model& model, const Optimizer& opt,
                      const nlohmann::json& meta, int keep);

}  // namespace st
