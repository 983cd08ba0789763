// The experiment configuration: a versioned JSON file parsed into typed structs. Every error
// is a ConfigError naming the file and the dotted JSON path. The keys, their defaults and
// checks are the tables of config/schema.h; docs/config.md describes each key (a test keeps
// the two in step).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config_error.h"
#include "io/json_text.h"
#include "optim/optim_types.h"
#include "optim/schedule.h"

namespace st {

// The schema version this build reads and writes.
constexpr int kConfigVersion = 1;

// ---- data -------------------------------------------------------------------------------------

enum class DataKind { FashionMnist, Mnist, Cifar10, Cifar100, ImageFolder, Synthetic };
enum class Cifar100Label { Fine, Coarse };
// How data.train_subset images are chosen: a seeded stratified draw, or the file's first N.
enum class SubsetMode { Stratified, First };
enum class NormalizeMode { None, Computed, Given };

struct ImageFolderOptions {
  int channels = 3;  // 1 (grey) or 3 (RGB); images are converted to it
  int height = 32, width = 32;
  bool resize = true;  // resize every image to height x width; false: sizes must already match
  bool operator==(const ImageFolderOptions&) const = default;
};

struct SyntheticOptions {
  int64_t train_size = 1024, test_size = 256;
  int channels = 3, height = 32, width = 32, classes = 10;
  double noise = 0.5;  // standard deviation of the noise around each class's prototype image
  uint64_t seed = 0;
  bool operator==(const SyntheticOptions&) const = default;
};

struct NormalizeConfig {
  NormalizeMode mode = NormalizeMode::Computed;
  std::vector<double> mean, std;  // per channel, when mode == Given
  bool operator==(const NormalizeConfig&) const = default;
};

struct AugmentationConfig {
  int random_crop_padding = 0;  // pad by this many pixels, then crop back at random; 0 = off
  bool horizontal_flip = false;
  NormalizeConfig normalize;
  bool operator==(const AugmentationConfig&) const = default;
};

struct LoaderConfig {
  bool prefetch = true;  // prepare the next batch on a background thread
  bool operator==(const LoaderConfig&) const = default;
};

struct DataConfig {
  DataKind kind = DataKind::FashionMnist;
  std::string path;  // dataset directory; empty for synthetic data
  Cifar100Label label = Cifar100Label::Fine;
  ImageFolderOptions image_folder;
  SyntheticOptions synthetic;
  int64_t train_subset = 0;  // use this many training images (0 = all)
  uint64_t subset_seed = 0;
  SubsetMode subset_mode = SubsetMode::Stratified;
  double validation_split = 0.0;  // fraction of the training set held out, in [0, 1)
  double label_noise = 0.0;       // fraction of training labels made wrong, in [0, 1)
  AugmentationConfig augmentation;
  LoaderConfig loader;
  // The config file this came from, for errors found when the data is opened. Not a key.
  std::string source;

  int channels() const;  // input channels the kind implies
  int height() const;    // input image size the kind implies
  int width() const;
  // Images data.validation_split holds out of `train_images`: the same rounding as the split.
  int64_t validation_size(int64_t train_images) const;
  // Classes the kind implies; 0 for an image folder (one class per sub-directory).
  int known_classes() const;
  bool operator==(const DataConfig& o) const;  // the schema's keys (not `source`)
};

// ---- model ------------------------------------------------------------------------------------

struct ModelConfig {
  std::string preset;  // "basicnet", "vgg11", "vgg16", "resnet18"; empty when `layers` is used
  double width = 1.0;  // preset only: multiplies every conv width
  // The layer list as written (a non-empty array of objects) when there is no preset. Parsing
  // checks it with layers_from_json(layers, "model.layers") and infers its shapes for the
  // data's input.
  nlohmann::json layers;

  bool uses_preset() const { return !preset.empty(); }
  bool operator==(const ModelConfig&) const = default;
};

// ---- optimizer and regularization ---------------------------------------------------------------

enum class OptimizerName { SGD, Adam, AdamW, AdaGrad, RMSProp, AdaDelta, AdaMax };

struct OptimizerConfig {
  OptimizerName name = OptimizerName::Adam;
  OptimHyper hyper;  // rule and all hyper-parameters; keys not given hold PyTorch's defaults
  bool operator==(const OptimizerConfig& o) const;
};

// The parameter groups regularization can be restricted to.
constexpr int kParamGroupCount = 6;
// All of them, in ParamGroup order (from the name table, config/names.h).
std::vector<ParamGroup> every_param_group();

struct RegularizationConfig {
  RegKind kind = RegKind::L2;
  double lambda = 0.0;
  std::vector<ParamGroup> groups = every_param_group();  // in ParamGroup order, no repeats
  // Decoupled only: lambda multiplies the scheduled lr (PyTorch's AdamW) or the base lr.
  bool scale_with_lr_schedule = true;

  bool applies_to(ParamGroup g) const;
  // The lambda for a group's UpdateSegment: 0 where the group is exempt or kind is None.
  double lambda_for(ParamGroup g) const;
  // OptimStep::decay_lr for a step at learning rate `scheduled_lr`.
  double decay_lr(double scheduled_lr, double base_lr) const {
    return scale_with_lr_schedule ? scheduled_lr : base_lr;
  }
  bool operator==(const RegularizationConfig&) const = default;
};

// ---- schedule ---------------------------------------------------------------------------------

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::Constant;
  int step_size = 0;            // step: epochs between decays
  double gamma = 0.1;           // step, multistep: decay factor
  std::vector<int> milestones;  // multistep: epochs (strictly increasing) where lr *= gamma
  double min_lr = 0.0;          // cosine: lr reached at the last epoch
  int warmup_epochs = 0;        // linear warm-up epochs (0 = none)
  double warmup_start_factor = 0.1;
  bool operator==(const ScheduleConfig&) const = default;
};

// ---- training, statistics, output, sparsity ---------------------------------------------------

enum class DeviceChoice { Cpu, Cuda, Auto };

// What a step whose loss or gradient is not finite does (docs/config.md, training.on_nonfinite).
enum class NonFinitePolicy { Stop, SkipBatch };

// When a finite loss counts as diverged (docs/config.md, training.divergence).
struct DivergenceConfig {
  double factor = 100;  // stop when a batch's loss exceeds factor x ln(classes); 0 = off
  double max_loss = 0;  // stop when a batch's loss exceeds this; 0 = off
  bool operator==(const DivergenceConfig&) const = default;
};

struct TrainingConfig {
  int64_t batch_size = 0;
  int epochs = 0;
  uint64_t seed = 0;
  int threads = 0;  // CPU threads; 0 = all cores
  DeviceChoice device = DeviceChoice::Auto;
  bool drop_last = false;
  int eval_every = 1;  // epochs between test evaluations (the last epoch is always evaluated)
  DivergenceConfig divergence;
  NonFinitePolicy on_nonfinite = NonFinitePolicy::Stop;
  bool operator==(const TrainingConfig&) const = default;
};

struct ActivationStatsConfig {
  bool train_pass = true;   // accumulate a_f(x) over each epoch's own (train-mode) forward passes
  int exact_every = 0;      // exact eval-mode pass over the training set every k epochs; 0 = never
  bool exact_final = true;  // exact pass after the last epoch
  double threshold = 1e-12;
  bool operator==(const ActivationStatsConfig&) const = default;
};

struct StatisticsConfig {
  ActivationStatsConfig activation;
  double gamma_threshold = 1e-3;
  double selectivity_threshold = 1e-3;
  bool per_filter_final = true;  // write per-filter statistics after the last epoch
  bool operator==(const StatisticsConfig&) const = default;
};

enum class ProgressMode { Auto, Bar, Lines, None };

struct OutputConfig {
  std::string dir;           // default "runs/<name>"
  std::string name;          // default: the config file's name without ".json"
  int checkpoint_every = 1;  // epochs; 0 = only after the last epoch
  int keep_checkpoints = 2;  // newest checkpoints kept; 0 = keep all
  ProgressMode progress = ProgressMode::Auto;
  bool operator==(const OutputConfig&) const = default;
};

// Sparsity-aware training (docs/sparsity.md, "Skipping dead filters").
struct SparsityConfig {
  bool skip_dead = false;  // stop computing filters found dead: train the compacted network
  int skip_after = 3;      // ... once this many consecutive checks found them dead
  int check_every = 1;     // epochs between checks (each an exact eval-mode pass)
  int revival_every = 0;   // epochs between full-network passes that restore filters; 0 = never
  bool operator==(const SparsityConfig&) const = default;
};

struct ExperimentConfig {
  int version = kConfigVersion;
  std::string description;  // free text, optional
  DataConfig data;
  ModelConfig model;
  OptimizerConfig optimizer;
  RegularizationConfig regularization;
  ScheduleConfig schedule;
  TrainingConfig training;
  StatisticsConfig statistics;
  OutputConfig output;
  SparsityConfig sparsity;
  // Equal when to_json is: the schema's keys that apply, exactly.
  bool operator==(const ExperimentConfig& o) const;
};

// ---- parsing and writing ----------------------------------------------------------------------

struct ParseOptions {
  // Check that the dataset directory and its files exist. Off to parse a config for a machine
  // that has the data elsewhere (tests, inspecting a run's config.json).
  bool check_files = true;
  // Build model.layers (or the preset) for the data's input shape, so a layer that does not fit
  // is reported now, naming model.layers[i], rather than after the data has loaded.
  bool check_model = true;
};

// JSON nested deeper than kMaxJsonDepth (io/json_text.h) is refused (a config is about 5 levels
// deep); bounding it keeps every recursive walk of a parsed document off the stack's limit.

// Parses JSON text with parse_json_strict (io/json_text.h): a duplicate key in an object,
// nesting deeper than kMaxJsonDepth or a syntax error is a ConfigError naming `source` and,
// where it applies, the JSON path.
nlohmann::json parse_json_text(const std::string& text, const std::string& source);
// ConfigError naming `source` and the path when `value` nests deeper than `max_depth`; iterative.
void check_json_depth(const nlohmann::json& value, const std::string& source,
                      int max_depth = kMaxJsonDepth);

// Validates `raw` (strictly: unknown keys, types, ranges, keys that do not apply) and fills in
// every default. `source_name` prefixes error messages and, when it is a file name, gives the
// default output.name (its stem).
ExperimentConfig parse_experiment(const nlohmann::json& raw, const std::string& source_name,
                                  const ParseOptions& options = {});

// Reads a JSON file with parse_json_text; ConfigError when it cannot be read or is not valid.
nlohmann::json read_json_file(const std::string& path);

// read_json_file + apply_overrides (config/override.h) + parse_experiment.
ExperimentConfig load_experiment(const std::string& path,
                                 const std::vector<std::string>& overrides = {},
                                 const ParseOptions& options = {});

// The resolved config, every default written out; parse_experiment of it gives an equal config.
nlohmann::json to_json(const ExperimentConfig& config);

// The parts of the resolved config that change what training computes (see docs/config.md):
// not output, statistics, data.path, loader, threads, device, eval_every or description, and
// not training.epochs unless the schedule is cosine (its lr curve depends on it).
nlohmann::json training_relevant_json(const ExperimentConfig& config);
// 16 hex digits: FNV-1a 64 of training_relevant_json's canonical dump.
std::string config_fingerprint(const ExperimentConfig& config);
struct ConfigDifference {
  std::string path;  // dotted JSON path ("optimizer.lr", "optimizer.betas[0]"); "" = whole value
  nlohmann::json saved, requested;  // null where the key is absent on that side
};
// Where training_relevant_json of the two configs differs, in key order.
std::vector<ConfigDifference> training_differences(const ExperimentConfig& saved,
                                                   const ExperimentConfig& requested);
// ConfigError listing the differences when `requested` cannot resume a run of `saved`.
void check_resume_compatible(const ExperimentConfig& saved, const ExperimentConfig& requested);

// ---- names --------------------------------------------------------------------------------------

const char* data_kind_name(DataKind k);
const char* optimizer_name(OptimizerName n);
const char* reg_kind_name(RegKind k);
const char* schedule_kind_name(ScheduleKind k);
const char* device_choice_name(DeviceChoice d);
const char* nonfinite_policy_name(NonFinitePolicy p);
const char* progress_mode_name(ProgressMode p);

}  // namespace st
