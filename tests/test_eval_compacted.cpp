// `sparsetrain eval` on the compacted network: a tiny run trained here through the binary
// (Adam + strong L2, so that filters die) is evaluated compacted (the default) and full (--full).
// The two must give the same loss and accuracy, the full one must match the trainer's own test
// evaluation, and the parameter count must be the closed form of a network without the filters the
// trainer's statistics file calls dead. Also --checkpoint inside and outside the run, the exact
// pass when the statistics are missing, --model on an exported file, and bad flags.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "run_helpers.h"

using namespace st::test;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

// A tiny network on synthetic data, trained with Adam and strong L2 so that filters die
// (conv2 loses about a quarter of its filters): conv1 16 -> conv2 32 -> pool -> conv3 32 ->
// gap -> fc 4, no conv biases.
nlohmann::json tiny_config() {
  const auto conv = [](const char* name, int out) {
    return nlohmann::json{
        {"kind", "conv"}, {"name", name}, {"out", out}, {"kernel", 3}, {"pad", 1}};
  };
  const auto bn = [](const char* name) { return nlohmann::json{{"kind", "bn"}, {"name", name}}; };
  const nlohmann::json relu = {{"kind", "relu"}};
  return {{"version", 1},
          {"data",
           {{"kind", "synthetic"},
            {"synthetic",
             {{"train_size", 512},
              {"test_size", 128},
              {"channels", 3},
              {"height", 12},
              {"width", 12},
              {"classes", 4},
              {"noise", 0.3},
              {"seed", 3}}}}},
          {"model",
           {{"layers",
             {conv("conv1", 16),
              bn("bn1"),
              relu,
              conv("conv2", 32),
              bn("bn2"),
              relu,
              {{"kind", "maxpool"}, {"kernel", 2}},
              conv("conv3", 32),
              bn("bn3"),
              relu,
              {{"kind", "gap"}},
              {{"kind", "linear"}, {"name", "fc"}, {"out", "classes"}, {"bias", true}}}}}},
          {"optimizer", {{"name", "adam"}, {"lr", 1e-2}}},
          {"regularization", {{"kind", "l2"}, {"lambda", 1e-2}}},
          {"training", {{"batch_size", 16}, {"epochs", 10}, {"seed", 5}, {"threads", 1}}},
          {"statistics", {{"activation", {{"exact_every", 0}, {"exact_final", true}}}}},
          {"output", {{"progress", "lines"}}}};
}

// Parameters of the tiny network with k1, k2, k3 filters: each conv 3x3 x inputs x filters,
// each BN 2 per filter, fc k3 x 4 + 4.
int64_t tiny_params(int64_t k1, int64_t k2, int64_t k3) {
  return 27 * k1 + 2 * k1 + 9 * k1 * k2 + 2 * k2 + 9 * k2 * k3 + 2 * k3 + 4 * k3 + 4;
}
const int64_t kFullParams = tiny_params(16, 32, 32);

// The tiny run, trained once and shared by the tests.
struct TinyRun {
  ScratchDir dir{"eval-compacted"};
  std::string run;
  TinyRun() : run(dir / "run") {
    const std::string config = dir / "config.json";
    std::ofstream(config) << tiny_config().dump(2);
    const ProcessResult r =
        run_sparsetrain({"--config", config, "--out", run, "--quiet"}, dir / "train.log");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }
};

TinyRun& tiny_run() {
  static TinyRun r;
  return r;
}

nlohmann::json eval_json_of(const std::vector<std::string>& args, const std::string& log,
                            std::string* output = nullptr) {
  std::vector<std::string> a = {"eval", "--json", "--device", "cpu"};
  a.insert(a.end(), args.begin(), args.end());
  const ProcessResult r = run_sparsetrain(a, log);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  if (output) *output = r.output;
  // stderr (progress) comes first in the log; the JSON object is the rest.
  const std::size_t brace = r.output.find("{\n");
  REQUIRE(brace != std::string::npos);
  return nlohmann::json::parse(r.output.substr(brace));
}

// Filters of each conv-BN-ReLU block that stay by the trainer's own dead counts: the dead
// ones go, except that a layer whose filters are all dead keeps one (docs/export.md).
std::vector<int64_t> kept_by_stats_file(const nlohmann::json& stats) {
  std::vector<int64_t> kept;
  for (const auto& l : stats.at("layers")) {
    int64_t dead = 0;
    for (const auto& f : l.at("filters")) dead += f.at("dead_activation").get<bool>();
    const int64_t channels = l.at("channels").get<int64_t>();
    kept.push_back(channels - std::min(dead, channels - 1));
  }
  return kept;
}

void check_same_result(const nlohmann::json& compacted, const nlohmann::json& full) {
  CHECK(compacted.at("images") == full.at("images"));
  CHECK(compacted.at("correct") == full.at("correct"));
  const double lc = compacted.at("loss").get<double>(), lf = full.at("loss").get<double>();
  CHECK(std::fabs(lc - lf) <= 1e-5 * std::max(1.0, std::fabs(lf)));
}

}  // namespace

TEST_CASE("eval: the compacted network gives the full network's loss and accuracy", "[eval][cli]") {
  TinyRun& t = tiny_run();
  const nlohmann::json stats = read_json(t.run + "/stats/filters_final.json");
  REQUIRE(stats.at("source") == "exact_eval");
  const std::vector<int64_t> kept = kept_by_stats_file(stats);
  REQUIRE(kept.size() == 3);
  INFO("filters kept by the stats file: conv1 " << kept[0] << " of 16, conv2 " << kept[1]
                                                << " of 32, conv3 " << kept[2] << " of 32");
  REQUIRE(kept[0] + kept[1] + kept[2] < 16 + 32 + 32);  // the run has dead filters
  const int64_t compacted_params = tiny_params(kept[0], kept[1], kept[2]);

  std::string out;
  const nlohmann::json c = eval_json_of({"--run", t.run}, t.dir / "eval.log", &out);
  const nlohmann::json f = eval_json_of({"--run", t.run, "--full"}, t.dir / "eval_full.log");

  // The full network is the trainer's: its last test evaluation, an independent loop.
  const nlohmann::json last = read_jsonl(t.run + "/metrics.jsonl").back();
  CHECK(f.at("accuracy").get<double>() == Approx(last.at("test_acc").get<double>()).margin(1e-12));
  CHECK(f.at("loss").get<double>() == Approx(last.at("test_loss").get<double>()).epsilon(1e-6));

  check_same_result(c, f);

  const nlohmann::json& nc = c.at("network");
  const nlohmann::json& nf = f.at("network");
  CHECK(nc.at("compacted") == true);
  CHECK(nc.at("compacted_by") == "eval");
  CHECK(nf.at("compacted") == false);
  CHECK(nf.at("params") == kFullParams);
  CHECK(nf.at("params_full") == kFullParams);
  CHECK(nf.at("filters_removed") == 0);
  CHECK(nc.at("params") == compacted_params);
  CHECK(nc.at("params_full") == kFullParams);
  CHECK(nc.at("params").get<int64_t>() < nc.at("params_full").get<int64_t>());
  CHECK(nc.at("flops_per_image").get<int64_t>() < nc.at("flops_per_image_full").get<int64_t>());
  CHECK(nc.at("flops_per_image_full") == nf.at("flops_per_image"));
  CHECK(nc.at("filters_removed") == 16 + 32 + 32 - kept[0] - kept[1] - kept[2]);
  // The run's exact statistics were used, nothing was measured.
  CHECK(nc.at("activation_statistics").at("from_stats_file").size() == 3);
  CHECK(nc.at("activation_statistics").at("measured_exact_eval").empty());
  CHECK_THAT(out, !Contains("measuring activations"));

  // The text output names the network evaluated.
  const ProcessResult text = run_sparsetrain({"eval", "--run", t.run}, t.dir / "text.log");
  REQUIRE(text.exit_code == 0);
  CHECK_THAT(text.output, Contains("network: compacted") &&
                              Contains(std::to_string(compacted_params) + " parameters (full " +
                                       std::to_string(kFullParams) + ")"));
  const ProcessResult text_full =
      run_sparsetrain({"eval", "--run", t.run, "--full"}, t.dir / "text_full.log");
  REQUIRE(text_full.exit_code == 0);
  CHECK_THAT(text_full.output, Contains("network: full"));
}

TEST_CASE("eval: --dump-outputs writes the evaluated network's logits", "[eval][cli]") {
  TinyRun& t = tiny_run();
  const std::string dc = t.dir / "dump_compacted.safetensors";
  const std::string df = t.dir / "dump_full.safetensors";
  for (const auto& [file, extra] : {std::pair{dc, std::vector<std::string>{}},
                                    std::pair{df, std::vector<std::string>{"--full"}}}) {
    std::vector<std::string> args = {"eval", "--run", t.run, "--dump-outputs", file};
    args.insert(args.end(), extra.begin(), extra.end());
    const ProcessResult r = run_sparsetrain(args, t.dir / "dump.log");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }
  const auto rc = st::SafetensorsReader::load(dc);
  const auto rf = st::SafetensorsReader::load(df);
  const std::vector<double> lc = rc.get_f64("logits").to_vector_f64();
  const std::vector<double> lf = rf.get_f64("logits").to_vector_f64();
  REQUIRE(lc.size() == lf.size());
  REQUIRE(lc.size() == 64 * 4);  // --dump-count 64 (default) of 128 test images, 4 classes
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < lc.size(); ++i) {
    diff = std::max(diff, std::fabs(lc[i] - lf[i]));
    scale = std::max(scale, std::fabs(lf[i]));
  }
  CHECK(scale > 0);
  CHECK(diff <= 1e-5 * scale);
  CHECK(rc.get_f64("images").to_vector_f64() == rf.get_f64("images").to_vector_f64());
}

TEST_CASE("eval: checkpoints, and the exact pass when the run has no statistics", "[eval][cli]") {
  TinyRun& t = tiny_run();
  const nlohmann::json ref = eval_json_of({"--run", t.run}, t.dir / "ref.log");
  const nlohmann::json full = eval_json_of({"--run", t.run, "--full"}, t.dir / "ref_full.log");
  const int64_t params = ref.at("network").at("params").get<int64_t>();

  SECTION("a run's checkpoint uses the run's statistics") {
    std::string out;
    const nlohmann::json c = eval_json_of({"--checkpoint", t.run + "/checkpoints/last.safetensors"},
                                          t.dir / "ck.log", &out);
    CHECK(c.at("network").at("compacted") == true);
    CHECK(c.at("network").at("params") == params);
    CHECK(c.at("network").at("activation_statistics").at("from_stats_file").size() == 3);
    CHECK_THAT(out, !Contains("measuring activations"));
    check_same_result(c, full);
  }
  SECTION("a checkpoint outside a run is measured by an exact pass") {
    const std::string copy = t.dir / "elsewhere.safetensors";
    fs::copy_file(t.run + "/checkpoints/last.safetensors", copy,
                  fs::copy_options::overwrite_existing);
    std::string out;
    const nlohmann::json c = eval_json_of({"--checkpoint", copy}, t.dir / "ck2.log", &out);
    CHECK_THAT(out, Contains("measuring activations") && Contains("512 training images"));
    CHECK(c.at("network").at("activation_statistics").at("measured_exact_eval").size() == 3);
    // The exact pass finds what the trainer's pass found.
    CHECK(c.at("network").at("params") == params);
    check_same_result(c, full);
  }
  SECTION("a run without its statistics file is measured by an exact pass") {
    const std::string copy = t.dir / "run_without_stats";
    fs::remove_all(copy);
    fs::copy(t.run, copy, fs::copy_options::recursive);
    fs::remove(copy + "/stats/filters_final.json");
    std::string out;
    const nlohmann::json c = eval_json_of({"--run", copy}, t.dir / "nostats.log", &out);
    CHECK_THAT(out, Contains("measuring activations"));
    CHECK(c.at("network").at("params") == params);
    check_same_result(c, full);
  }
  SECTION("train-pass statistics are not used") {
    const std::string copy = t.dir / "run_train_pass";
    fs::remove_all(copy);
    fs::copy(t.run, copy, fs::copy_options::recursive);
    nlohmann::json stats = read_json(copy + "/stats/filters_final.json");
    stats["source"] = "train_pass";
    // Were these maxima used, every filter would look dead.
    for (auto& l : stats["layers"])
      for (auto& f : l["filters"]) f["max_activation"] = 0.0;
    std::ofstream(copy + "/stats/filters_final.json") << stats.dump();
    std::string out;
    const nlohmann::json c = eval_json_of({"--run", copy}, t.dir / "trainpass.log", &out);
    CHECK_THAT(out, Contains("'train_pass' statistics"));
    CHECK(c.at("network").at("params") == params);
    check_same_result(c, full);
  }
}

TEST_CASE("eval: an exported model is evaluated as it is", "[eval][cli]") {
  TinyRun& t = tiny_run();
  const ProcessResult e = run_sparsetrain(
      {"export", "--run", t.run, "--out", t.dir / "exported/net", "--bench-batch", "4"},
      t.dir / "export.log");
  INFO(e.output);
  REQUIRE(e.exit_code == 0);
  const nlohmann::json report = read_json(t.dir / "exported/export_report.json");
  const nlohmann::json full = eval_json_of({"--run", t.run, "--full"}, t.dir / "full.log");

  std::string out;
  const nlohmann::json m =
      eval_json_of({"--model", t.dir / "exported/net.safetensors"}, t.dir / "model.log", &out);
  CHECK_THAT(out, !Contains("measuring activations"));
  const nlohmann::json& n = m.at("network");
  CHECK(n.at("compacted") == true);
  CHECK(n.at("compacted_by") == "export");
  CHECK(n.at("params") == report.at("parameters").at("after"));
  CHECK(n.at("params_full") == report.at("parameters").at("before"));
  CHECK(n.at("params_full") == kFullParams);
  CHECK(n.at("flops_per_image_full") == full.at("network").at("flops_per_image"));
  int64_t removed = 0;
  for (const auto& l : report.at("layers"))
    if (l.at("kind") == "conv")
      removed += l.at("out_before").get<int64_t>() - l.at("out_after").get<int64_t>();
  CHECK(removed > 0);
  CHECK(n.at("filters_removed") == removed);
  check_same_result(m, full);
}

TEST_CASE("eval: bad flags exit with code 2 and name the flag", "[eval][cli]") {
  ScratchDir dir("eval-flags");
  const auto fails_naming = [&](const std::vector<std::string>& args, const std::string& flag) {
    const ProcessResult r = run_sparsetrain(args, dir / "log");
    INFO(r.output);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.output, Contains(flag));
  };
  // None of these needs a real file: the flags are checked first.
  fails_naming({"eval", "--model", dir / "m.safetensors", "--full"}, "--full");
  fails_naming({"eval", "--run", dir / "run", "--batch-size", "0"}, "--batch-size");
  fails_naming({"eval", "--run", dir / "run", "--dump-count", "0"}, "--dump-count");
  fails_naming({"eval", "--run", dir / "run", "--model", dir / "m.safetensors"}, "--run");
  fails_naming({"eval", "--run", dir / "run", "--fulll"}, "--fulll");
  fails_naming({"eval", "--run", dir / "run", "--device", "gpu"}, "--device");
}
