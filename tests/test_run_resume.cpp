// A resume continues from the newest valid checkpoint or refuses; it never destroys what is in
// the run directory. And a run directory is trained by one process at a time.
#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "run/run_files.h"
#include "run/run_lock.h"
#include "run_helpers.h"

using namespace st;
using namespace st::test;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ino_t inode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

// A tiny run of `epochs` epochs through the binary, every epoch checkpoint kept.
void train(const ScratchDir& dir, const std::string& run, int epochs,
           std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {
      "--config", test_config("synthetic_tiny.json"),          "--out", dir / run,
      "--set",    "training.epochs=" + std::to_string(epochs), "--set", "output.keep_checkpoints=0",
      "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  const ProcessResult r = run_sparsetrain(args, dir / (run + ".log"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
}

ProcessResult resume(const ScratchDir& dir, const std::string& run, int epochs) {
  return run_sparsetrain(
      {"--resume", dir / run, "--set", "training.epochs=" + std::to_string(epochs)},
      dir / (run + "-resume.log"));
}

// The whole content of a run directory (the lock file aside), for "nothing was changed".
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_symlink())
      out[e.path().string()] = "-> " + fs::read_symlink(e.path()).string();
    else if (e.is_regular_file() && e.path().filename() != "run.lock")
      out[e.path().string()] = slurp(e.path().string());
  }
  return out;
}

std::vector<std::string> lines(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream in(slurp(path));
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("resume: a garbage metrics.jsonl is refused and left as it is", "[run][resume]") {
  ScratchDir dir("resume-garbage");
  train(dir, "run", 2);
  const std::string metrics = dir / "run/metrics.jsonl";
  std::vector<std::string> l = lines(metrics);
  std::ofstream(metrics, std::ios::trunc) << l[0] << "\nnot json at all\n";
  const auto before = snapshot(dir / "run");
  const ProcessResult r = resume(dir, "run", 3);
  INFO(r.output);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.output, Contains(metrics + ": line 2: not valid JSON"));
  REQUIRE(snapshot(dir / "run") == before);
}

TEST_CASE("resume: continues from the newest epoch checkpoint when 'last' is missing or dangling",
          "[run][resume]") {
  ScratchDir dir("resume-last");
  train(dir, "straight", 3);
  for (const bool dangling : {false, true}) {
    const std::string run = dangling ? "dangling" : "missing";
    train(dir, run, 2);
    const RunPaths p{dir / run};
    fs::remove(p.last_checkpoint());
    if (dangling) {
      fs::remove(p.epoch_checkpoint(2));
      fs::create_symlink("nothing-here.safetensors", p.last_checkpoint());
    }
    const int from = dangling ? 1 : 2;
    const std::vector<std::string> metrics_before = lines(p.metrics());
    const ino_t kept = inode(p.epoch_checkpoint(from));
    const ProcessResult r = resume(dir, run, 3);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.output, Contains("resuming after epoch " + std::to_string(from)));
    // Epochs up to the checkpoint were not trained again: their lines (timings included) and
    // the checkpoint file are the ones that were there.
    const std::vector<std::string> after = lines(p.metrics());
    REQUIRE(after.size() == 3);
    for (int e = 0; e < from; ++e) REQUIRE(after[e] == metrics_before[e]);
    REQUIRE(inode(p.epoch_checkpoint(from)) == kept);
    // And the result is the straight run's.
    const auto straight = read_jsonl(dir / "straight/metrics.jsonl");
    const auto resumed = read_jsonl(p.metrics());
    for (std::size_t i = 0; i < 3; ++i)
      REQUIRE(without_timing(resumed[i]) == without_timing(straight[i]));
    REQUIRE(read_json(p.summary())["status"] == "completed");
  }
}

TEST_CASE("resume: a run without a valid checkpoint is refused, nothing changed", "[run][resume]") {
  ScratchDir dir("resume-none");
  train(dir, "run", 2);
  const RunPaths p{dir / "run"};
  for (int e : {1, 2}) fs::remove(p.epoch_checkpoint(e));
  fs::remove(p.last_checkpoint());
  fs::create_symlink("gone.safetensors", p.last_checkpoint());
  auto before = snapshot(p.dir);
  ProcessResult r = resume(dir, "run", 3);
  INFO(r.output);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.output, Contains("no checkpoint to continue the run from") &&
                             Contains(p.last_checkpoint() + ": a dangling link"));
  REQUIRE(snapshot(p.dir) == before);

  // A checkpoint whose metadata lies about its epoch (2^40) is not read as some other epoch.
  train(dir, "lying", 1);
  const RunPaths q{dir / "lying"};
  {
    // The writer refuses such metadata, so the file is put together from its parts.
    const SafetensorsReader in = SafetensorsReader::load(q.epoch_checkpoint(1));
    std::vector<std::pair<std::string, Tensor>> tensors;
    std::set<std::string> int64;
    for (const std::string& n : in.names()) {
      if (in.entry(n).dtype == "I64") int64.insert(n);
      tensors.emplace_back(n, in.entry(n).dtype == "I64" ? in.get_f64(n) : in.get(n));
    }
    nlohmann::json meta = nlohmann::json::parse(in.metadata().at("sparsetrain"));
    meta["epoch"] = int64_t{1} << 40;
    fs::remove(q.last_checkpoint());
    fs::remove(q.epoch_checkpoint(1));
    write_safetensors(q.last_checkpoint(), tensors, {{"sparsetrain", meta.dump()}}, int64);
  }
  before = snapshot(q.dir);
  r = resume(dir, "lying", 3);
  INFO(r.output);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.output, Contains(q.last_checkpoint() + ": metadata 'epoch' is 1099511627776"));
  REQUIRE(snapshot(q.dir) == before);
}

TEST_CASE("resume: a checkpoint of another config is refused unless forced", "[run][resume]") {
  ScratchDir dir("resume-fingerprint");
  train(dir, "a", 1);
  train(dir, "b", 1, {"--set", "training.seed=6"});
  // What two runs in one directory leave: one run's config.json, the other's weights.
  const RunPaths a{dir / "a"}, b{dir / "b"};
  fs::remove(a.epoch_checkpoint(1));
  fs::remove(a.last_checkpoint());
  fs::copy_file(b.epoch_checkpoint(1), a.epoch_checkpoint(1));
  fs::create_hard_link(a.epoch_checkpoint(1), a.last_checkpoint());
  const auto before = snapshot(a.dir);
  ProcessResult r = resume(dir, "a", 2);
  INFO(r.output);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.output, Contains(a.last_checkpoint() + ": config_fingerprint"));
  REQUIRE(snapshot(a.dir) == before);
  r = run_sparsetrain({"--resume", a.dir, "--set", "training.epochs=2", "--force"},
                      dir / "forced.log");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
}

TEST_CASE("resume: a run stopped before its final files were written is finished",
          "[run][resume]") {
  ScratchDir dir("resume-final");
  train(dir, "run", 2);
  const RunPaths p{dir / "run"};
  const nlohmann::json filters = read_json(p.filters_final());
  const std::vector<std::string> metrics = lines(p.metrics());
  // A kill after the final checkpoint, before the statistics and the summary: both missing,
  // and temporary files of interrupted writes lying around.
  fs::remove(p.filters_final());
  fs::remove(p.summary());
  std::ofstream(p.checkpoints_dir() + "/epoch_0002.safetensors.tmp-Ab12Cd") << "partial";
  std::ofstream(p.filters_final() + ".tmp") << "{";
  const ProcessResult r = resume(dir, "run", 2);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  REQUIRE(fs::exists(p.filters_final()));
  nlohmann::json again = read_json(p.filters_final());
  REQUIRE(again == filters);  // the last epoch done again from epoch 1 gives the same statistics
  REQUIRE(read_summary(p.summary())["status"] == "completed");
  const std::vector<std::string> after = lines(p.metrics());
  REQUIRE(after.size() == 2);
  REQUIRE(after[0] == metrics[0]);
  REQUIRE_FALSE(fs::exists(p.checkpoints_dir() + "/epoch_0002.safetensors.tmp-Ab12Cd"));
  REQUIRE_FALSE(fs::exists(p.filters_final() + ".tmp"));
}

TEST_CASE("a run directory is trained by one process at a time", "[run][lock]") {
  ScratchDir dir("lock-cli");
  const std::string run = dir / "run";
  // A long run (stopped below).
  const pid_t pid =
      spawn_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--out", run, "--set",
                         "training.epochs=100000", "--set", "output.checkpoint_every=0", "--quiet"},
                        dir / "first.log");
  const std::string metrics = run + "/metrics.jsonl";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (read_jsonl(metrics).size() < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(read_jsonl(metrics).size() >= 1);
  const nlohmann::json config = read_json(run + "/config.json");

  const std::vector<std::pair<std::string, std::vector<std::string>>> others = {
      {"a second run into the same --out",
       {"--config", test_config("synthetic_tiny.json"), "--out", run, "--set", "training.seed=9"}},
      {"a --force onto the directory being trained",
       {"--config", test_config("synthetic_tiny.json"), "--out", run, "--force"}},
      {"a --resume of the run being trained", {"--resume", run}},
  };
  for (const auto& [what, args] : others) {
    INFO(what);
    const ProcessResult r = run_sparsetrain(args, dir / "second.log");
    INFO(r.output);
    REQUIRE(r.exit_code == 1);
    REQUIRE_THAT(r.output, Contains(run +
                                    ": the run directory is in use by another sparsetrain "
                                    "process (pid " +
                                    std::to_string(pid) + ")"));
  }
  // The first run goes on undisturbed.
  REQUIRE(::kill(pid, 0) == 0);
  REQUIRE(read_json(run + "/config.json") == config);
  REQUIRE_NOTHROW(read_metrics(metrics));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  // The kernel released the lock with the process.
  REQUIRE(RunLock::acquire(run).held());
}
