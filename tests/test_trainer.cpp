#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <limits>
#include <thread>

#include "config/config_error.h"
#include "io/checkpoint.h"
#include "run/run_dir.h"
#include "run/run_files.h"
#include "run_helpers.h"
#include "train/train_step.h"
#include "train/trainer.h"

using namespace st;
using namespace st::test;

namespace {

TrainRequest tiny_request(const std::string& out, std::vector<std::string> overrides = {}) {
  TrainRequest r;
  r.config_path = test_config("synthetic_tiny.json");
  r.out_dir = out;
  r.overrides = std::move(overrides);
  r.quiet = true;
  return r;
}

// Every parameter, buffer and optimizer state tensor of two checkpoints, bit for bit.
void require_same_checkpoint_tensors(const std::string& a, const std::string& b) {
  SafetensorsReader ra = SafetensorsReader::load(a), rb = SafetensorsReader::load(b);
  REQUIRE(ra.names() == rb.names());
  for (const std::string& name : ra.names()) {
    INFO(name);
    Tensor ta = ra.get(name), tb = rb.get(name);
    REQUIRE(ta.shape() == tb.shape());
    REQUIRE(std::memcmp(ta.raw(), tb.raw(), ta.bytes()) == 0);
  }
}

void require_same_metrics(const std::string& a, const std::string& b) {
  auto ma = read_jsonl(a), mb = read_jsonl(b);
  REQUIRE(ma.size() == mb.size());
  for (std::size_t i = 0; i < ma.size(); ++i)
    REQUIRE(without_timing(ma[i]) == without_timing(mb[i]));
}

}  // namespace

TEST_CASE("training on synthetic data writes a complete run directory", "[train]") {
  ScratchDir dir("train");
  TrainResult r = run_training(tiny_request(dir / "run"));
  auto metrics = read_jsonl(dir / "run/metrics.jsonl");
  REQUIRE(metrics.size() == 3);
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    const auto& m = metrics[i];
    INFO(m.dump());
    REQUIRE(m["epoch"] == i + 1);
    for (const char* key :
         {"lr", "train_loss", "train_acc", "test_loss", "test_acc", "dead", "dead_total",
          "selectivity", "filters_total", "epoch_time_s", "elapsed_s", "images_per_sec"})
      REQUIRE(m.contains(key));
    for (const char* source : {"gamma", "train_pass", "exact_eval"}) {
      REQUIRE(m["dead"][source].contains("conv1"));
      REQUIRE(m["dead"][source].contains("conv2"));
    }
    REQUIRE(m["filters_total"] == 24);
    REQUIRE(m["selectivity"]["exact_eval"]["conv2"].contains("median"));
  }
  // Learnable data: well above the 25 % of chance after three epochs.
  REQUIRE(metrics.back()["test_acc"].get<double>() > 0.6);
  REQUIRE(metrics.back()["train_loss"].get<double>() < metrics.front()["train_loss"].get<double>());

  auto filters = read_json(dir / "run/stats/filters_final.json");
  REQUIRE(filters["source"] == "exact_eval");
  REQUIRE(filters["layers"].size() == 2);
  REQUIRE(filters["layers"][1]["filters"].size() == 16);
  REQUIRE(filters["layers"][1]["bn"] == "bn2");

  auto config = read_json(dir / "run/config.json");
  REQUIRE(config["optimizer"]["lr"] == 1e-2);
  REQUIRE(config["training"]["batch_size"] == 16);
  REQUIRE(read_json(dir / "run/summary.json")["status"] == "completed");

  // The checkpoint alone rebuilds the trained model.
  Checkpoint ck = Checkpoint::load(dir / "run/checkpoints/last.safetensors");
  REQUIRE(ck.meta()["epoch"] == 3);
  auto cpu = make_backend("cpu");
  auto model = ck.make_model(*cpu);
  REQUIRE(model->num_params() == r.summary["params"].get<int64_t>());
}

TEST_CASE("k epochs - resume - N-k epochs equals N epochs - bit for bit", "[train][resume]") {
  ScratchDir dir("resume");
  run_training(tiny_request(dir / "straight"));
  run_training(tiny_request(dir / "split", {"training.epochs=1"}));
  TrainRequest resume;
  resume.resume_dir = dir / "split";
  resume.overrides = {"training.epochs=3"};
  resume.quiet = true;
  run_training(resume);
  require_same_metrics(dir / "straight/metrics.jsonl", dir / "split/metrics.jsonl");
  require_same_checkpoint_tensors(dir / "straight/checkpoints/last.safetensors",
                                  dir / "split/checkpoints/last.safetensors");
}

TEST_CASE("resuming with a changed config is refused unless forced", "[train][resume]") {
  ScratchDir dir("refuse");
  run_training(tiny_request(dir / "run", {"training.epochs=1"}));
  TrainRequest resume;
  resume.resume_dir = dir / "run";
  resume.overrides = {"optimizer.lr=0.5", "training.epochs=2"};
  resume.quiet = true;
  REQUIRE_THROWS_WITH(run_training(resume), Catch::Contains("optimizer.lr"));
  resume.force = true;
  REQUIRE_NOTHROW(run_training(resume));
  REQUIRE(read_jsonl(dir / "run/metrics.jsonl").size() == 2);
}

TEST_CASE("a run killed with SIGKILL mid-epoch resumes to the same result", "[train][resume]") {
  ScratchDir dir("kill");
  // Bigger epochs so that the kill lands inside one.
  const std::vector<std::string> big = {"--set", "data.synthetic.train_size=4096", "--set",
                                        "training.epochs=8", "--quiet"};
  auto args = [&](std::vector<std::string> a) {
    a.insert(a.end(), big.begin(), big.end());
    return a;
  };
  REQUIRE(run_sparsetrain(
              args({"--config", test_config("synthetic_tiny.json"), "--out", dir / "straight"}),
              dir / "straight.log")
              .exit_code == 0);

  pid_t pid = spawn_sparsetrain(
      args({"--config", test_config("synthetic_tiny.json"), "--out", dir / "killed"}),
      dir / "killed.log");
  const std::string metrics = dir / "killed/metrics.jsonl";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (read_jsonl(metrics).size() < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(read_jsonl(metrics).size() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // into epoch 2
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  const auto lines_at_kill = read_jsonl(metrics).size();
  REQUIRE(lines_at_kill < 8);  // it really stopped before the end

  auto resumed = run_sparsetrain({"--resume", dir / "killed", "--quiet"}, dir / "resume.log");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  require_same_metrics(dir / "straight/metrics.jsonl", metrics);
  require_same_checkpoint_tensors(dir / "straight/checkpoints/last.safetensors",
                                  dir / "killed/checkpoints/last.safetensors");
}

TEST_CASE("truncate_metrics drops torn lines and later epochs", "[train]") {
  ScratchDir dir("torn");
  const std::string path = dir / "metrics.jsonl";
  {
    std::ofstream out(path);
    out << "{\"epoch\":1}\n{\"epoch\":2}\n{\"epoch\":3}\n{\"epo";
  }
  REQUIRE(truncate_metrics(path, 2).size() == 2);
  REQUIRE(read_jsonl(path).size() == 2);
  {
    std::ofstream out(path, std::ios::app);
    out << "{\"epoch\":3}\n{\"epo";
  }
  REQUIRE(truncate_metrics(path, 5).size() == 3);
}

namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("optimizer.lr=1e9 stops as diverged with exit 1 and keeps the last good checkpoint",
          "[train][diverge]") {
  ScratchDir dir("diverge");
  const std::string run = dir / "run";
  REQUIRE(run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--out", run, "--set",
                           "training.epochs=1", "--quiet"},
                          dir / "first.log")
              .exit_code == 0);
  const std::string last = file_bytes(run + "/checkpoints/last.safetensors");
  const std::string epoch1 = file_bytes(run + "/checkpoints/epoch_0001.safetensors");
  REQUIRE(!last.empty());

  // Epoch 2 with an absurd learning rate: the loss explodes within a few steps.
  const ProcessResult r = run_sparsetrain({"--resume", run, "--force", "--set", "optimizer.lr=1e9",
                                           "--set", "training.epochs=5", "--quiet"},
                                          dir / "second.log");
  INFO(r.output);
  REQUIRE(r.exit_code == 1);
  REQUIRE(r.output.find("training diverged at epoch 2, batch ") != std::string::npos);

  const nlohmann::json summary = read_json(run + "/summary.json");
  REQUIRE(summary["status"] == "diverged");
  REQUIRE(summary["diverged"]["epoch"] == 2);
  REQUIRE(summary["diverged"]["batch"].get<int>() >= 2);  // the first step was still fine
  REQUIRE(summary["final"]["epoch"] == 1);
  REQUIRE(read_jsonl(run + "/metrics.jsonl").size() == 1);
  REQUIRE(file_bytes(run + "/checkpoints/last.safetensors") == last);
  REQUIRE(file_bytes(run + "/checkpoints/epoch_0001.safetensors") == epoch1);
  REQUIRE_FALSE(std::filesystem::exists(run + "/checkpoints/epoch_0002.safetensors"));
}

TEST_CASE("a fresh run with optimizer.lr=1e9 stops in its first epoch", "[train][diverge]") {
  ScratchDir dir("diverge-fresh");
  REQUIRE_THROWS_AS(run_training(tiny_request(dir / "run", {"optimizer.lr=1e9"})),
                    TrainingDiverged);
  const nlohmann::json summary = read_json(dir / "run/summary.json");
  REQUIRE(summary["status"] == "diverged");
  REQUIRE(summary["diverged"]["epoch"] == 1);
  REQUIRE(summary["final"].is_null());
  REQUIRE_FALSE(std::filesystem::exists(dir / "run/checkpoints/last.safetensors"));
}

TEST_CASE("training.divergence.max_loss is an absolute bound on the batch loss",
          "[train][diverge]") {
  ScratchDir dir("diverge-bound");
  // ln 4 = 1.39 at the start: a bound of 1.0 stops the first batch; the default run trains.
  try {
    run_training(tiny_request(dir / "run", {"training.divergence.max_loss=1.0"}));
    FAIL("no TrainingDiverged");
  } catch (const TrainingDiverged& e) {
    INFO(e.what());
    REQUIRE(std::string(e.what()).find("training.divergence.max_loss") != std::string::npos);
    REQUIRE(e.details()["reason"] == "loss_above_bound");
    REQUIRE(e.details()["batch"] == 1);
  }
  REQUIRE(read_json(dir / "run/summary.json")["diverged"]["reason"] == "loss_above_bound");
}

TEST_CASE("skip_batch: an epoch whose every batch is non-finite stops the run",
          "[train][diverge]") {
  ScratchDir dir("skip-all");
  TrainRequest req = tiny_request(dir / "run", {"training.on_nonfinite=\"skip_batch\""});
  // A NaN weight makes every loss NaN: each batch is skipped, then the epoch counts as diverged.
  req.prepare_model = [](Model& m) {
    Tensor w = m.tensor("fc.weight");
    std::vector<float> v = w.to_vector_f32();
    v[0] = std::numeric_limits<float>::quiet_NaN();
    w.copy_from(Tensor::from_vector(v, w.shape()));
  };
  try {
    run_training(req);
    FAIL("no TrainingDiverged");
  } catch (const TrainingDiverged& e) {
    INFO(e.what());
    REQUIRE(e.details()["reason"] == "all_batches_skipped");
    REQUIRE(e.details()["batch"] == 16);  // 256 images in batches of 16
  }
  // With "stop" the same run stops at its first batch, naming the parameter.
  TrainRequest stop = req;
  stop.out_dir = dir / "stop";
  stop.overrides = {};
  try {
    run_training(stop);
    FAIL("no TrainingDiverged");
  } catch (const TrainingDiverged& e) {
    INFO(e.what());
    REQUIRE(e.details()["parameter"] == "fc.weight");
    REQUIRE(e.details()["batch"] == 1);
  }
}

TEST_CASE("skip_batch trains like stop when nothing goes wrong, and reports skipped batches",
          "[train][diverge]") {
  ScratchDir dir("skip-none");
  run_training(tiny_request(dir / "stop", {"training.epochs=2"}));
  run_training(
      tiny_request(dir / "skip", {"training.epochs=2", "training.on_nonfinite=\"skip_batch\""}));
  auto a = read_jsonl(dir / "stop/metrics.jsonl"), b = read_jsonl(dir / "skip/metrics.jsonl");
  REQUIRE(a.size() == 2);
  REQUIRE(b.size() == 2);
  for (std::size_t i = 0; i < a.size(); ++i) {
    REQUIRE(b[i]["skipped_batches"] == 0);
    b[i].erase("skipped_batches");
    REQUIRE(without_timing(a[i]) == without_timing(b[i]));
  }
  require_same_checkpoint_tensors(dir / "stop/checkpoints/last.safetensors",
                                  dir / "skip/checkpoints/last.safetensors");
}
