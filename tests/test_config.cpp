#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "config/experiment.h"
#include "config/override.h"
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
  CHECK_THAT(parse_error(raw, {}), Catch::Contains("has no file t10k-labels-idx1-ubyte (or .gz)"));
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
    "model": {"layers": [{"kind": "conv", "out": 4}, {"kind": "relu"}]},
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

TEST_CASE("config: data.subset_mode \"first\" trains on the first images in file order",
          "[config][data]") {
  CHECK_FALSE(parse(minimal()).data.subset_first);
  const ExperimentConfig first =
      parse(with(with(minimal(), "data.train_subset=40"), "data.subset_mode=first"));
  CHECK(first.data.subset_first);
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
