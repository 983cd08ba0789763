#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm/gemm.h"
#include "config/override.h"
#include "eval/evaluate.h"
#include "io/checkpoint.h"
#include "nn/layer_json.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "run/run_files.h"
#include "run/run_state.h"
#include "sparsity/activation_pass.h"
#include "tensor/random.h"
#include "train/experiment_data.h"
#include "train/filter_skipping.h"
#include "train/progress.h"
#include "train/train_step.h"

namespace st {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::vector<LayerSpec> model_layers(const ModelConfig& config) {
  if (config.uses_preset()) return make_preset(config.preset, config.width);
  return layers_from_json(config.layers, "model.layers");
}

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

Schedule make_schedule(const ExperimentConfig& c) {
  Schedule s;
  s.kind = c.schedule.kind;
  s.base_lr = c.optimizer.hyper.lr;
  s.step_size = c.schedule.step_size > 0 ? c.schedule.step_size : 1;
  s.gamma = c.schedule.gamma;
  s.milestones.assign(c.schedule.milestones.begin(), c.schedule.milestones.end());
  s.total = std::max(1, c.training.epochs);
  s.min_lr = c.schedule.min_lr;
  s.warmup = c.schedule.warmup_epochs;
  s.warmup_start_factor = c.schedule.warmup_start_factor;
  return s;
}

std::set<ParamGroup> regularized_groups(const RegularizationConfig& r) {
  return std::set<ParamGroup>(r.groups.begin(), r.groups.end());
}

json selectivity_json(const SelectivitySummary& s) {
  return {{"live", s.live}, {"mean", s.mean}, {"p10", s.p10}, {"median", s.median}, {"p90", s.p90}};
}

// Per-layer counts for metrics.jsonl and the compact line.
void add_activation_stats(json& rec, const char* source, const std::vector<LayerStats>& stats) {
  json dead = json::object(), sel = json::object();
  int64_t total = 0;
  for (const LayerStats& l : stats) {
    dead[l.name] = l.dead_activation;
    sel[l.name] = selectivity_json(l.selectivity);
    total += l.dead_activation;
  }
  rec["dead"][source] = dead;
  rec["dead_total"][source] = total;
  rec["selectivity"][source] = sel;
}

std::string counts_text(const json& per_layer, int64_t total, int64_t filters) {
  std::ostringstream os;
  for (auto it = per_layer.begin(); it != per_layer.end(); ++it)
    os << (it == per_layer.begin() ? "" : " ") << it.value().get<int64_t>();
  os << " = " << total << "/" << filters;
  return os.str();
}

std::string epoch_line(const json& r, int epochs) {
  char head[256];
  std::snprintf(head, sizeof head, "epoch %3d/%d | train %.4f %5.1f%% | ", r["epoch"].get<int>(),
                epochs, r["train_loss"].get<double>(), 100 * r["train_acc"].get<double>());
  std::string s = head;
  if (r.contains("test_loss")) {
    char t[96];
    std::snprintf(t, sizeof t, "test %.4f %5.1f%% | ", r["test_loss"].get<double>(),
                  100 * r["test_acc"].get<double>());
    s += t;
  }
  const int64_t filters = r["filters_total"].get<int64_t>();
  for (const char* src : {"exact_eval", "train_pass"}) {
    if (!r["dead"].contains(src)) continue;
    s += std::string("dead[") + src + "] " +
         counts_text(r["dead"][src], r["dead_total"][src].get<int64_t>(), filters) + " | ";
  }
  s += "dead[gamma] " +
       counts_text(r["dead"]["gamma"], r["dead_total"]["gamma"].get<int64_t>(), filters);
  if (r.contains("skip_dead"))
    s += " | skipped " + std::to_string(r["skip_dead"]["skipped_total"].get<int64_t>());
  char tail[96];
  std::snprintf(tail, sizeof tail, " | lr %.2e | %.1fs %.0f img/s", r["lr"].get<double>(),
                r["epoch_time_s"].get<double>(), r["images_per_sec"].get<double>());
  return s + tail;
}

// A training run, from its request to its final files. The constructor sets the run up (config,
// backend, data, model, optimizer, skipper, checkpoint to resume from, run directory); each
// epoch then trains (train_epoch), evaluates (evaluate_held_out), measures the sparsity of the
// full network (measure_sparsity) and writes its metrics line and checkpoint
// (write_epoch_outputs); write_final_outputs writes filters_final.json and summary.json, and
// write_diverged_summary the summary of a run stopped by the divergence checks.
class TrainingRun {
 public:
  explicit TrainingRun(const TrainRequest& req);

  int first_epoch() const { return start_epoch_; }
  int epochs() const { return cfg().training.epochs; }
  void run_epoch(int epoch);
  TrainResult write_final_outputs();
  void write_diverged_summary(const TrainingDiverged& e);

 private:
  // What one epoch's training steps add up to.
  struct EpochTraining {
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, skipped = 0;
    double seconds = 0;
    // The channels this epoch computed (a copy: a check at the end may change the network);
    // null `computed` when the full network trained.
    BlockChannels computed_channels;
    const BlockChannels* computed = nullptr;
  };
  struct EpochStats {
    std::vector<LayerStats> train_pass, exact;
  };

  const ExperimentConfig& cfg() const { return run_.config; }
  const RunPaths& paths() const { return run_.paths; }
  // The network and optimizer training runs on: the compacted ones while filters are skipped.
  Model& net() { return skipper_ ? skipper_->model() : *model_; }
  Optimizer& net_optimizer() { return skipper_ ? skipper_->optimizer() : *opt_; }

  void set_up(const TrainRequest& req);
  void build_model_and_optimizer();
  void restore_or_prepare(const TrainRequest& req);
  void prepare_run_directory();
  void announce();

  EpochTraining train_epoch(int epoch, double lr);
  void evaluate_held_out(int epoch, json& rec);
  EpochStats measure_sparsity(int epoch, const EpochTraining& t, json& rec);
  void write_epoch_outputs(int epoch, const EpochStats& stats, const EpochTraining& t,
                           const json& rec);
  json summary_base(const char* status);

  const Clock::time_point run_start_ = Clock::now();
  ResolvedRun run_;
  Progress progress_;
  std::unique_ptr<Backend> backend_;
  ExperimentData data_;
  // The full network. With sparsity.skip_dead, training may run on a compacted copy
  // (skipper_->model()); model_ then stays the reference that statistics and checkpoints use.
  std::unique_ptr<Model> model_;
  std::unique_ptr<Optimizer> opt_;
  std::optional<FilterSkipper> skipper_;
  Schedule schedule_;
  StatsThresholds thresholds_;
  int start_epoch_ = 0;
  double elapsed_before_ = 0;
  int64_t filters_total_ = 0;
  int64_t eval_batch_ = 0;

  std::unique_ptr<data::BatchLoader> loader_;
  std::unique_ptr<StepState> step_;
  std::optional<ActivationRecorder> train_pass_;  // built with the model
  std::vector<Tensor> scratch_;
  json last_record_, final_filters_;
  double best_test_acc_ = -1;
};

TrainingRun::TrainingRun(const TrainRequest& req)
    : run_(resolve_run(req)), progress_(run_.config.output.progress, req.quiet) {
  try {
    set_up(req);
  } catch (...) {
    // A new run that could not start leaves no directory behind (a bad dataset, a device that
    // is missing); a resumed run's directory is never touched here.
    if (!run_.resuming && run_.created_dir) {
      std::error_code ec;
      fs::remove_all(paths().dir, ec);
    }
    throw;
  }
}

void TrainingRun::set_up(const TrainRequest& req) {
  set_cpu_threads(cfg().training.threads);
  backend_ = make_backend(device_choice_name(cfg().training.device));
  data_ = load_experiment_data(cfg().data);
  build_model_and_optimizer();
  restore_or_prepare(req);
  prepare_run_directory();
  for (const ConvBNReLU& b : model_->conv_bn_relu_blocks()) filters_total_ += b.channels;
  announce();
  thresholds_ = {cfg().statistics.activation.threshold, cfg().statistics.gamma_threshold,
                 cfg().statistics.selectivity_threshold};
  eval_batch_ = std::max<int64_t>(cfg().training.batch_size, 256);
  loader_ = std::make_unique<data::BatchLoader>(data_.train,
                                                train_loader_options(cfg(), data_.normalization));
  train_pass_.emplace(make_block_recorder(*model_));
  step_ = std::make_unique<StepState>(
      *backend_, step_checks(cfg().training, model_->classes(), backend_->device()));
}

void TrainingRun::build_model_and_optimizer() {
  const data::Dataset& train = data_.train;
  const ExperimentConfig& c = cfg();
  model_ = std::make_unique<Model>(model_layers(c.model),
                                   InputShape{train.channels, train.height, train.width},
                                   train.classes, *backend_);
  model_->init_parameters(c.training.seed);
  model_->set_dropout_seed(splitmix64(c.training.seed ^ 0xD40F0017ull));
  const double lambda = c.regularization.kind == RegKind::None ? 0 : c.regularization.lambda;
  const auto make_optimizer = [&c, lambda](const Model& m) {
    return std::make_unique<Optimizer>(c.optimizer.hyper, c.regularization.kind, lambda,
                                       regularized_groups(c.regularization), m);
  };
  opt_ = make_optimizer(*model_);
  schedule_ = make_schedule(c);
  if (c.sparsity.skip_dead)
    skipper_.emplace(*model_, *opt_, make_optimizer, c.sparsity.skip_after,
                     c.statistics.activation.threshold);
}

// Loads the last checkpoint of a resumed run, or hands a new run's model to prepare_model.
void TrainingRun::restore_or_prepare(const TrainRequest& req) {
  if (run_.checkpoint) {
    const Checkpoint& ck = *run_.checkpoint;
    ck.load_model_state(*model_);
    ck.load_optimizer_state(*opt_);
    start_epoch_ = run_.state.epoch;
    model_->set_dropout_calls(run_.state.dropout_calls);
    elapsed_before_ = run_.state.elapsed_s;
    if (skipper_ && !run_.state.skip_dead.is_null()) skipper_->restore(run_.state.skip_dead);
  } else if (!run_.resuming && req.prepare_model) {
    req.prepare_model(*model_);
  }
}

void TrainingRun::prepare_run_directory() {
  if (run_.resuming) {
    truncate_metrics(paths().metrics(), start_epoch_);
  } else {
    remove_old_run(paths());
  }
  fs::create_directories(paths().checkpoints_dir());
  fs::create_directories(paths().stats_dir());
  write_json_atomic(paths().config(), to_json(cfg()));
  for (const std::string& note : run_.notes) progress_.line("resume: " + note);
}

void TrainingRun::announce() {
  const data::Dataset& train = data_.train;
  progress_.line(
      "run " + paths().dir + ": " + train.description + ", " + std::to_string(train.size()) +
      " training images, " + std::to_string(model_->num_params()) + " parameters, " +
      std::to_string(filters_total_) + " filters in " +
      std::to_string(model_->conv_bn_relu_blocks().size()) + " conv-BN-ReLU blocks, " +
      backend_->name() +
      (backend_->device() == Device::CPU ? " (kernels " + cpu::cpu_kernel_description() + ")"
                                         : std::string()) +
      (start_epoch_ > 0 ? ", resuming after epoch " + std::to_string(start_epoch_)
                        : std::string()));
}

void TrainingRun::run_epoch(int epoch) {
  const auto epoch_start = Clock::now();
  const double lr = scheduled_lr(schedule_, epoch);
  const EpochTraining t = train_epoch(epoch, lr);

  json rec;
  rec["epoch"] = epoch + 1;
  rec["lr"] = lr;
  rec["train_loss"] = t.seen ? t.loss_sum / static_cast<double>(t.seen) : 0.0;
  rec["train_acc"] = t.seen ? static_cast<double>(t.correct) / static_cast<double>(t.seen) : 0.0;
  if (cfg().training.on_nonfinite == NonFinitePolicy::SkipBatch) rec["skipped_batches"] = t.skipped;
  evaluate_held_out(epoch, rec);
  const EpochStats stats = measure_sparsity(epoch, t, rec);
  rec["epoch_time_s"] = seconds_since(epoch_start);
  rec["train_time_s"] = t.seconds;
  rec["elapsed_s"] = elapsed_before_ + seconds_since(run_start_);
  rec["images_per_sec"] = t.seconds > 0 ? static_cast<double>(t.seen) / t.seconds : 0.0;
  rec["loader_wait_fraction"] = t.seconds > 0 ? loader_->wait_seconds() / t.seconds : 0.0;
  write_epoch_outputs(epoch, stats, t, rec);
}

// The epoch's training steps. Loss and accuracy are summed on the host from what each step
// returns; the divergence checks run inside train_step.
TrainingRun::EpochTraining TrainingRun::train_epoch(int epoch, double lr) {
  const auto start = Clock::now();
  const double decay_lr = cfg().regularization.decay_lr(lr, cfg().optimizer.hyper.lr);
  data::BatchLoader& loader = *loader_;
  loader.start_epoch(epoch);
  loader.reset_wait_seconds();
  train_pass_->reset();
  progress_.epoch_begin(epoch + 1, epochs(), loader.batches_per_epoch());
  EpochTraining t;
  if (skipper_) t.computed_channels = skipper_->block_channels();
  t.computed = skipper_ && skipper_->skipping() ? &t.computed_channels : nullptr;
  Model& network = net();
  Optimizer& optimizer = net_optimizer();
  const bool record = cfg().statistics.activation.train_pass;
  const auto record_maxima = [&](const Model& m) {
    record_block_maxima(m, *train_pass_, scratch_, t.computed);
  };
  int64_t done = 0;
  while (auto batch = loader.next()) {
    const StepInput in{batch->images, batch->labels, lr, decay_lr, epoch + 1, done + 1};
    const StepResult r = train_step(*step_, network, optimizer, in,
                                    record ? std::function<void(const Model&)>(record_maxima)
                                           : std::function<void(const Model&)>());
    ++done;
    if (r.skipped) {
      ++t.skipped;
      progress_.line("skipped batch " + std::to_string(done) + ": " + r.skip_reason);
      continue;
    }
    t.loss_sum += r.loss * static_cast<double>(r.images);
    t.correct += r.correct;
    t.seen += r.images;
    progress_.batch_done(done, t.seen ? t.loss_sum / static_cast<double>(t.seen) : 0.0);
  }
  backend_->synchronize();
  if (done > 0 && t.skipped == done)
    throw TrainingDiverged("training diverged at epoch " + std::to_string(epoch + 1) +
                               ": every one of its " + std::to_string(done) +
                               " batches was skipped (training.on_nonfinite \"skip_batch\")",
                           {{"epoch", epoch + 1},
                            {"batch", done},
                            {"reason", "all_batches_skipped"},
                            {"message", "every batch of the epoch was skipped"}});
  t.seconds = seconds_since(start);
  return t;
}

void TrainingRun::evaluate_held_out(int epoch, json& rec) {
  const bool last_epoch = epoch + 1 == epochs();
  const bool eval_due = last_epoch || (epoch + 1) % std::max(1, cfg().training.eval_every) == 0;
  if (eval_due && data_.validation) {
    const EvalResult v = evaluate(net(), *data_.validation, data_.normalization, eval_batch_);
    rec["val_loss"] = v.loss;
    rec["val_acc"] = v.accuracy();
  }
  if (eval_due && data_.test) {
    const EvalResult r = evaluate(net(), *data_.test, data_.normalization, eval_batch_);
    rec["test_loss"] = r.loss;
    rec["test_acc"] = r.accuracy();
    best_test_acc_ = std::max(best_test_acc_, r.accuracy());
  }
}

// Statistics, always of the full network: BN scale always; activations from the training
// passes and/or exactly. Skipped filters count with the BN values they were skipped with
// and an activation of 0, which is what the trained network computes for them. A check of
// sparsity.skip_dead may then change the set of skipped filters.
TrainingRun::EpochStats TrainingRun::measure_sparsity(int epoch, const EpochTraining& t,
                                                      json& rec) {
  const ExperimentConfig& c = cfg();
  Model& model = *model_;
  const bool last_epoch = epoch + 1 == epochs();
  if (skipper_) skipper_->sync_full();
  rec["filters_total"] = filters_total_;
  for (const ConvBNReLU& b : model.conv_bn_relu_blocks()) rec["channels"][b.name] = b.channels;
  json gamma_dead = json::object();
  int64_t gamma_total = 0;
  {
    auto gammas = block_bn_values(model, ".weight");
    auto counts = count_dead_by_gamma(gammas, thresholds_.gamma);
    for (std::size_t i = 0; i < counts.size(); ++i) {
      gamma_dead[model.conv_bn_relu_blocks()[i].name] = counts[i];
      gamma_total += counts[i];
    }
  }
  rec["dead"]["gamma"] = gamma_dead;
  rec["dead_total"]["gamma"] = gamma_total;
  EpochStats stats;
  if (c.statistics.activation.train_pass) {
    stats.train_pass = block_stats(model, *train_pass_, thresholds_);
    add_activation_stats(rec, "train_pass", stats.train_pass);
  }
  const int every = c.statistics.activation.exact_every;
  const bool skip_check = skipper_ && (epoch + 1) % c.sparsity.check_every == 0;
  // A revival check measures the full network, skipped filters included.
  const bool revival = skip_check && skipper_->skipping() && c.sparsity.revival_every > 0 &&
                       (epoch + 1) % c.sparsity.revival_every == 0;
  if ((every > 0 && (epoch + 1) % every == 0) ||
      (last_epoch && c.statistics.activation.exact_final) || skip_check) {
    const auto t0 = Clock::now();
    ActivationRecorder exact = make_block_recorder(model);
    if (revival)
      record_exact_pass(model, data_.train, data_.normalization, eval_batch_, exact);
    else
      record_exact_pass(net(), data_.train, data_.normalization, eval_batch_, exact, t.computed);
    stats.exact = block_stats(model, exact, thresholds_);
    add_activation_stats(rec, "exact_eval", stats.exact);
    rec["exact_pass_s"] = seconds_since(t0);
  }
  if (skipper_) {
    // Before the check: the network this epoch trained.
    json skip = {{"skipped_total", skipper_->skipped_total()},
                 {"params", net().num_params()},
                 {"flops_per_image", net().flops_per_image()}};
    for (std::size_t b = 0; b < model.conv_bn_relu_blocks().size(); ++b)
      skip["skipped"][model.conv_bn_relu_blocks()[b].name] = skipper_->skipped(b);
    if (skip_check) {
      skip["revival_check"] = revival;
      if (skipper_->record_check(stats.exact, epoch + 1)) skipper_->rebuild();
      skip["skipped_total_next"] = skipper_->skipped_total();
    }
    rec["skip_dead"] = skip;
  }
  return stats;
}

// Metrics first, then the checkpoint: a run killed in between redoes this epoch on resume and
// rewrites the same line.
void TrainingRun::write_epoch_outputs(int epoch, const EpochStats& stats, const EpochTraining& t,
                                      const json& rec) {
  const ExperimentConfig& c = cfg();
  const bool last_epoch = epoch + 1 == epochs();
  append_jsonl(paths().metrics(), rec);
  progress_.line(epoch_line(rec, epochs()));
  last_record_ = rec;

  if (last_epoch && c.statistics.per_filter_final) {
    const bool exact = !stats.exact.empty();
    if (exact || !stats.train_pass.empty())
      final_filters_ =
          filters_json(exact ? stats.exact : stats.train_pass, *model_,
                       exact ? "exact_eval" : "train_pass", epoch + 1, thresholds_, t.computed);
  }
  // Before the final checkpoint: a run killed in between redoes the last epoch on resume.
  if (!final_filters_.is_null()) write_json_atomic(paths().filters_final(), final_filters_);
  const int ck_every = c.output.checkpoint_every;
  if (last_epoch || (ck_every > 0 && (epoch + 1) % ck_every == 0)) {
    json meta = {
        {"epoch", epoch + 1},
        {"dropout_calls", model_->dropout_calls()},
        {"elapsed_s", rec["elapsed_s"]},
        {"config", to_json(c)},
        {"config_fingerprint", config_fingerprint(c)},
        {"normalization", {{"mean", data_.normalization.mean}, {"std", data_.normalization.std}}},
        {"last_metrics", rec}};
    if (skipper_) meta["skip_dead"] = skipper_->state_json();
    write_checkpoint(paths(), epoch + 1, *model_, *opt_, meta, c.output.keep_checkpoints);
  }
}

// "final" is the last epoch that finished, in this session or (after a resume that trained
// nothing, or diverged at once) an earlier one; null when none did.
json TrainingRun::summary_base(const char* status) {
  if (last_record_.is_null()) {
    std::vector<json> records = truncate_metrics(paths().metrics(), epochs());
    if (!records.empty()) last_record_ = records.back();
  }
  json summary = {{"status", status},
                  {"run_dir", paths().dir},
                  {"epochs", epochs()},
                  {"config_fingerprint", config_fingerprint(cfg())},
                  {"params", model_->num_params()},
                  {"flops_per_image", model_->flops_per_image()},
                  {"filters_total", filters_total_},
                  {"final", last_record_}};
  if (best_test_acc_ >= 0) summary["best_test_acc_this_session"] = best_test_acc_;
  return summary;
}

TrainResult TrainingRun::write_final_outputs() {
  json summary = summary_base("completed");
  if (skipper_)
    summary["skip_dead"] = {{"skipped_total", skipper_->skipped_total()},
                            {"params", skipper_->model().num_params()},
                            {"flops_per_image", skipper_->model().flops_per_image()}};
  write_summary(paths().summary(), summary);
  return {paths().dir, summary};
}

// The checkpoints and metrics of the epochs before the divergence stay as they are.
void TrainingRun::write_diverged_summary(const TrainingDiverged& e) {
  progress_.epoch_end();
  json summary = summary_base("diverged");
  summary["diverged"] = e.details();
  write_summary(paths().summary(), summary);
}

}  // namespace

TrainResult run_training(const TrainRequest& req) {
  TrainingRun run(req);
  try {
    for (int epoch = run.first_epoch(); epoch < run.epochs(); ++epoch) run.run_epoch(epoch);
  } catch (const TrainingDiverged& e) {
    run.write_diverged_summary(e);
    throw;
  }
  return run.write_final_outputs();
}

}  // namespace st
