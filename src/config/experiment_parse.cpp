// JSON -> ExperimentConfig: one function per section, each checking its own keys.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "config/experiment.h"
#include "config/json_reader.h"
#include "config/names.h"
#include "config/override.h"
#include "config/suggest.h"

namespace st {

namespace {

constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();

using Keys = std::vector<std::string>;

Keys concat(Keys a, const Keys& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// ---- data -------------------------------------------------------------------------------------

std::string default_data_path(DataKind kind) {
  switch (kind) {
    case DataKind::FashionMnist:
      return "/usr/share/datasets/fashion-mnist";
    case DataKind::Mnist:
      return "data/mnist";
    case DataKind::Cifar10:
      return "data/cifar-10-batches-bin";
    case DataKind::Cifar100:
      return "data/cifar-100-binary";
    case DataKind::ImageFolder:
    case DataKind::Synthetic:
      return "";
  }
  return "";
}

Keys data_keys_for(DataKind kind) {
  Keys keys = {"kind",         "train_subset", "subset_seed", "subset_mode", "validation_split",
               "augmentation", "loader"};
  if (kind != DataKind::Synthetic) keys.push_back("path");
  if (kind == DataKind::Cifar100) keys.push_back("label");
  if (kind == DataKind::ImageFolder) keys.push_back("image_folder");
  if (kind == DataKind::Synthetic) keys.push_back("synthetic");
  return keys;
}

ImageFolderOptions parse_image_folder(const JsonReader& r) {
  r.allow_keys({"channels", "size", "resize"});
  ImageFolderOptions o;
  o.channels = static_cast<int>(r.integer("channels", 1, 3, 3));
  if (o.channels == 2) r.fail("channels", "expected 1 (grey) or 3 (RGB), got 2");
  std::vector<int64_t> size = r.integer_array("size", 1, 65536, 2, std::vector<int64_t>{32, 32});
  o.height = static_cast<int>(size[0]);
  o.width = static_cast<int>(size[1]);
  o.resize = r.boolean("resize", true);
  return o;
}

SyntheticOptions parse_synthetic(const JsonReader& r) {
  r.allow_keys(
      {"train_size", "test_size", "channels", "height", "width", "classes", "noise", "seed"});
  SyntheticOptions o;
  o.train_size = r.integer("train_size", 1, kMaxInt, o.train_size);
  o.test_size = r.integer("test_size", 1, kMaxInt, o.test_size);
  o.channels = static_cast<int>(r.integer("channels", 1, 64, o.channels));
  o.height = static_cast<int>(r.integer("height", 1, 4096, o.height));
  o.width = static_cast<int>(r.integer("width", 1, 4096, o.width));
  o.classes = static_cast<int>(r.integer("classes", 2, 100000, o.classes));
  o.noise = r.number("noise", NumberRange::non_negative(), o.noise);
  o.seed = static_cast<uint64_t>(r.integer("seed", 0, kMaxInt64, 0));
  return o;
}

NormalizeConfig parse_normalize(const JsonReader& r, int channels) {
  NormalizeConfig n;
  if (!r.has("normalize")) return n;
  const nlohmann::json& v = r.get("normalize");
  if (v.is_string()) {
    std::string mode = r.as_choice(v, r.path_of("normalize"), {"none", "computed"});
    n.mode = mode == "none" ? NormalizeMode::None : NormalizeMode::Computed;
    return n;
  }
  if (!v.is_object()) {
    r.fail("normalize",
           "expected \"none\", \"computed\" or {\"mean\": [...], \"std\": [...]}, got " +
               describe_json_value(v));
  }
  JsonReader given = r.child("normalize");
  given.allow_keys({"mean", "std"});
  n.mode = NormalizeMode::Given;
  auto per_channel = static_cast<size_t>(channels);
  n.mean = given.number_array("mean", NumberRange::any(), per_channel, std::nullopt);
  n.std = given.number_array("std", NumberRange::positive(), per_channel, std::nullopt);
  return n;
}

AugmentationConfig parse_augmentation(const JsonReader& r, int channels) {
  r.allow_keys({"random_crop_padding", "horizontal_flip", "normalize"});
  AugmentationConfig a;
  a.random_crop_padding = static_cast<int>(r.integer("random_crop_padding", 0, 1024, 0));
  a.horizontal_flip = r.boolean("horizontal_flip", false);
  a.normalize = parse_normalize(r, channels);
  return a;
}

DataConfig parse_data(const JsonReader& r) {
  DataConfig d;
  d.kind = table_value(data_kind_table(),
                       r.choice("kind", table_names(data_kind_table()), std::nullopt));
  const std::string context = "data kind \"" + std::string(data_kind_name(d.kind)) + "\"";
  r.allow_keys(data_keys_for(d.kind),
               {"kind", "path", "label", "image_folder", "synthetic", "train_subset", "subset_seed",
                "subset_mode", "validation_split", "augmentation", "loader"},
               context);
  if (d.kind != DataKind::Synthetic) {
    std::string fallback = default_data_path(d.kind);
    d.path = r.string("path", fallback.empty() ? std::nullopt : std::optional(fallback));
  }
  if (d.kind == DataKind::Cifar100) {
    d.label = table_value(cifar100_label_table(),
                          r.choice("label", table_names(cifar100_label_table()), "fine"));
  }
  if (d.kind == DataKind::ImageFolder) d.image_folder = parse_image_folder(r.child("image_folder"));
  if (d.kind == DataKind::Synthetic) d.synthetic = parse_synthetic(r.child("synthetic"));
  d.train_subset = r.integer("train_subset", 0, kMaxInt64, 0);
  if (d.kind == DataKind::Synthetic && d.train_subset > d.synthetic.train_size) {
    r.fail("train_subset", "expected at most data.synthetic.train_size (" +
                               std::to_string(d.synthetic.train_size) + "), got " +
                               std::to_string(d.train_subset));
  }
  d.subset_seed = static_cast<uint64_t>(r.integer("subset_seed", 0, kMaxInt64, 0));
  d.subset_first = r.choice("subset_mode", {"stratified", "first"}, "stratified") == "first";
  d.validation_split = r.number("validation_split", NumberRange::unit_right_open(), 0.0);
  d.augmentation = parse_augmentation(r.child("augmentation"), d.channels());
  JsonReader loader = r.child("loader");
  loader.allow_keys({"prefetch"});
  d.loader.prefetch = loader.boolean("prefetch", true);
  return d;
}

// The files a dataset directory must hold; each entry lists acceptable alternatives.
std::vector<Keys> expected_data_files(DataKind kind) {
  auto idx = [](const std::string& name) { return Keys{name, name + ".gz"}; };
  switch (kind) {
    case DataKind::FashionMnist:
    case DataKind::Mnist:
      return {idx("train-images-idx3-ubyte"), idx("train-labels-idx1-ubyte"),
              idx("t10k-images-idx3-ubyte"), idx("t10k-labels-idx1-ubyte")};
    case DataKind::Cifar10:
      return {{"data_batch_1.bin"}, {"data_batch_2.bin"}, {"data_batch_3.bin"},
              {"data_batch_4.bin"}, {"data_batch_5.bin"}, {"test_batch.bin"}};
    case DataKind::Cifar100:
      return {{"train.bin"}, {"test.bin"}};
    case DataKind::ImageFolder:
    case DataKind::Synthetic:
      return {};
  }
  return {};
}

std::string data_path_hint(DataKind kind) {
  switch (kind) {
    case DataKind::FashionMnist:
      return " (Debian's dataset-fashion-mnist package installs it)";
    case DataKind::Mnist:
      return " (set it to a directory with the four MNIST IDX files)";
    case DataKind::Cifar10:
      return " (set it to the directory unpacked from cifar-10-binary.tar.gz)";
    case DataKind::Cifar100:
      return " (set it to the directory unpacked from cifar-100-binary.tar.gz)";
    case DataKind::ImageFolder:
    case DataKind::Synthetic:
      return "";
  }
  return "";
}

void check_data_files(const DataConfig& d, const std::string& source) {
  namespace fs = std::filesystem;
  if (d.kind == DataKind::Synthetic) return;
  std::error_code ec;
  const fs::path dir(d.path);
  if (!fs::exists(dir, ec)) {
    throw ConfigError(source, "data.path",
                      "directory \"" + d.path + "\" does not exist" + data_path_hint(d.kind));
  }
  if (!fs::is_directory(dir, ec)) {
    throw ConfigError(source, "data.path", "\"" + d.path + "\" is not a directory");
  }
  for (const Keys& alternatives : expected_data_files(d.kind)) {
    bool found = std::any_of(alternatives.begin(), alternatives.end(),
                             [&](const auto& name) { return fs::is_regular_file(dir / name, ec); });
    if (!found) {
      std::string names = alternatives[0] + (alternatives.size() > 1 ? " (or .gz)" : "");
      throw ConfigError(source, "data.path",
                        "directory \"" + d.path + "\" has no file " + names + " needed for " +
                            data_kind_name(d.kind) + data_path_hint(d.kind));
    }
  }
}

// ---- model ------------------------------------------------------------------------------------

ModelConfig parse_model(const JsonReader& r) {
  r.allow_keys({"preset", "width", "layers"});
  ModelConfig m;
  bool has_preset = r.has("preset"), has_layers = r.has("layers");
  if (has_preset && has_layers) {
    r.fail_at(r.path(), "both \"preset\" and \"layers\" given; give exactly one of them");
  }
  if (!has_preset && !has_layers) {
    r.fail_at(r.path(), "neither \"preset\" nor \"layers\" given; give exactly one of them");
  }
  if (has_preset) {
    m.preset = r.choice("preset", known_model_presets(), std::nullopt);
    m.width = r.number("width", {0.0, 64.0, true, false}, 1.0);
    return m;
  }
  if (r.has("width")) {
    r.fail("width", "applies only with \"preset\"; set each layer's \"out\" in model.layers");
  }
  const nlohmann::json& layers = r.get("layers");
  if (!layers.is_array() || layers.empty()) {
    r.fail("layers",
           "expected a non-empty array of layer objects, got " + describe_json_value(layers));
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!layers[i].is_object()) {
      r.fail_at(json_path_index(r.path_of("layers"), i),
                "expected a layer object, got " + describe_json_value(layers[i]));
    }
  }
  m.layers = layers;
  return m;
}

// ---- optimizer --------------------------------------------------------------------------------

struct OptimizerSpec {
  UpdateRule rule;
  Keys keys;                         // besides "name"
  std::optional<double> default_lr;  // none: lr is required (PyTorch's SGD)
  double default_eps;
};

OptimizerSpec optimizer_spec(OptimizerName name) {
  switch (name) {
    case OptimizerName::SGD:
      return {UpdateRule::SGD, {"lr", "momentum", "dampening", "nesterov"}, std::nullopt, 1e-8};
    case OptimizerName::Adam:
    case OptimizerName::AdamW:
      return {UpdateRule::Adam, {"lr", "betas", "eps", "amsgrad"}, 1e-3, 1e-8};
    case OptimizerName::AdaGrad:
      return {UpdateRule::AdaGrad, {"lr", "lr_decay", "initial_accumulator", "eps"}, 1e-2, 1e-10};
    case OptimizerName::RMSProp:
      return {UpdateRule::RMSProp, {"lr", "alpha", "eps", "momentum", "centered"}, 1e-2, 1e-8};
    case OptimizerName::AdaDelta:
      return {UpdateRule::AdaDelta, {"lr", "rho", "eps"}, 1.0, 1e-6};
    case OptimizerName::AdaMax:
      return {UpdateRule::AdaMax, {"lr", "betas", "eps"}, 2e-3, 1e-8};
  }
  throw std::logic_error("unhandled optimizer");
}

const Keys& all_optimizer_keys() {
  static const Keys keys = {"name",  "lr",       "momentum", "dampening", "nesterov",
                            "betas", "eps",      "amsgrad",  "lr_decay",  "initial_accumulator",
                            "alpha", "centered", "rho"};
  return keys;
}

OptimizerConfig parse_optimizer(const JsonReader& r) {
  OptimizerConfig o;
  o.name = table_value(optimizer_table(),
                       r.choice("name", table_names(optimizer_table()), std::nullopt));
  const OptimizerSpec spec = optimizer_spec(o.name);
  r.allow_keys(concat({"name"}, spec.keys), all_optimizer_keys(),
               "optimizer \"" + std::string(optimizer_name(o.name)) + "\"");
  OptimHyper& h = o.hyper;
  h.rule = spec.rule;
  h.eps = spec.default_eps;
  if (!spec.default_lr && !r.has("lr")) {
    r.fail("lr", "missing required key (sgd has no default learning rate)");
  }
  h.lr = r.number("lr", NumberRange::positive(), spec.default_lr);
  h.momentum = r.number("momentum", NumberRange::unit_right_open(), h.momentum);
  h.dampening = r.number("dampening", NumberRange::unit_closed(), h.dampening);
  h.nesterov = r.boolean("nesterov", h.nesterov);
  if (h.nesterov && (h.momentum <= 0.0 || h.dampening != 0.0)) {
    r.fail("nesterov", "needs momentum > 0 and dampening 0 (got momentum " +
                           describe_json_value(h.momentum) + ", dampening " +
                           describe_json_value(h.dampening) + ")");
  }
  std::vector<double> betas =
      r.number_array("betas", NumberRange::unit_right_open(), 2, std::vector{h.beta1, h.beta2});
  h.beta1 = betas[0];
  h.beta2 = betas[1];
  h.eps = r.number("eps", NumberRange::positive(), h.eps);
  h.amsgrad = r.boolean("amsgrad", h.amsgrad);
  h.lr_decay = r.number("lr_decay", NumberRange::non_negative(), h.lr_decay);
  h.initial_accumulator =
      r.number("initial_accumulator", NumberRange::non_negative(), h.initial_accumulator);
  h.alpha = r.number("alpha", NumberRange::unit_right_open(), h.alpha);
  h.centered = r.boolean("centered", h.centered);
  h.rho = r.number("rho", NumberRange::unit_right_open(), h.rho);
  return o;
}

// ---- regularization ---------------------------------------------------------------------------

Keys regularization_keys_for(RegKind kind) {
  if (kind == RegKind::None) return {"kind", "lambda"};
  if (kind == RegKind::L2) return {"kind", "lambda", "groups"};
  return {"kind", "lambda", "groups", "scale_with_lr_schedule"};
}

std::vector<ParamGroup> parse_param_groups(const JsonReader& r) {
  std::vector<ParamGroup> groups;
  for (const auto& entry : param_group_table()) groups.push_back(entry.first);
  if (!r.has("groups")) return groups;
  const nlohmann::json& v = r.get("groups");
  if (!v.is_array())
    r.fail("groups", "expected an array of group names, got " + describe_json_value(v));
  std::set<ParamGroup> chosen;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string path = json_path_index(r.path_of("groups"), i);
    ParamGroup g =
        table_value(param_group_table(), r.as_choice(v[i], path, table_names(param_group_table())));
    if (!chosen.insert(g).second) r.fail_at(path, "group " + v[i].dump() + " is listed twice");
  }
  return {chosen.begin(), chosen.end()};  // ParamGroup order
}

RegularizationConfig parse_regularization(const JsonReader& r, OptimizerName optimizer) {
  RegularizationConfig g;
  std::string default_kind = optimizer == OptimizerName::AdamW ? "decoupled" : "l2";
  g.kind =
      table_value(reg_kind_table(), r.choice("kind", table_names(reg_kind_table()), default_kind));
  r.allow_keys(regularization_keys_for(g.kind), regularization_keys_for(RegKind::Decoupled),
               "regularization kind \"" + std::string(reg_kind_name(g.kind)) + "\"");
  g.lambda = r.number("lambda", NumberRange::non_negative(), 0.0);
  if (g.kind == RegKind::None && g.lambda != 0.0) {
    r.fail("lambda", "must be 0 with kind \"none\" (got " + describe_json_value(g.lambda) +
                         "); choose kind \"l2\" or \"decoupled\"");
  }
  g.groups = parse_param_groups(r);
  g.scale_with_lr_schedule = r.boolean("scale_with_lr_schedule", true);
  return g;
}

// ---- schedule ---------------------------------------------------------------------------------

Keys schedule_keys_for(ScheduleKind kind) {
  Keys keys = {"kind", "warmup_epochs", "warmup_start_factor"};
  if (kind == ScheduleKind::Step) keys = concat(keys, {"step_size", "gamma"});
  if (kind == ScheduleKind::MultiStep) keys = concat(keys, {"milestones", "gamma"});
  if (kind == ScheduleKind::Cosine) keys.push_back("min_lr");
  return keys;
}

ScheduleConfig parse_schedule(const JsonReader& r, double base_lr) {
  ScheduleConfig s;
  s.kind = table_value(schedule_kind_table(),
                       r.choice("kind", table_names(schedule_kind_table()), "constant"));
  r.allow_keys(schedule_keys_for(s.kind),
               {"kind", "step_size", "gamma", "milestones", "min_lr", "warmup_epochs",
                "warmup_start_factor"},
               "schedule kind \"" + std::string(schedule_kind_name(s.kind)) + "\"");
  if (s.kind == ScheduleKind::Step) {
    s.step_size = static_cast<int>(r.integer("step_size", 1, kMaxInt, std::nullopt));
  }
  if (s.kind == ScheduleKind::MultiStep) {
    std::vector<int64_t> m = r.integer_array("milestones", 1, kMaxInt, 0, std::nullopt);
    if (m.empty()) r.fail("milestones", "expected a non-empty array of epochs, got []");
    for (size_t i = 1; i < m.size(); ++i) {
      if (m[i] <= m[i - 1]) {
        r.fail_at(json_path_index(r.path_of("milestones"), i),
                  "milestones must increase strictly, got " + std::to_string(m[i]) + " after " +
                      std::to_string(m[i - 1]));
      }
    }
    s.milestones.assign(m.begin(), m.end());
  }
  if (s.kind == ScheduleKind::Step || s.kind == ScheduleKind::MultiStep) {
    s.gamma = r.number("gamma", NumberRange::unit_left_open(), 0.1);
  }
  if (s.kind == ScheduleKind::Cosine) {
    s.min_lr = r.number("min_lr", NumberRange::non_negative(), 0.0);
    if (s.min_lr > base_lr) {
      r.fail("min_lr", "expected a number <= optimizer.lr (" + describe_json_value(base_lr) +
                           "), got " + describe_json_value(s.min_lr));
    }
  }
  s.warmup_epochs = static_cast<int>(r.integer("warmup_epochs", 0, kMaxInt, 0));
  s.warmup_start_factor = r.number("warmup_start_factor", NumberRange::unit_left_open(), 0.1);
  return s;
}

// ---- training, statistics, output, sparsity ---------------------------------------------------

TrainingConfig parse_training(const JsonReader& r) {
  r.allow_keys({"batch_size", "epochs", "seed", "threads", "device", "drop_last", "eval_every"});
  TrainingConfig t;
  t.batch_size = r.integer("batch_size", 1, kMaxInt, std::nullopt);
  t.epochs = static_cast<int>(r.integer("epochs", 1, 1000000, std::nullopt));
  t.seed = static_cast<uint64_t>(r.integer("seed", 0, kMaxInt64, 0));
  t.threads = static_cast<int>(r.integer("threads", 0, 4096, 0));
  t.device = table_value(device_table(), r.choice("device", table_names(device_table()), "auto"));
  t.drop_last = r.boolean("drop_last", false);
  t.eval_every = static_cast<int>(r.integer("eval_every", 1, kMaxInt, 1));
  return t;
}

StatisticsConfig parse_statistics(const JsonReader& r) {
  r.allow_keys({"activation", "gamma_threshold", "selectivity_threshold", "per_filter_final"});
  StatisticsConfig s;
  JsonReader a = r.child("activation");
  a.allow_keys({"train_pass", "exact_every", "exact_final", "threshold"});
  s.activation.train_pass = a.boolean("train_pass", true);
  s.activation.exact_every = static_cast<int>(a.integer("exact_every", 0, kMaxInt, 0));
  s.activation.exact_final = a.boolean("exact_final", true);
  s.activation.threshold = a.number("threshold", NumberRange::positive(), 1e-12);
  s.gamma_threshold = r.number("gamma_threshold", NumberRange::positive(), 1e-3);
  s.selectivity_threshold = r.number("selectivity_threshold", {0.0, 1.0, true, true}, 1e-3);
  s.per_filter_final = r.boolean("per_filter_final", true);
  return s;
}

bool is_valid_run_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::string default_run_name(const std::string& source_name) {
  std::string stem = std::filesystem::path(source_name).stem().string();
  return is_valid_run_name(stem) ? stem : "experiment";
}

OutputConfig parse_output(const JsonReader& r, const std::string& source_name) {
  r.allow_keys({"dir", "name", "checkpoint_every", "keep_checkpoints", "progress"});
  OutputConfig o;
  o.name = r.string("name", default_run_name(source_name));
  if (!is_valid_run_name(o.name)) {
    r.fail("name", "expected letters, digits, '-', '_' or '.', got \"" + o.name + "\"");
  }
  o.dir = r.string("dir", "runs/" + o.name);
  o.checkpoint_every = static_cast<int>(r.integer("checkpoint_every", 0, kMaxInt, 1));
  o.keep_checkpoints = static_cast<int>(r.integer("keep_checkpoints", 0, kMaxInt, 2));
  o.progress =
      table_value(progress_table(), r.choice("progress", table_names(progress_table()), "auto"));
  return o;
}

SparsityConfig parse_sparsity(const JsonReader& r) {
  r.allow_keys({"skip_dead", "skip_after", "check_every", "revival_every"});
  SparsityConfig s;
  s.skip_dead = r.boolean("skip_dead", false);
  s.skip_after = static_cast<int>(r.integer("skip_after", 1, kMaxInt, 3));
  s.check_every = static_cast<int>(r.integer("check_every", 1, kMaxInt, 1));
  s.revival_every = static_cast<int>(r.integer("revival_every", 0, kMaxInt, 0));
  return s;
}

void check_version(const JsonReader& root) {
  if (!root.has("version")) {
    root.fail("version", "missing required key (this build reads version " +
                             std::to_string(kConfigVersion) + ")");
  }
  int64_t version = root.as_integer(root.get("version"), "version", 1, kMaxInt);
  if (version != kConfigVersion) {
    root.fail("version", "unsupported version " + std::to_string(version) +
                             "; this build reads version " + std::to_string(kConfigVersion));
  }
}

}  // namespace

int DataConfig::channels() const {
  switch (kind) {
    case DataKind::FashionMnist:
    case DataKind::Mnist:
      return 1;
    case DataKind::Cifar10:
    case DataKind::Cifar100:
      return 3;
    case DataKind::ImageFolder:
      return image_folder.channels;
    case DataKind::Synthetic:
      return synthetic.channels;
  }
  return 0;
}

int DataConfig::known_classes() const {
  switch (kind) {
    case DataKind::FashionMnist:
    case DataKind::Mnist:
    case DataKind::Cifar10:
      return 10;
    case DataKind::Cifar100:
      return label == Cifar100Label::Fine ? 100 : 20;
    case DataKind::ImageFolder:
      return 0;
    case DataKind::Synthetic:
      return synthetic.classes;
  }
  return 0;
}

bool OptimizerConfig::operator==(const OptimizerConfig& o) const {
  const OptimHyper &a = hyper, &b = o.hyper;
  return name == o.name && a.rule == b.rule && a.lr == b.lr && a.momentum == b.momentum &&
         a.dampening == b.dampening && a.nesterov == b.nesterov && a.beta1 == b.beta1 &&
         a.beta2 == b.beta2 && a.amsgrad == b.amsgrad && a.eps == b.eps &&
         a.lr_decay == b.lr_decay && a.initial_accumulator == b.initial_accumulator &&
         a.alpha == b.alpha && a.centered == b.centered && a.rho == b.rho;
}

bool RegularizationConfig::applies_to(ParamGroup g) const {
  return std::find(groups.begin(), groups.end(), g) != groups.end();
}

double RegularizationConfig::lambda_for(ParamGroup g) const {
  return kind != RegKind::None && applies_to(g) ? lambda : 0.0;
}

ExperimentConfig parse_experiment(const nlohmann::json& raw, const std::string& source_name,
                                  const ParseOptions& options) {
  if (!raw.is_object()) {
    throw ConfigError(source_name, "",
                      "expected a JSON object at the top level, got " + describe_json_value(raw));
  }
  JsonReader root(raw, "", source_name);
  root.allow_keys({"version", "description", "data", "model", "optimizer", "regularization",
                   "schedule", "training", "statistics", "output", "sparsity"});
  check_version(root);
  ExperimentConfig c;
  if (root.has("description")) {
    if (!root.get("description").is_string()) {
      root.fail("description",
                "expected a string, got " + describe_json_value(root.get("description")));
    }
    c.description = root.get("description").get<std::string>();
  }
  c.data = parse_data(root.child("data"));
  c.model = parse_model(root.child("model"));
  c.optimizer = parse_optimizer(root.child("optimizer"));
  c.regularization = parse_regularization(root.child("regularization"), c.optimizer.name);
  c.schedule = parse_schedule(root.child("schedule"), c.optimizer.hyper.lr);
  c.training = parse_training(root.child("training"));
  c.statistics = parse_statistics(root.child("statistics"));
  c.output = parse_output(root.child("output"), source_name);
  c.sparsity = parse_sparsity(root.child("sparsity"));
  if (options.check_files) check_data_files(c.data, source_name);
  return c;
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, "", "cannot open the config file");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw ConfigError(path, "", std::string("not valid JSON: ") + e.what());
  }
}

ExperimentConfig load_experiment(const std::string& path, const std::vector<std::string>& overrides,
                                 const ParseOptions& options) {
  nlohmann::json raw = read_json_file(path);
  apply_overrides(raw, overrides);
  return parse_experiment(raw, path, options);
}

}  // namespace st
