#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "config/config_error.h"
#include "io/checkpoint.h"
#include "run_helpers.h"
#include "run/run_files.h"
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
