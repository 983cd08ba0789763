#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include <map>
#include <set>

#include "config/experiment.h"
#include "config/names.h"
#include "config/override.h"
#include "config/schema.h"
#include "config/suggest.h"
#include "train/experiment_data.h"

using namespace st;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The smallest valid config: everything else takes its default.
json minimal() {
  return json::parse(R"({
    "version": 1,
    "data": {"kind": "synthetic"},
    "model": {"preset": "basicnet"},
    "optimizer": {"name": "adam"},
    "training": {"batch_size": 32, "epochs": 2}
  })");
}

ExperimentConfig parse(const json& raw) {
  return parse_experiment(raw, "exp.json", {.check_files = false});
}

json with(json raw, const std::string& flag) {
  apply_override(raw, flag);
  return raw;
}

// The message of the ConfigError that parsing `raw` throws.
std::string parse_error(const json& raw, ParseOptions options = {.check_files = false}) {
  try {
    parse_experiment(raw, "exp.json", options);
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError for " << raw.dump());
  return "";
}

std::string override_error(json raw, const std::string& flag) {
  try {
    apply_override(raw, flag);
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError for override " << flag);
  return "";
}

fs::path configs_dir() {
  return fs::path(SPARSETRAIN_FIXTURES_DIR).parent_path().parent_path() / "configs";
}

fs::path fresh_temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("sparsetrain_test_config_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("config: defaults of a minimal config", "[config]") {
  ExperimentConfig c = parse(minimal());
  CHECK(c.version == 1);
  CHECK(c.data.kind == DataKind::Synthetic);
  CHECK(c.data.path.empty());
  CHECK(c.data.synthetic == SyntheticOptions{});
  CHECK(c.data.train_subset == 0);
  CHECK(c.data.validation_split == 0.0);
  CHECK(c.data.augmentation.random_crop_padding == 0);
  CHECK_FALSE(c.data.augmentation.horizontal_flip);
  CHECK(c.data.augmentation.normalize.mode == NormalizeMode::Computed);
  CHECK(c.data.loader.prefetch);
  CHECK(c.model.preset == "basicnet");
  CHECK(c.model.width == 1.0);
  CHECK(c.model.layers.is_null());
  CHECK(c.optimizer.hyper.rule == UpdateRule::Adam);
  CHECK(c.regularization.kind == RegKind::L2);
  CHECK(c.regularization.lambda == 0.0);
  CHECK(c.regularization.groups.size() == kParamGroupCount);
  CHECK(c.regularization.scale_with_lr_schedule);
  CHECK(c.schedule.kind == ScheduleKind::Constant);
  CHECK(c.schedule.warmup_epochs == 0);
  CHECK(c.training.batch_size == 32);
  CHECK(c.training.epochs == 2);
  CHECK(c.training.seed == 0);
  CHECK(c.training.threads == 0);
  CHECK(c.training.device == DeviceChoice::Auto);
  CHECK_FALSE(c.training.drop_last);
  CHECK(c.training.eval_every == 1);
  CHECK(c.statistics.activation.train_pass);
  CHECK(c.statistics.activation.exact_every == 0);
  CHECK(c.statistics.activation.exact_final);
  // The paper's thresholds.
  CHECK(c.statistics.activation.threshold == 1e-12);
  CHECK(c.statistics.gamma_threshold == 1e-3);
  CHECK(c.statistics.selectivity_threshold == 1e-3);
  CHECK(c.statistics.per_filter_final);
  CHECK(c.output.name == "exp");
  CHECK(c.output.dir == "runs/exp");
  CHECK(c.output.checkpoint_every == 1);
  CHECK(c.output.keep_checkpoints == 2);
  CHECK(c.output.progress == ProgressMode::Auto);
  CHECK(c.sparsity == SparsityConfig{false, 3, 1, 0});
}

TEST_CASE("config: data defaults per kind", "[config]") {
  ExperimentConfig c = parse(with(minimal(), "data={\"kind\": \"fashion-mnist\"}"));
  CHECK(c.data.path == "/usr/share/datasets/fashion-mnist");
  CHECK(c.data.channels() == 1);
  CHECK(c.data.known_classes() == 10);
  c = parse(with(minimal(), "data={\"kind\": \"cifar10\"}"));
  CHECK(c.data.path == "data/cifar-10-batches-bin");
  CHECK(c.data.channels() == 3);
  c = parse(with(minimal(), "data={\"kind\": \"cifar100\", \"label\": \"coarse\"}"));
  CHECK(c.data.known_classes() == 20);
  c = parse(with(minimal(), "data={\"kind\": \"image-folder\", \"path\": \"imgs\"}"));
  CHECK(c.data.image_folder == ImageFolderOptions{3, 32, 32, true});
  CHECK(c.data.known_classes() == 0);
  CHECK_THAT(parse_error(with(minimal(), "data={\"kind\": \"image-folder\"}")),
             Catch::Equals("exp.json: data.path: missing required key"));
}

TEST_CASE("config: optimizer defaults are PyTorch's", "[config]") {
  // Values from the signatures of torch.optim.* (PyTorch 1.13).
  struct Expect {
    const char* name;
    double lr, eps;
  };
  for (Expect e : {Expect{"adam", 1e-3, 1e-8}, Expect{"adamw", 1e-3, 1e-8},
                   Expect{"adagrad", 1e-2, 1e-10}, Expect{"rmsprop", 1e-2, 1e-8},
                   Expect{"adadelta", 1.0, 1e-6}, Expect{"adamax", 2e-3, 1e-8}}) {
    INFO(e.name);
    ExperimentConfig c = parse(with(minimal(), std::string("optimizer.name=") + e.name));
    CHECK(c.optimizer.hyper.lr == e.lr);
    CHECK(c.optimizer.hyper.eps == e.eps);
    CHECK(c.optimizer.hyper.beta1 == 0.9);
    CHECK(c.optimizer.hyper.beta2 == 0.999);
    CHECK(c.optimizer.hyper.alpha == 0.99);
    CHECK(c.optimizer.hyper.rho == 0.9);
    CHECK(c.optimizer.hyper.momentum == 0.0);
    CHECK(c.optimizer.hyper.lr_decay == 0.0);
    CHECK(c.optimizer.hyper.initial_accumulator == 0.0);
    CHECK_FALSE(c.optimizer.hyper.amsgrad);
    CHECK_FALSE(c.optimizer.hyper.centered);
  }
  ExperimentConfig c = parse(with(minimal(), "optimizer={\"name\": \"adamax\"}"));
  CHECK(c.optimizer.hyper.rule == UpdateRule::AdaMax);
  c = parse(with(minimal(), "optimizer={\"name\": \"adamw\"}"));
  CHECK(c.optimizer.hyper.rule == UpdateRule::Adam);
  CHECK(c.regularization.kind == RegKind::Decoupled);  // adamw's default
  c = parse(with(minimal(),
                 "optimizer={\"name\": \"sgd\", \"lr\": 0.1, \"nesterov\": true, "
                 "\"momentum\": 0.9}"));
  CHECK(c.optimizer.hyper.rule == UpdateRule::SGD);
  CHECK(c.optimizer.hyper.nesterov);
  CHECK(c.optimizer.hyper.dampening == 0.0);
  CHECK(c.regularization.kind == RegKind::L2);
  CHECK_THAT(parse_error(with(minimal(), "optimizer={\"name\": \"sgd\"}")),
             Catch::StartsWith("exp.json: optimizer.lr: missing required key"));
}

TEST_CASE("config: regularization groups and lambdas", "[config]") {
  ExperimentConfig c =
      parse(with(minimal(),
                 "regularization={\"kind\": \"decoupled\", \"lambda\": 5e-4, \"groups\": "
                 "[\"linear_weight\", \"conv_weight\"], \"scale_with_lr_schedule\": false}"));
  CHECK(c.regularization.groups ==
        std::vector<ParamGroup>{ParamGroup::ConvWeight, ParamGroup::LinearWeight});
  CHECK(c.regularization.lambda_for(ParamGroup::ConvWeight) == 5e-4);
  CHECK(c.regularization.lambda_for(ParamGroup::BNWeight) == 0.0);
  CHECK(c.regularization.decay_lr(0.01, 0.1) == 0.1);
  CHECK_THAT(
      parse_error(with(minimal(), "regularization.groups=[\"conv_weight\",\"conv_weight\"]")),
      Catch::Contains("regularization.groups[1]: group \"conv_weight\" is listed twice"));
  CHECK_THAT(parse_error(with(minimal(), "regularization.groups=[\"bn_gamma\"]")),
             Catch::Contains("regularization.groups[0]: expected one of"));
  CHECK_THAT(parse_error(with(minimal(), "regularization={\"kind\": \"none\", \"lambda\": 1e-4}")),
             Catch::StartsWith("exp.json: regularization.lambda: must be 0 with kind \"none\""));
  CHECK_THAT(parse_error(with(minimal(), "regularization.scale_with_lr_schedule=false")),
             Catch::StartsWith("exp.json: regularization.scale_with_lr_schedule: does not apply "
                               "to regularization kind \"l2\""));
}

TEST_CASE("config: unknown keys get a did-you-mean suggestion", "[config]") {
  CHECK_THAT(parse_error(with(minimal(), "optimizer.lrr=0.1")),
             Catch::StartsWith("exp.json: optimizer.lrr: unknown key; did you mean \"lr\"?"));
  json raw = minimal();
  raw["optimiser"] = raw["optimizer"];
  CHECK_THAT(parse_error(raw),
             Catch::StartsWith("exp.json: optimiser: unknown key; did you mean \"optimizer\"?"));
  CHECK_THAT(parse_error(with(minimal(), "data.augmentation.horizontal-flip=true")),
             Catch::StartsWith("exp.json: data.augmentation.horizontal-flip: unknown key; did you "
                               "mean \"horizontal_flip\"?"));
  CHECK_THAT(parse_error(with(minimal(), "training.learning_rate=1")),
             Catch::StartsWith("exp.json: training.learning_rate: unknown key (valid keys here:"));
  CHECK_THAT(parse_error(with(minimal(), "data.kind=cifar-10")),
             Catch::Contains("data.kind: expected one of") &&
                 Catch::EndsWith("got \"cifar-10\"; did you mean \"cifar10\"?"));
  // Keys that exist but not for this choice.
  CHECK_THAT(
      parse_error(with(minimal(), "optimizer={\"name\":\"sgd\",\"lr\":0.1,\"amsgrad\":true}")),
      Catch::StartsWith("exp.json: optimizer.amsgrad: does not apply to optimizer \"sgd\""));
  CHECK_THAT(parse_error(with(minimal(), "data.label=fine")),
             Catch::StartsWith("exp.json: data.label: does not apply to data kind \"synthetic\""));
  CHECK_THAT(parse_error(with(minimal(), "schedule.gamma=0.5")),
             Catch::StartsWith("exp.json: schedule.gamma: does not apply to schedule kind "
                               "\"constant\""));
}

TEST_CASE("config: wrong types name the JSON path", "[config]") {
  CHECK_THAT(parse_error(with(minimal(), "training.batch_size=\"32\"")),
             Catch::Equals("exp.json: training.batch_size: expected an integer >= 1, got \"32\""));
  CHECK_THAT(parse_error(with(minimal(), "training.epochs=2.5")),
             Catch::StartsWith("exp.json: training.epochs: expected an integer in [1, 1000000], "
                               "got 2.5"));
  CHECK_THAT(parse_error(with(minimal(), "optimizer.amsgrad=1")),
             Catch::Equals("exp.json: optimizer.amsgrad: expected true or false, got 1"));
  CHECK_THAT(parse_error(with(minimal(), "optimizer.betas=0.9")),
             Catch::Equals("exp.json: optimizer.betas: expected an array of 2, got 0.9"));
  CHECK_THAT(parse_error(with(minimal(), "statistics=[]")),
             Catch::Equals("exp.json: statistics: expected an object, got an array of 0"));
  CHECK_THAT(parse_error(with(minimal(), "model.layers=[{\"kind\":\"relu\"}]")),
             Catch::StartsWith("exp.json: model: both \"preset\" and \"layers\" given"));
  CHECK_THAT(parse_error(with(minimal(), "model={\"layers\": [{\"kind\":\"relu\"}, 3]}")),
             Catch::Equals("exp.json: model.layers[1]: expected a layer object, got 3"));
  CHECK_THAT(parse_error(json::array()),
             Catch::StartsWith("exp.json: expected a JSON object at the top level"));
  // An integral float is accepted where an integer is expected ("1e4" from a shell).
  CHECK(parse(with(minimal(), "data.train_subset=1e3")).data.train_subset == 1000);
}

TEST_CASE("config: out-of-range values name the JSON path", "[config]") {
  CHECK_THAT(
      parse_error(with(with(minimal(), "optimizer.betas=[0.9,0.999]"), "optimizer.betas[1]=1.5")),
      Catch::Equals("exp.json: optimizer.betas[1]: expected a number in [0, 1), got 1.5"));
  CHECK_THAT(parse_error(with(minimal(), "optimizer.lr=-1")),
             Catch::Equals("exp.json: optimizer.lr: expected a number > 0, got -1"));
  CHECK_THAT(parse_error(with(minimal(), "data.validation_split=1")),
             Catch::Equals("exp.json: data.validation_split: expected a number in [0, 1), got 1"));
  CHECK_THAT(parse_error(with(minimal(), "model.width=0")),
             Catch::Equals("exp.json: model.width: expected a number in (0, 64], got 0"));
  CHECK_THAT(parse_error(with(minimal(), "data.train_subset=5000")),
             Catch::StartsWith("exp.json: data.train_subset: expected at most "
                               "data.synthetic.train_size (1024)"));
  CHECK_THAT(
      parse_error(with(minimal(), "data.augmentation.normalize={\"mean\":[0.5],\"std\":[1]}")),
      Catch::Equals("exp.json: data.augmentation.normalize.mean: expected an array of 3, "
                    "got an array of 1"));
  CHECK_THAT(parse_error(
                 with(minimal(), "data.augmentation.normalize={\"mean\":[0,0,0],\"std\":[1,0,1]}")),
             Catch::Equals("exp.json: data.augmentation.normalize.std[1]: expected a number > 0, "
                           "got 0"));
  CHECK_THAT(parse_error(with(minimal(), "schedule={\"kind\":\"multistep\",\"milestones\":[5,5]}")),
             Catch::StartsWith("exp.json: schedule.milestones[1]: milestones must increase"));
  CHECK_THAT(parse_error(with(minimal(), "schedule={\"kind\":\"cosine\",\"min_lr\":0.1}")),
             Catch::StartsWith("exp.json: schedule.min_lr: expected a number <= optimizer.lr"));
  CHECK_THAT(
      parse_error(with(minimal(), "optimizer={\"name\":\"sgd\",\"lr\":0.1,\"nesterov\":true}")),
      Catch::StartsWith("exp.json: optimizer.nesterov: needs momentum > 0"));
  CHECK_THAT(parse_error(with(minimal(), "output.name=a/b")),
             Catch::StartsWith("exp.json: output.name: expected letters, digits"));
  CHECK_THAT(parse_error(with(minimal(),
                              "data={\"kind\":\"image-folder\",\"path\":\"x\","
                              "\"image_folder\":{\"channels\":2}}")),
             Catch::Equals("exp.json: data.image_folder.channels: expected 1 (grey) or 3 (RGB), "
                           "got 2"));
  CHECK_THAT(parse_error(with(minimal(), "sparsity.skip_after=0")),
             Catch::StartsWith("exp.json: sparsity.skip_after: expected an integer"));
  CHECK_THAT(parse_error(with(minimal(), "sparsity.check_every=0")),
             Catch::StartsWith("exp.json: sparsity.check_every: expected an integer"));
  CHECK_THAT(parse_error(with(minimal(), "sparsity.revival_every=-1")),
             Catch::StartsWith("exp.json: sparsity.revival_every: expected an integer"));
}

TEST_CASE("config: missing required keys and versions", "[config]") {
  json raw = minimal();
  raw["training"].erase("epochs");
  CHECK_THAT(parse_error(raw), Catch::Equals("exp.json: training.epochs: missing required key"));
  raw = minimal();
  raw.erase("training");
  CHECK_THAT(parse_error(raw),
             Catch::Equals("exp.json: training.batch_size: missing required key"));
  raw = minimal();
  raw.erase("model");
  CHECK_THAT(parse_error(raw), Catch::StartsWith("exp.json: model: neither \"preset\" nor"));
  raw = minimal();
  raw["data"].erase("kind");
  CHECK_THAT(parse_error(raw), Catch::StartsWith("exp.json: data.kind: missing required key"));
  CHECK_THAT(parse_error(with(minimal(), "version=null")),
             Catch::StartsWith("exp.json: version: missing required key"));
  CHECK_THAT(parse_error(with(minimal(), "version=2")),
             Catch::Equals("exp.json: version: unsupported version 2; this build reads version 1"));
  CHECK_THAT(parse_error(with(minimal(), "schedule.kind=step")),
             Catch::Equals("exp.json: schedule.step_size: missing required key"));
}

TEST_CASE("config: missing dataset files name the path and the key", "[config]") {
  json raw = with(minimal(), "data={\"kind\":\"cifar10\",\"path\":\"no/such/dir\"}");
  CHECK_THAT(parse_error(raw, {}),
             Catch::StartsWith("exp.json: data.path: directory \"no/such/dir\" does not exist"));
  CHECK_NOTHROW(parse(raw));  // parse-only mode

  fs::path dir = fresh_temp_dir("cifar");
  raw["data"]["path"] = dir.string();
  CHECK_THAT(parse_error(raw, {}), Catch::Contains("data.path: directory \"" + dir.string() +
                                                   "\" has no file data_batch_1.bin"));
  for (std::string name : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                           "data_batch_4.bin", "data_batch_5.bin"}) {
    std::ofstream(dir / name) << "x";
  }
  CHECK_THAT(parse_error(raw, {}), Catch::Contains("has no file test_batch.bin"));
  std::ofstream(dir / "test_batch.bin") << "x";
  CHECK_NOTHROW(parse_experiment(raw, "exp.json"));

  // IDX files may be gzipped or not.
  fs::path idx = fresh_temp_dir("idx");
  raw = with(minimal(), "data={\"kind\":\"mnist\",\"path\":\"" + idx.string() + "\"}");
  std::ofstream(idx / "train-images-idx3-ubyte.gz") << "x";
  std::ofstream(idx / "train-labels-idx1-ubyte") << "x";
  std::ofstream(idx / "t10k-images-idx3-ubyte") << "x";
  CHECK_THAT(parse_error(raw, {}), Catch::Contains("has no file t10k-labels-idx1-ubyte (or .gz"));
  std::ofstream(idx / "t10k-labels-idx1-ubyte.gz") << "x";
  CHECK_NOTHROW(parse_experiment(raw, "exp.json"));
  fs::remove_all(dir);
  fs::remove_all(idx);
}

TEST_CASE("config: overrides edit the raw JSON", "[config]") {
  json raw = minimal();
  apply_overrides(raw, {"optimizer.lr=1e-2", "data.kind=cifar10", "optimizer.betas=[0.8,0.9]",
                        "optimizer.betas[1]=0.99", "training.drop_last=true",
                        "regularization.lambda=5e-4", "output.name=\"quoted\""});
  CHECK(raw["optimizer"]["lr"] == 1e-2);
  CHECK(raw["data"]["kind"] == "cifar10");  // not JSON: taken as a string
  CHECK(raw["optimizer"]["betas"] == json::parse("[0.8, 0.99]"));
  CHECK(raw["training"]["drop_last"] == true);
  CHECK(raw["regularization"] == json::parse(R"({"lambda": 5e-4})"));  // section created
  CHECK(raw["output"]["name"] == "quoted");
  ExperimentConfig c = parse(raw);
  CHECK(c.optimizer.hyper.lr == 1e-2);
  CHECK(c.optimizer.hyper.beta2 == 0.99);

  raw = json::parse(R"({"model": {"layers": [{"kind": "conv", "out": 8}, {"kind": "relu"}]}})");
  apply_override(raw, "model.layers[0].out=16");
  apply_override(raw, "model.layers[2]={\"kind\": \"flatten\"}");  // index == size appends
  CHECK(raw["model"]["layers"][0]["out"] == 16);
  CHECK(raw["model"]["layers"].size() == 3);
  apply_override(raw, "model.layers[0].out=null");  // null removes a key
  CHECK_FALSE(raw["model"]["layers"][0].contains("out"));
  apply_override(raw, "absent.section.key=null");  // removing what is not there creates nothing
  CHECK_FALSE(raw.contains("absent"));
}

TEST_CASE("config: bad overrides name the flag", "[config]") {
  json raw = json::parse(R"({"optimizer": {"lr": 0.1, "betas": [0.9, 0.999]}})");
  const json before = raw;
  CHECK_THAT(override_error(raw, "optimizer.lr"),
             Catch::Equals("override \"optimizer.lr\": expected KEY=VALUE"));
  CHECK_THAT(override_error(raw, "=3"), Catch::Contains("the key is empty"));
  CHECK_THAT(override_error(raw, "optimizer..lr=3"),
             Catch::StartsWith("override \"optimizer..lr=3\": empty key name"));
  CHECK_THAT(override_error(raw, "optimizer.betas[5]=0.5"),
             Catch::Equals("override \"optimizer.betas[5]=0.5\": index 5 is out of range for "
                           "optimizer.betas (size 2)"));
  CHECK_THAT(override_error(raw, "optimizer.betas[x]=0.5"),
             Catch::Contains("expected a non-negative integer index"));
  CHECK_THAT(override_error(raw, "optimizer.betas[1=0.5"), Catch::Contains("unclosed '['"));
  CHECK_THAT(override_error(raw, "optimizer.lr.value=3"),
             Catch::Equals("override \"optimizer.lr.value=3\": optimizer.lr is 0.1, not an "
                           "object"));
  CHECK_THAT(override_error(raw, "optimizer.momenta[0]=3"),
             Catch::Contains("optimizer.momenta does not exist"));
  CHECK_THAT(override_error(raw, "optimizer[0]=3"),
             Catch::Contains("optimizer is an object, not an array"));
  // A failed override leaves the JSON as it was.
  try {
    apply_override(raw, "new.section[0]=1");
  } catch (const ConfigError&) {
  }
  CHECK(raw == before);
}

TEST_CASE("config: a bad overridden value is caught by validation", "[config]") {
  CHECK_THAT(parse_error(with(minimal(), "training.batch_size=big")),
             Catch::Equals("exp.json: training.batch_size: expected an integer >= 1, got "
                           "\"big\""));
}

TEST_CASE("config: load_experiment reads a file and applies overrides", "[config]") {
  fs::path dir = fresh_temp_dir("load");
  std::ofstream(dir / "my-run.json") << minimal().dump(2);
  ExperimentConfig c = load_experiment((dir / "my-run.json").string(), {"optimizer.lr=0.01"},
                                       {.check_files = false});
  CHECK(c.optimizer.hyper.lr == 0.01);
  CHECK(c.output.name == "my-run");
  CHECK(c.output.dir == "runs/my-run");
  std::ofstream(dir / "broken.json") << "{\"version\": 1,\n \"data\": }";
  CHECK_THROWS_WITH(read_json_file((dir / "broken.json").string()),
                    Catch::Contains("broken.json: not valid JSON") && Catch::Contains("line 2"));
  CHECK_THROWS_AS(read_json_file((dir / "absent.json").string()), ConfigError);
  fs::remove_all(dir);
}

TEST_CASE("config: to_json round trip gives an equal config", "[config]") {
  // Non-default values everywhere, across the kind-specific sections.
  std::vector<json> variants;
  variants.push_back(json::parse(R"({
    "version": 1, "description": "round trip",
    "data": {"kind": "synthetic", "train_subset": 500, "subset_seed": 7, "validation_split": 0.2,
             "synthetic": {"train_size": 600, "test_size": 50, "channels": 1, "height": 8,
                           "width": 9, "classes": 4, "noise": 0.25, "seed": 3},
             "augmentation": {"random_crop_padding": 2, "horizontal_flip": true,
                              "normalize": {"mean": [0.5], "std": [0.25]}},
             "loader": {"prefetch": false}},
    "model": {"layers": [{"kind": "conv", "out": 4}, {"kind": "relu"}, {"kind": "flatten"},
                         {"kind": "linear"}]},
    "optimizer": {"name": "rmsprop", "lr": 0.003, "alpha": 0.9, "eps": 1e-7, "momentum": 0.5,
                  "centered": true},
    "regularization": {"kind": "decoupled", "lambda": 0.01, "groups": ["bn_bias", "conv_weight"],
                       "scale_with_lr_schedule": false},
    "schedule": {"kind": "multistep", "milestones": [3, 8], "gamma": 0.5, "warmup_epochs": 2,
                 "warmup_start_factor": 0.25},
    "training": {"batch_size": 40, "epochs": 12, "seed": 99, "threads": 3, "device": "cpu",
                 "drop_last": true, "eval_every": 2},
    "statistics": {"activation": {"train_pass": false, "exact_every": 4, "exact_final": false,
                                  "threshold": 1e-9},
                   "gamma_threshold": 0.01, "selectivity_threshold": 0.05,
                   "per_filter_final": false},
    "output": {"dir": "elsewhere", "name": "rt", "checkpoint_every": 0, "keep_checkpoints": 5,
               "progress": "lines"},
    "sparsity": {"skip_dead": true, "skip_after": 5, "check_every": 2, "revival_every": 10}
  })"));
  variants.push_back(with(minimal(),
                          "data={\"kind\":\"cifar100\",\"label\":\"coarse\","
                          "\"path\":\"c100\",\"augmentation\":{\"normalize\":\"none\"}}"));
  variants.push_back(with(minimal(),
                          "data={\"kind\":\"image-folder\",\"path\":\"imgs\","
                          "\"image_folder\":{\"channels\":1,\"size\":[20,30],"
                          "\"resize\":false}}"));
  variants.push_back(with(minimal(),
                          "optimizer={\"name\":\"sgd\",\"lr\":0.05,\"momentum\":0.9,"
                          "\"dampening\":0.1}"));
  variants.push_back(with(minimal(),
                          "optimizer={\"name\":\"adagrad\",\"lr_decay\":0.01,"
                          "\"initial_accumulator\":0.1,\"eps\":1e-9}"));
  variants.push_back(with(minimal(), "optimizer={\"name\":\"adadelta\",\"rho\":0.95}"));
  variants.push_back(with(minimal(), "optimizer={\"name\":\"adamax\",\"betas\":[0.8,0.95]}"));
  variants.push_back(with(minimal(), "optimizer={\"name\":\"adamw\",\"amsgrad\":true}"));
  variants.push_back(with(minimal(), "regularization={\"kind\":\"none\"}"));
  variants.push_back(with(minimal(), "schedule={\"kind\":\"step\",\"step_size\":3,\"gamma\":0.3}"));
  variants.push_back(with(minimal(), "schedule={\"kind\":\"cosine\",\"min_lr\":1e-5}"));
  variants.push_back(with(minimal(), "model.width=0.375"));
  for (const json& raw : variants) {
    INFO(raw.dump());
    ExperimentConfig c = parse(raw);
    json resolved = to_json(c);
    ExperimentConfig again = parse_experiment(resolved, "config.json", {.check_files = false});
    CHECK(again == c);
    CHECK(to_json(again) == resolved);
  }
  // The first variant really carries its non-default values.
  ExperimentConfig c = parse(variants[0]);
  CHECK(c.optimizer.hyper.centered);
  CHECK(c.data.augmentation.normalize.std == std::vector<double>{0.25});
  CHECK(c.schedule.milestones == std::vector<int>{3, 8});
  CHECK(c.regularization.groups ==
        std::vector<ParamGroup>{ParamGroup::ConvWeight, ParamGroup::BNBias});
}

TEST_CASE("config: the fingerprint covers what changes training", "[config]") {
  const ExperimentConfig base = parse(minimal());
  const std::string fp = config_fingerprint(base);
  CHECK(fp.size() == 16);
  CHECK(config_fingerprint(parse(minimal())) == fp);  // stable
  CHECK(config_fingerprint(parse(with(minimal(), "optimizer.lr=0.002"))) != fp);
  CHECK(config_fingerprint(parse(with(minimal(), "regularization.lambda=1e-4"))) != fp);
  CHECK(config_fingerprint(parse(with(minimal(), "training.batch_size=64"))) != fp);
  CHECK(config_fingerprint(parse(with(minimal(), "data.synthetic.seed=5"))) != fp);
  CHECK(config_fingerprint(parse(with(minimal(), "sparsity.skip_dead=true"))) != fp);
  // Not training: where results go, how fast, what is measured.
  for (const char* flag :
       {"output.dir=\"other\"", "output.name=other", "training.threads=2", "training.device=cpu",
        "training.eval_every=3", "statistics.gamma_threshold=0.01", "data.loader.prefetch=false",
        "description=\"note\"", "training.epochs=20"}) {
    INFO(flag);
    CHECK(config_fingerprint(parse(with(minimal(), flag))) == fp);
  }
  // With a cosine schedule the epoch count shapes the lr curve.
  json cosine = with(minimal(), "schedule.kind=cosine");
  CHECK(config_fingerprint(parse(with(cosine, "training.epochs=20"))) !=
        config_fingerprint(parse(cosine)));

  ExperimentConfig changed = parse(with(minimal(), "optimizer.betas=[0.8,0.999]"));
  std::vector<ConfigDifference> diffs = training_differences(base, changed);
  REQUIRE(diffs.size() == 1);
  CHECK(diffs[0].path == "optimizer.betas[0]");
  CHECK(diffs[0].saved == 0.9);
  CHECK(diffs[0].requested == 0.8);
  CHECK_THROWS_WITH(check_resume_compatible(base, changed),
                    Catch::Contains("optimizer.betas[0]: saved 0.9, now 0.8"));
  CHECK_NOTHROW(check_resume_compatible(base, parse(with(minimal(), "training.epochs=50"))));
}

TEST_CASE("config: every configs/*.json parses", "[config]") {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(configs_dir())) {
    if (entry.path().extension() != ".json") continue;
    INFO(entry.path().filename().string());
    ExperimentConfig c = load_experiment(entry.path().string(), {}, {.check_files = false});
    CHECK(c.output.name == entry.path().stem().string());
    ++count;
  }
  CHECK(count >= 5);
  // The quickstart's data ships with the system; check its files when they are installed.
  if (fs::exists("/usr/share/datasets/fashion-mnist")) {
    CHECK_NOTHROW(load_experiment((configs_dir() / "quickstart.json").string()));
  }
}

TEST_CASE("config: edit distance and suggestions", "[config]") {
  CHECK(levenshtein("kitten", "sitting") == 3);
  CHECK(levenshtein("", "abc") == 3);
  CHECK(levenshtein("flaw", "lawn") == 2);
  CHECK(closest_match("momentun", {"lr", "momentum", "nesterov"}) == "momentum");
  CHECK(closest_match("Batch-Size", {"batch_size", "epochs"}) == "batch_size");
  CHECK(closest_match("warmup", {"warmup_epochs", "kind"}) == "warmup_epochs");
  CHECK(closest_match("xyz", {"lr", "eps"}).empty());
}

// ---- the schema and docs/config.md ------------------------------------------------------------

namespace {

// Splits a markdown table row on '|' not escaped as "\|"; drops the empty ends.
std::vector<std::string> table_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  for (size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '|' && line[i - 1] != '\\') {
      size_t b = cell.find_first_not_of(' '), e = cell.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
      cell.clear();
    } else {
      cell += line[i];
    }
  }
  return cells;
}

// The `...` spans of a markdown cell, in order.
std::vector<std::string> code_spans(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = text.find('`', pos)) != std::string::npos) {
    size_t end = text.find('`', pos + 1);
    if (end == std::string::npos) break;
    out.push_back(text.substr(pos + 1, end - pos - 1));
    pos = end + 1;
  }
  return out;
}

// A default cell the test can compare: exactly one code span and nothing else, or "required".
std::optional<std::string> literal_default(const std::string& cell) {
  std::vector<std::string> spans = code_spans(cell);
  if (spans.size() == 1 && cell == "`" + spans[0] + "`") return spans[0];
  return std::nullopt;
}

struct DocRow {
  std::string key;       // full dotted path
  std::string fallback;  // the default cell for this key
};

struct ConfigDoc {
  std::vector<DocRow> rows;                       // tables with a "key" column
  std::map<std::string, std::string> optimizers;  // optimizer name -> its "keys (default)" cell
  std::set<std::string> top_level;                // "## `key`" headings
};

ConfigDoc read_config_doc(const fs::path& path) {
  std::ifstream in(path);
  REQUIRE(in);
  ConfigDoc doc;
  std::string line, section;
  enum { None, Keys, Optimizers } table = None;
  int default_column = -1;
  while (std::getline(in, line)) {
    if (line.rfind("#", 0) == 0) {
      std::vector<std::string> spans = code_spans(line);
      section = spans.empty() ? "" : spans[0];
      if (line.rfind("## ", 0) == 0 && !spans.empty()) doc.top_level.insert(spans[0]);
      table = None;
      continue;
    }
    if (line.rfind("|", 0) != 0) {
      table = None;
      continue;
    }
    std::vector<std::string> cells = table_cells(line);
    if (table == None) {
      if (!cells.empty() && cells[0] == "key") {
        table = Keys;
        auto it = std::find(cells.begin(), cells.end(), "default");
        default_column = it == cells.end() ? -1 : static_cast<int>(it - cells.begin());
      } else if (!cells.empty() && cells[0] == "optimizer") {
        table = Optimizers;
      }
      continue;
    }
    if (cells.empty() || cells[0].rfind("---", 0) == 0) continue;
    std::vector<std::string> keys = code_spans(cells[0]);
    if (table == Optimizers) {
      for (const std::string& name : keys) doc.optimizers[name] = cells.at(1);
      continue;
    }
    if (section.empty()) continue;  // a table outside the key sections (the dataset files)
    std::string fallback = default_column >= 0 ? cells.at(default_column) : "";
    std::vector<std::string> defaults = code_spans(fallback);
    for (size_t i = 0; i < keys.size(); ++i) {
      std::string d = fallback;
      // "`train_size`, `test_size`" with "`1024`, `256`": one default each.
      if (keys.size() > 1 && defaults.size() == keys.size()) d = "`" + defaults[i] + "`";
      doc.rows.push_back({section + "." + keys[i], d});
    }
  }
  return doc;
}

fs::path config_doc_path() {
  return fs::path(SPARSETRAIN_FIXTURES_DIR).parent_path().parent_path() / "docs" / "config.md";
}

}  // namespace

TEST_CASE("config: docs/config.md documents exactly the schema's keys and defaults", "[config]") {
  const ConfigDoc doc = read_config_doc(config_doc_path());
  REQUIRE(doc.rows.size() > 40);
  std::map<std::string, SchemaKey> schema;
  for (const SchemaKey& k : schema_keys()) schema[json_path_join(k.path, k.key)] = k;

  // Every key the docs list exists, and a default they state as a literal is the schema's.
  std::set<std::string> documented;
  for (const DocRow& row : doc.rows) {
    INFO("docs/config.md lists " << row.key);
    auto it = schema.find(row.key);
    REQUIRE(it != schema.end());
    documented.insert(row.key);
    for (std::string p = row.key; p.find('.') != std::string::npos;) {
      p = p.substr(0, p.rfind('.'));
      documented.insert(p);  // "data.loader.prefetch" documents data.loader
    }
    if (row.fallback == "required") {
      CHECK_FALSE(it->second.fallback.has_value());
    } else if (std::optional<std::string> literal = literal_default(row.fallback)) {
      INFO("documented default " << *literal);
      REQUIRE(it->second.fallback.has_value());
      CHECK(json::parse(*literal) == *it->second.fallback);
    }
  }
  for (const std::string& key : doc.top_level) documented.insert(key);

  // The optimizer table: each optimizer's keys and defaults.
  REQUIRE(doc.optimizers.size() == optimizer_infos().size());
  for (const OptimizerInfo& info : optimizer_infos()) {
    INFO("optimizer " << info.text);
    REQUIRE(doc.optimizers.count(info.text) == 1);
    const std::string& cell = doc.optimizers.at(info.text);
    OptimizerConfig sample;
    sample.name = info.name;
    std::vector<std::string> keys;
    size_t pos = 0;
    while ((pos = cell.find('`', pos)) != std::string::npos) {
      size_t end = cell.find('`', pos + 1);
      std::string key = cell.substr(pos + 1, end - pos - 1);
      size_t open = cell.find(" (", end), close = cell.find(')', open);
      REQUIRE((open == end + 1 && close != std::string::npos));
      std::string fallback = cell.substr(open + 2, close - open - 2);
      INFO("key " << key << " documented default " << fallback);
      const Field<OptimizerConfig>& field = optimizer_schema().field(key);
      CHECK(field.applies_to(sample));
      std::optional<json> expected = field.fallback(sample, {});
      if (fallback == "required") {
        CHECK_FALSE(expected.has_value());
      } else {
        REQUIRE(expected.has_value());
        CHECK(json::parse(fallback) == *expected);
      }
      keys.push_back(key);
      documented.insert("optimizer." + key);
      pos = close;
    }
    CHECK(keys == info.keys);
  }

  // Every key of the schema is documented.
  for (const auto& [path, key] : schema) {
    INFO("schema key " << path << " is missing from docs/config.md");
    CHECK(documented.count(path) == 1);
  }
}

TEST_CASE("config: comparison and the fingerprint follow the schema", "[config]") {
  const ExperimentConfig base = parse(minimal());
  // A member no key maps to (a kind that does not apply) does not make configs differ...
  ExperimentConfig other = base;
  other.data.label = Cifar100Label::Coarse;
  CHECK(other == base);
  // ...one a key maps to does, and is in the fingerprint unless the schema says otherwise.
  other = base;
  other.optimizer.hyper.beta2 = 0.99;
  CHECK_FALSE(other == base);
  CHECK(config_fingerprint(other) != config_fingerprint(base));
  other = base;
  other.optimizer.hyper.momentum = 0.5;  // not an Adam key
  CHECK(other.optimizer == base.optimizer);
  for (const Field<TrainingConfig>& f : training_schema().fields) {
    INFO(f.key);
    const bool tracked = !f.fingerprint || f.fingerprint(base);
    CHECK(training_relevant_json(base)["training"].contains(f.key) == tracked);
  }
}

// ---- model.layers at config time --------------------------------------------------------------

TEST_CASE("config: model.layers is parsed and shaped when the config is read", "[config]") {
  const json layers = json::parse(R"([{"kind": "conv", "out": 4, "kernal": 3}, {"kind": "relu"},
                                      {"kind": "flatten"}, {"kind": "linear"}])");
  json raw = minimal();
  raw["model"] = {{"layers", layers}};
  CHECK_THAT(parse_error(raw), Catch::StartsWith("exp.json: model.layers[0].kernal: unknown key"));
  // A layer list that parses but does not fit the data's 3x32x32 input.
  raw["model"]["layers"][0].erase("kernal");
  raw["model"]["layers"][0]["kernel"] = 40;
  CHECK_THAT(parse_error(raw), Catch::StartsWith("exp.json: model.layers: does not fit the data's "
                                                 "input 3x32x32"));
  // The same list fits a larger synthetic input: the shape comes from the data section.
  CHECK_NOTHROW(parse(with(with(raw, "data.synthetic.height=48"), "data.synthetic.width=48")));
  // Fashion-MNIST is 1x28x28 without reading a file.
  raw["data"] = {{"kind", "fashion-mnist"}, {"path", "no/such/dir"}};
  CHECK_THAT(parse_error(raw),
             Catch::Contains("model.layers: does not fit the data's input 1x28x28"));
  // A preset too deep for a tiny input is reported too.
  CHECK_THAT(
      parse_error(with(with(minimal(), "data.synthetic.height=2"), "data.synthetic.width=2")),
      Catch::StartsWith("exp.json: model: does not fit the data's input 3x2x2"));
  // The model is checked before the dataset files: a typo is found without the data.
  raw["model"]["layers"][0]["kernal"] = 3;
  CHECK_THAT(parse_error(raw, {}), Catch::Contains("model.layers[0].kernal"));
}

// ---- data sizes -------------------------------------------------------------------------------

namespace {

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> be32(uint32_t v) {
  return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
}

// An IDX image file of n 28x28 images and its label file (labels 0..n-1 mod 10).
void write_idx_pair(const fs::path& images, const fs::path& labels, uint32_t n) {
  std::vector<uint8_t> img = {0, 0, 8, 3};
  for (uint32_t d : {n, 28u, 28u}) {
    auto b = be32(d);
    img.insert(img.end(), b.begin(), b.end());
  }
  img.resize(img.size() + n * 28 * 28, 7);
  write_bytes(images, img);
  std::vector<uint8_t> lab = {0, 0, 8, 1};
  auto b = be32(n);
  lab.insert(lab.end(), b.begin(), b.end());
  for (uint32_t i = 0; i < n; ++i) lab.push_back(static_cast<uint8_t>(i % 10));
  write_bytes(labels, lab);
}

// One CIFAR-10 record per file.
void write_cifar10(const fs::path& dir) {
  fs::create_directories(dir);
  std::vector<uint8_t> record(1 + 3072, 9);
  record[0] = 3;
  for (int b = 1; b <= 5; ++b)
    write_bytes(dir / ("data_batch_" + std::to_string(b) + ".bin"), record);
  write_bytes(dir / "test_batch.bin", record);
}

bool config_accepts(const json& data) {
  json raw = with(minimal(), "model={\"layers\":[{\"kind\":\"flatten\"},{\"kind\":\"linear\"}]}");
  raw["data"] = data;
  try {
    parse_experiment(raw, "exp.json");
    return true;
  } catch (const ConfigError&) {
    return false;
  }
}

bool loader_accepts(const json& data) {
  json raw = with(minimal(), "model={\"layers\":[{\"kind\":\"flatten\"},{\"kind\":\"linear\"}]}");
  raw["data"] = data;
  try {
    load_experiment_data(parse(raw).data);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

TEST_CASE("config: data layouts are accepted exactly where the loaders accept them", "[config]") {
  fs::path root = fresh_temp_dir("layouts");
  // IDX: dash or dot before "idx", a missing file, a directory that is not one.
  fs::create_directories(root / "dash");
  write_idx_pair(root / "dash/train-images-idx3-ubyte", root / "dash/train-labels-idx1-ubyte", 20);
  write_idx_pair(root / "dash/t10k-images-idx3-ubyte", root / "dash/t10k-labels-idx1-ubyte", 10);
  fs::create_directories(root / "dot");
  write_idx_pair(root / "dot/train-images.idx3-ubyte", root / "dot/train-labels.idx1-ubyte", 20);
  write_idx_pair(root / "dot/t10k-images.idx3-ubyte", root / "dot/t10k-labels.idx1-ubyte", 10);
  fs::create_directories(root / "partial");
  write_idx_pair(root / "partial/train-images-idx3-ubyte", root / "partial/train-labels-idx1-ubyte",
                 20);
  // CIFAR-10: the batches directory itself, its parent, a parent without it.
  write_cifar10(root / "c10/cifar-10-batches-bin");
  fs::create_directories(root / "empty");
  struct Case {
    const char* name;
    json data;
    bool accepted;
  };
  auto d = [&](const char* kind, const fs::path& p) {
    return json{{"kind", kind}, {"path", p.string()}};
  };
  for (const Case& c :
       {Case{"idx with dashes", d("mnist", root / "dash"), true},
        Case{"idx with dots", d("fashion-mnist", root / "dot"), true},
        Case{"idx without test files", d("mnist", root / "partial"), false},
        Case{"cifar10 batches dir", d("cifar10", root / "c10/cifar-10-batches-bin"), true},
        Case{"cifar10 parent dir", d("cifar10", root / "c10"), true},
        Case{"cifar10 empty dir", d("cifar10", root / "empty"), false},
        Case{"missing dir", d("mnist", root / "absent"), false}}) {
    INFO(c.name);
    CHECK(config_accepts(c.data) == c.accepted);
    CHECK(loader_accepts(c.data) == c.accepted);
  }
  fs::remove_all(root);
}

TEST_CASE("config: train_subset and validation_split that do not fit the data exit 2", "[config]") {
  // Known at config time: synthetic data, or a subset's size.
  CHECK_THAT(parse_error(with(with(minimal(), "data.synthetic.train_size=10"),
                              "data.validation_split=0.05")),
             Catch::Equals("exp.json: data.validation_split: 0.05 of 10 training images holds out "
                           "0, which leaves an empty validation set"));
  CHECK_NOTHROW(parse(with(with(minimal(), "data.train_subset=100"), "data.validation_split=0.5")));
  CHECK_THAT(parse_error(with(minimal(), "data.train_subset=1e12")),
             Catch::StartsWith("exp.json: data.train_subset: expected at most"));

  // Known only when the data is opened: still a ConfigError naming the file and the key.
  fs::path dir = fresh_temp_dir("sizes");
  write_idx_pair(dir / "train-images-idx3-ubyte", dir / "train-labels-idx1-ubyte", 100);
  write_idx_pair(dir / "t10k-images-idx3-ubyte", dir / "t10k-labels-idx1-ubyte", 10);
  json raw = with(minimal(), "model={\"layers\":[{\"kind\":\"flatten\"},{\"kind\":\"linear\"}]}");
  raw["data"] = {{"kind", "mnist"}, {"path", dir.string()}, {"train_subset", 1e12}};
  DataConfig data = parse_experiment(raw, "exp.json").data;
  try {
    load_experiment_data(data);
    FAIL("train_subset 1e12 of 100 images was accepted");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("exp.json: data.train_subset: asks for 1000000000000 "
                                           "images, but the training set") &&
                             Catch::Contains("has 100"));
  }
  raw["data"].erase("train_subset");
  raw["data"]["validation_split"] = 0.001;
  data = parse_experiment(raw, "exp.json").data;
  CHECK_THROWS_WITH(load_experiment_data(data),
                    Catch::StartsWith("exp.json: data.validation_split: 0.001 of 100 training "
                                      "images holds out 0"));
  raw["data"]["validation_split"] = 0.5;
  CHECK(load_experiment_data(parse_experiment(raw, "exp.json").data).validation->size() == 50);
  fs::remove_all(dir);
}

// ---- hostile JSON -----------------------------------------------------------------------------

// A number too large for a double is nlohmann's out_of_range, not a parse_error: it escaped the
// config reader as a raw library exception (fuzz_config finding).
TEST_CASE("config: a number out of double range is refused as invalid JSON", "[config]") {
  try {
    parse_json_text(R"({"data": {"synthetic": {"noise": 5E5555555555}}})", "exp.json");
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK_THAT(std::string(e.what()), Catch::StartsWith("exp.json: not valid JSON") &&
                                          Catch::Contains("number overflow") &&
                                          !Catch::Contains("[json.exception"));
  }
}

TEST_CASE("config: duplicate keys are refused with their JSON path", "[config]") {
  auto error = [](const std::string& text) {
    try {
      parse_json_text(text, "exp.json");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(error(R"({"training": {"epochs": 1, "epochs": 1000000}})"),
             Catch::StartsWith("exp.json: training.epochs: duplicate key \"epochs\""));
  CHECK_THAT(error(R"({"version": 1, "version": 1})"),
             Catch::StartsWith("exp.json: version: duplicate key"));
  CHECK_THAT(error(R"({"model": {"layers": [{"kind": "relu"}, {"kind": "conv", "kind": "bn"}]}})"),
             Catch::StartsWith("exp.json: model.layers[1].kind: duplicate key"));
  // The same key in different objects is fine.
  CHECK(parse_json_text(R"({"a": {"k": 1}, "b": {"k": [{"k": 2}, {"k": 3}]}})",
                        "x")["b"]["k"][1]["k"] == 3);
  // Through a file and through --set.
  fs::path dir = fresh_temp_dir("dup");
  std::ofstream(dir / "dup.json") << R"({"version": 1, "training": {"seed": 1, "seed": 2}})";
  CHECK_THROWS_WITH(read_json_file((dir / "dup.json").string()),
                    Catch::Contains("dup.json: training.seed: duplicate key"));
  json raw = minimal();
  CHECK_THROWS_WITH(apply_override(raw, "data={\"kind\":\"mnist\",\"kind\":\"x\"}"),
                    Catch::Contains("duplicate key \"kind\""));
  fs::remove_all(dir);
}

TEST_CASE("config: nesting is bounded without recursion", "[config]") {
  // 100000 levels would overflow the stack of any recursive walk (copy, dump, compare).
  const int depth = 100000;
  const std::string nested = std::string(depth, '[') + std::string(depth, ']');
  CHECK_THROWS_WITH(parse_json_text(nested, "deep.json"),
                    Catch::StartsWith("deep.json: ") && Catch::Contains("nested deeper than 64"));

  // A config file whose model.layers nests that deep.
  fs::path dir = fresh_temp_dir("deep");
  const std::string text = R"({"version": 1, "model": {"layers": )" + nested + "}}";
  std::ofstream(dir / "deep.json") << text;
  CHECK_THROWS_WITH(
      read_json_file((dir / "deep.json").string()),
      Catch::Contains("deep.json: model.layers[0][0]") && Catch::Contains("nested deeper than 64"));

  // A document built without that bound (a checkpoint's stored config): parse_experiment checks
  // it with an explicit stack before it copies or walks anything.
  json raw = json::parse(text);  // nlohmann's parser itself is iterative
  CHECK_THROWS_WITH(parse_experiment(raw, "ckpt: config", {.check_files = false}),
                    Catch::StartsWith("ckpt: config: model.layers[0]") &&
                        Catch::Contains("nested deeper than 64"));
  CHECK_THROWS_WITH(apply_override(raw, "training.epochs=3"),
                    Catch::Contains("nested deeper than 64"));

  // --set: a key path 60000 keys deep is refused at once, naming the flag.
  std::string path = "a";
  for (int i = 1; i < 60000; ++i) path += ".a";
  json small = minimal();
  CHECK_THROWS_WITH(apply_override(small, path + "=1"),
                    Catch::StartsWith("override \"a.a.a.") &&
                        Catch::Contains("the key path has 60000 parts; --set takes at most 32"));
  // A --set value nested too deep.
  CHECK_THROWS_WITH(apply_override(small, "description=" + nested),
                    Catch::Contains("nested deeper than 64"));
  CHECK(small == minimal());
  fs::remove_all(dir);
}

TEST_CASE("config: no raw JSON library text in messages", "[config]") {
  fs::path dir = fresh_temp_dir("raw");
  std::ofstream(dir / "broken.json") << "{\"version\": 1,\n \"data\": }";
  try {
    read_json_file((dir / "broken.json").string());
    FAIL("broken JSON was accepted");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::StartsWith((dir / "broken.json").string() + ": not valid JSON: ") &&
                             !Catch::Contains("json.exception"));
  }
  CHECK_THROWS_WITH(read_json_file(dir.string()), Catch::Contains("is a directory"));
  fs::remove_all(dir);
}

TEST_CASE("config: a description is a note, not a payload", "[config]") {
  json raw = minimal();
  raw["description"] = std::string(64 * 1024, 'x');
  CHECK(parse(raw).description.size() == 64 * 1024);
  raw["description"] = std::string(64 * 1024 + 1, 'x');
  CHECK_THAT(parse_error(raw), Catch::StartsWith("exp.json: description: is 65537 bytes long"));
  CHECK_THAT(
      parse_error(with(minimal(), "schedule.warmup_start_factor=2")),
      Catch::StartsWith("exp.json: schedule.warmup_start_factor: expected a number in (0, 1]"));
  CHECK_THAT(parse_error(with(with(with(minimal(), "data.synthetic.train_size=2e9"),
                                   "data.synthetic.height=4096"),
                              "data.synthetic.width=4096")),
             Catch::StartsWith("exp.json: data.synthetic: (train_size + test_size)"));
}

TEST_CASE("config: data.subset_mode \"first\" trains on the first images in file order",
          "[config][data]") {
  CHECK(parse(minimal()).data.subset_mode == SubsetMode::Stratified);
  const ExperimentConfig first =
      parse(with(with(minimal(), "data.train_subset=40"), "data.subset_mode=first"));
  CHECK(first.data.subset_mode == SubsetMode::First);
  CHECK(to_json(first)["data"]["subset_mode"] == "first");
  CHECK_THAT(parse_error(with(minimal(), "data.subset_mode=head")),
             Catch::StartsWith("exp.json: data.subset_mode:"));
  // The reference: the whole training set, sliced here.
  const ExperimentData all = load_experiment_data(parse(minimal()).data);
  const ExperimentData head = load_experiment_data(first.data);
  REQUIRE(head.train.size() == 40);
  const std::vector<int32_t> want(all.train.labels.begin(), all.train.labels.begin() + 40);
  CHECK(head.train.labels == want);
  CHECK(std::equal(head.train.pixels.begin(), head.train.pixels.end(), all.train.pixels.begin()));
  // The stratified draw is another set of images.
  const ExperimentData drawn =
      load_experiment_data(parse(with(minimal(), "data.train_subset=40")).data);
  CHECK(drawn.train.pixels != head.train.pixels);
}

TEST_CASE("config: data.label_noise makes training labels wrong, not validation or test",
          "[config][data]") {
  // At 0 the key is not in the fingerprint, so runs made before it keep theirs and resume.
  const json none = with(minimal(), "data.label_noise=0");
  CHECK(to_json(parse(none))["data"]["label_noise"] == 0);
  CHECK(config_fingerprint(parse(none)) == config_fingerprint(parse(minimal())));
  const json split = with(minimal(), "data.validation_split=0.25");
  const ExperimentConfig noisy = parse(with(split, "data.label_noise=0.3"));
  CHECK(noisy.data.label_noise == 0.3);
  CHECK(to_json(noisy)["data"]["label_noise"] == 0.3);
  CHECK(config_fingerprint(noisy) != config_fingerprint(parse(split)));
  CHECK_THAT(parse_error(with(minimal(), "data.label_noise=1")),
             Catch::StartsWith("exp.json: data.label_noise:"));

  const ExperimentData clean_data = load_experiment_data(parse(split).data);
  const ExperimentData noisy_data = load_experiment_data(noisy.data);
  REQUIRE(noisy_data.validation.has_value());
  CHECK(noisy_data.validation->labels == clean_data.validation->labels);
  CHECK(noisy_data.test->labels == clean_data.test->labels);
  CHECK(noisy_data.train.pixels == clean_data.train.pixels);
  int64_t wrong = 0;
  for (int64_t i = 0; i < clean_data.train.size(); ++i)
    wrong += noisy_data.train.labels[i] != clean_data.train.labels[i];
  // floor(0.3 x the training part), independently of how the code rounds.
  CHECK(wrong == clean_data.train.size() * 3 / 10);
  CHECK(wrong > 0);
}
