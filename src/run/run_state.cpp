#include "run/run_state.h"

#include "io/validate.h"

#include <algorithm>
#include <climits>
#include <filesystem>
#include <regex>

#include "config/json_reader.h"
#include "config/override.h"
#include "run/run_files.h"

namespace st {

namespace fs = std::filesystem;
using nlohmann::json;

CheckpointState checkpoint_state(const Checkpoint& ck) {
  const std::string source = ck.path() + ": metadata";
  if (!ck.meta().is_object()) throw RunFileError(source, "", "expected a JSON object");
  const JsonReader r(ck.meta(), "", source);
  CheckpointState s;
  s.epoch = static_cast<int>(r.integer("epoch", 1, INT_MAX, std::nullopt));
  s.dropout_calls = static_cast<uint64_t>(r.integer("dropout_calls", 0, INT64_MAX, std::nullopt));
  s.elapsed_s = r.number("elapsed_s", NumberRange::non_negative(), 0.0);
  s.config_fingerprint = r.string("config_fingerprint", std::nullopt);
  if (r.has("skip_dead")) {
    s.skip_dead = r.get("skip_dead");
    if (!s.skip_dead.is_object()) r.fail("skip_dead", "expected an object");
  }
  return s;
}

std::vector<std::string> remove_stale_temp_files(const RunPaths& p) {
  std::vector<std::string> removed;
  for (const std::string& dir : {p.dir, p.stats_dir(), p.checkpoints_dir()}) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      const bool temp = name.find(".tmp-") != std::string::npos ||
                        (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0);
      if (!temp || e.is_directory(ec)) continue;
      if (fs::remove(e.path(), ec)) removed.push_back(e.path().string());
    }
  }
  return removed;
}

void remove_old_run(const RunPaths& p) {
  for (const std::string& f : {p.metrics(), p.summary(), p.config()}) fs::remove(f);
  fs::remove_all(p.stats_dir());
  fs::remove_all(p.checkpoints_dir());
  remove_stale_temp_files(p);
}

void prune_checkpoints(const RunPaths& p, int keep, int newest_epoch) {
  if (keep <= 0) return;
  for (int e = newest_epoch - keep; e >= 1; --e) {
    if (!fs::exists(p.epoch_checkpoint(e))) break;
    fs::remove(p.epoch_checkpoint(e));
  }
}

void write_checkpoint(const RunPaths& p, int epoch, const Model& model, const Optimizer& opt,
                      const json& meta, int keep) {
  const std::string file = p.epoch_checkpoint(epoch);
  save_checkpoint(file, model, &opt, meta);
  const std::string tmp = p.last_checkpoint() + ".tmp";
  fs::remove(tmp);
  fs::create_hard_link(file, tmp);
  fs::rename(tmp, p.last_checkpoint());
  prune_checkpoints(p, keep, epoch);
}

std::vector<std::string> missing_final_files(const RunPaths& paths, const ExperimentConfig& c,
                                             const json* last_record) {
  std::vector<std::string> missing;
  const StatisticsConfig& s = c.statistics;
  // The file is written when the last epoch measured activations; its metrics record says so.
  bool filters_due = s.per_filter_final;
  if (filters_due && last_record && last_record->contains("dead")) {
    const json& dead = last_record->at("dead");
    filters_due = dead.contains("exact_eval") || dead.contains("train_pass");
  } else if (filters_due) {
    filters_due = s.activation.train_pass || s.activation.exact_final;
  }
  std::error_code ec;
  if (filters_due && !fs::is_regular_file(paths.filters_final(), ec))
    missing.push_back(paths.filters_final());
  return missing;
}

namespace {

struct Candidate {
  std::string path;
  int name_epoch = 0;  // from epoch_NNNN; 0 for last.safetensors
};

// last.safetensors first, then the epoch files, newest first. A dangling link is listed too: it
// is a checkpoint that was there.
std::vector<Candidate> checkpoint_candidates(const RunPaths& p) {
  std::vector<Candidate> out;
  std::error_code ec;
  if (fs::is_symlink(p.last_checkpoint(), ec) || fs::exists(p.last_checkpoint(), ec))
    out.push_back({p.last_checkpoint(), 0});
  std::vector<Candidate> epochs;
  const std::regex pattern(R"(epoch_([0-9]{4,9})\.safetensors)");
  if (fs::is_directory(p.checkpoints_dir(), ec)) {
    for (const fs::directory_entry& e : fs::directory_iterator(p.checkpoints_dir(), ec)) {
      std::smatch m;
      const std::string name = e.path().filename().string();
      if (std::regex_match(name, m, pattern) && std::stoi(m[1].str()) > 0)
        epochs.push_back({e.path().string(), std::stoi(m[1].str())});
    }
  }
  std::sort(epochs.begin(), epochs.end(),
            [](const Candidate& a, const Candidate& b) { return a.name_epoch > b.name_epoch; });
  out.insert(out.end(), epochs.begin(), epochs.end());
  return out;
}

// Loads and checks one candidate; the reason it is unusable otherwise.
std::optional<std::string> check_candidate(const Candidate& c, const std::string& fingerprint,
                                           bool force, std::optional<Checkpoint>& ck,
                                           CheckpointState& state) {
  std::error_code ec;
  if (fs::is_symlink(c.path, ec) && !fs::exists(c.path, ec)) return "a dangling link";
  if (!fs::is_regular_file(c.path, ec)) return "not a regular file";
  try {
    ck.emplace(Checkpoint::load(c.path));
    state = as_run_file_error([&] { return checkpoint_state(*ck); });
  } catch (const std::exception& e) {
    ck.reset();
    return e.what();
  }
  if (c.name_epoch > 0 && state.epoch != c.name_epoch) {
    ck.reset();
    return "its metadata says epoch " + std::to_string(state.epoch);
  }
  if (state.config_fingerprint != fingerprint && !force) {
    // Not a damaged file but another run's weights: refuse rather than pick an older one.
    throw RunFileError(c.path, "config_fingerprint",
                       "'" + state.config_fingerprint +
                           "' is not the fingerprint of the run's config.json ('" + fingerprint +
                           "'): the checkpoint was trained with another config (two runs in one "
                           "directory?); continue anyway with --force");
  }
  return std::nullopt;
}

void choose_checkpoint(ResolvedRun& r, const ExperimentConfig& saved, bool force) {
  const RunPaths& p = r.paths;
  for (const std::string& f : remove_stale_temp_files(p))
    r.notes.push_back("removed " + f + ", left by an interrupted write");
  // Refuses a damaged metrics.jsonl before anything is changed.
  const MetricsFile metrics = read_metrics(p.metrics());
  const std::string fingerprint = config_fingerprint(saved);
  const int epochs = r.config.training.epochs;

  std::vector<std::string> rejected;
  for (const Candidate& c : checkpoint_candidates(p)) {
    std::optional<Checkpoint> ck;
    CheckpointState state;
    if (auto why = check_candidate(c, fingerprint, force, ck, state)) {
      // Messages of the checkpoint reader name the file already.
      rejected.push_back(why->rfind(c.path, 0) == 0 ? *why : c.path + ": " + *why);
      continue;
    }
    if (state.epoch >= epochs) {
      const json* last = nullptr;
      for (const json& rec : metrics.records)
        if (rec.at("epoch").get<int64_t>() == state.epoch) last = &rec;
      const std::vector<std::string> missing = missing_final_files(p, r.config, last);
      if (!missing.empty()) {
        rejected.push_back(c.path + ": of the last epoch, but " + missing.front() +
                           " is missing; the last epoch is done again");
        continue;
      }
    }
    for (const std::string& why : rejected) r.notes.push_back("skipped " + why);
    r.checkpoint = std::move(ck);
    r.state = std::move(state);
    if (!metrics.records.empty() &&
        metrics.records.back().at("epoch").get<int64_t>() < r.state.epoch)
      r.notes.push_back(p.metrics() + " ends before epoch " + std::to_string(r.state.epoch) +
                        " of " + r.checkpoint->path() + "; those records are missing");
    return;
  }
  if (!rejected.empty()) {
    std::string list;
    for (const std::string& why : rejected) list += "\n  " + why;
    // Files read back are checked like any input: a damaged one is refused with exit code 2.
    throw InputError(p.checkpoints_dir() + ": no checkpoint to continue the run from:" + list +
                     "\nnothing was changed; start the run again with --config and --force");
  }
  // No checkpoint at all: the run stopped before its first one and starts again from epoch 0.
}

}  // namespace

ResolvedRun resolve_run(const TrainRequest& req) {
  ResolvedRun r;
  ExperimentConfig saved;
  if (!req.resume_dir.empty()) {
    r.resuming = true;
    r.paths.dir = req.resume_dir;
    std::error_code ec;
    if (!fs::is_directory(r.paths.dir, ec) || !fs::exists(r.paths.config(), ec))
      throw RunFileError(r.paths.dir, "", "not a run directory (no config.json)");
    r.lock = RunLock::acquire(r.paths.dir);
    saved = read_run_config(req.resume_dir);
    json raw =
        req.config_path.empty() ? read_run_json(r.paths.config()) : read_json_file(req.config_path);
    apply_overrides(raw, req.overrides);
    r.config = parse_experiment(raw, req.config_path.empty() ? r.paths.config() : req.config_path);
    if (!req.force) check_resume_compatible(saved, r.config);
  } else {
    if (req.config_path.empty()) throw ConfigError("--config", "", "a config file is required");
    r.config = load_experiment(req.config_path, req.overrides);
    r.paths.dir = req.out_dir.empty() ? r.config.output.dir : req.out_dir;
    if (r.config.training.epochs < 1)
      throw ConfigError("training.epochs", "", "must be at least 1");
    std::error_code ec;
    r.created_dir = !fs::exists(r.paths.dir, ec);
    r.lock = RunLock::acquire(r.paths.dir);
    if (fs::exists(r.paths.config()) && !req.force)
      throw ConfigError("--out", "",
                        "'" + r.paths.dir + "' already holds a run; continue it with --resume " +
                            r.paths.dir + ", or overwrite it with --force");
  }
  r.config.output.dir = r.paths.dir;
  if (r.config.training.epochs < 1) throw ConfigError("training.epochs", "", "must be at least 1");
  if (r.resuming) choose_checkpoint(r, saved, req.force);
  return r;
}

}  // namespace st
