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

}  // namespace

TrainResult run_training(const TrainRequest& req) {
  const auto run_start = Clock::now();
  ResolvedRun run = resolve_run(req);
  const ExperimentConfig& cfg = run.config;
  const RunPaths& paths = run.paths;
  Progress progress(cfg.output.progress, req.quiet);

  set_cpu_threads(cfg.training.threads);
  std::unique_ptr<Backend> backend = make_backend(device_choice_name(cfg.training.device));
  ExperimentData data = load_experiment_data(cfg.data);
  const data::Dataset& train = data.train;

  // The full network. With sparsity.skip_dead, training may run on a compacted copy
  // (skipper->model()); `model` then stays the reference that statistics and checkpoints use.
  Model model(model_layers(cfg.model), {train.channels, train.height, train.width}, train.classes,
              *backend);
  model.init_parameters(cfg.training.seed);
  model.set_dropout_seed(splitmix64(cfg.training.seed ^ 0xD40F0017ull));
  const double lambda = cfg.regularization.kind == RegKind::None ? 0 : cfg.regularization.lambda;
  const auto make_optimizer = [&cfg, lambda](const Model& m) {
    return std::make_unique<Optimizer>(cfg.optimizer.hyper, cfg.regularization.kind, lambda,
                                       regularized_groups(cfg.regularization), m);
  };
  std::unique_ptr<Optimizer> full_opt = make_optimizer(model);
  Optimizer& opt = *full_opt;
  const Schedule schedule = make_schedule(cfg);
  std::optional<FilterSkipper> skipper;
  if (cfg.sparsity.skip_dead)
    skipper.emplace(model, opt, make_optimizer, cfg.sparsity.skip_after,
                    cfg.statistics.activation.threshold);

  int start_epoch = 0;
  double elapsed_before = 0;
  if (run.checkpoint) {
    const Checkpoint& ck = *run.checkpoint;
    ck.load_model_state(model);
    ck.load_optimizer_state(opt);
    start_epoch = run.state.epoch;
    model.set_dropout_calls(run.state.dropout_calls);
    elapsed_before = run.state.elapsed_s;
    if (skipper && !run.state.skip_dead.is_null()) skipper->restore(run.state.skip_dead);
  } else if (!run.resuming && req.prepare_model) {
    req.prepare_model(model);
  }
  if (run.resuming) {
    truncate_metrics(paths.metrics(), start_epoch);
  } else {
    remove_old_run(paths);
  }
  fs::create_directories(paths.checkpoints_dir());
  fs::create_directories(paths.stats_dir());
  write_json_atomic(paths.config(), to_json(cfg));
  for (const std::string& note : run.notes) progress.line("resume: " + note);

  int64_t filters_total = 0;
  for (const ConvBNReLU& b : model.conv_bn_relu_blocks()) filters_total += b.channels;
  progress.line(
      "run " + paths.dir + ": " + train.description + ", " + std::to_string(train.size()) +
      " training images, " + std::to_string(model.num_params()) + " parameters, " +
      std::to_string(filters_total) + " filters in " +
      std::to_string(model.conv_bn_relu_blocks().size()) + " conv-BN-ReLU blocks, " +
      backend->name() +
      (start_epoch > 0 ? ", resuming after epoch " + std::to_string(start_epoch) : std::string()));

  const StatsThresholds thresholds{cfg.statistics.activation.threshold,
                                   cfg.statistics.gamma_threshold,
                                   cfg.statistics.selectivity_threshold};
  data::BatchLoader loader(train, train_loader_options(cfg, data.normalization));
  ActivationRecorder train_pass = make_block_recorder(model);
  std::vector<Tensor> scratch;
  Tensor probs, dlogits;
  const int epochs = cfg.training.epochs;
  json last_record, final_filters;
  double best_test_acc = -1;

  for (int epoch = start_epoch; epoch < epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const double lr = scheduled_lr(schedule, epoch);
    const double decay_lr = cfg.regularization.decay_lr(lr, cfg.optimizer.hyper.lr);
    loader.start_epoch(epoch);
    loader.reset_wait_seconds();
    train_pass.reset();
    progress.epoch_begin(epoch + 1, epochs, loader.batches_per_epoch());
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, done = 0;
    Model& net = skipper ? skipper->model() : model;
    Optimizer& net_opt = skipper ? skipper->optimizer() : opt;
    // The channels this epoch computes (a copy: a check at the end may change the network).
    const BlockChannels computed_channels = skipper ? skipper->block_channels() : BlockChannels{};
    const BlockChannels* computed = skipper && skipper->skipping() ? &computed_channels : nullptr;
    while (auto batch = loader.next()) {
      const Tensor& logits = net.forward(batch->images, /*train=*/true);
      Tensor labels = batch->labels.to(logits.device());
      if (probs.shape() != logits.shape()) {
        probs = Tensor(logits.shape(), DType::F32, logits.device());
        dlogits = Tensor(logits.shape(), DType::F32, logits.device());
      }
      const double loss = backend->softmax_xent_forward(logits, labels, probs);
      if (!std::isfinite(loss))
        throw std::runtime_error("training diverged: loss is " + std::to_string(loss) +
                                 " at epoch " + std::to_string(epoch + 1) + ", batch " +
                                 std::to_string(done + 1) + " (try a lower optimizer.lr)");
      correct += backend->count_correct(logits, labels);
      if (cfg.statistics.activation.train_pass)
        record_block_maxima(net, train_pass, scratch, computed);
      backend->softmax_xent_backward(probs, labels, dlogits);
      net.backward(dlogits);
      net_opt.step(net, lr, decay_lr);
      loss_sum += loss * static_cast<double>(batch->size());
      seen += batch->size();
      progress.batch_done(++done, loss_sum / static_cast<double>(seen));
    }
    backend->synchronize();
    const double train_time = seconds_since(epoch_start);

    json rec;
    rec["epoch"] = epoch + 1;
    rec["lr"] = lr;
    rec["train_loss"] = seen ? loss_sum / static_cast<double>(seen) : 0.0;
    rec["train_acc"] = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
    const bool last_epoch = epoch + 1 == epochs;
    const bool eval_due = last_epoch || (epoch + 1) % std::max(1, cfg.training.eval_every) == 0;
    const int64_t eval_batch = std::max<int64_t>(cfg.training.batch_size, 256);
    if (eval_due && data.validation) {
      const EvalResult v = evaluate(net, *data.validation, data.normalization, eval_batch);
      rec["val_loss"] = v.loss;
      rec["val_acc"] = v.accuracy();
    }
    if (eval_due && data.test) {
      const EvalResult t = evaluate(net, *data.test, data.normalization, eval_batch);
      rec["test_loss"] = t.loss;
      rec["test_acc"] = t.accuracy();
      best_test_acc = std::max(best_test_acc, t.accuracy());
    }

    // Statistics, always of the full network: BN scale always; activations from the training
    // passes and/or exactly. Skipped filters count with the BN values they were skipped with
    // and an activation of 0, which is what the trained network computes for them.
    if (skipper) skipper->sync_full();
    rec["filters_total"] = filters_total;
    for (const ConvBNReLU& b : model.conv_bn_relu_blocks()) rec["channels"][b.name] = b.channels;
    json gamma_dead = json::object();
    int64_t gamma_total = 0;
    {
      auto gammas = block_bn_values(model, ".weight");
      auto counts = count_dead_by_gamma(gammas, thresholds.gamma);
      for (std::size_t i = 0; i < counts.size(); ++i) {
        gamma_dead[model.conv_bn_relu_blocks()[i].name] = counts[i];
        gamma_total += counts[i];
      }
    }
    rec["dead"]["gamma"] = gamma_dead;
    rec["dead_total"]["gamma"] = gamma_total;
    std::vector<LayerStats> train_stats, exact_stats;
    if (cfg.statistics.activation.train_pass) {
      train_stats = block_stats(model, train_pass, thresholds);
      add_activation_stats(rec, "train_pass", train_stats);
    }
    const int every = cfg.statistics.activation.exact_every;
    const bool skip_check = skipper && (epoch + 1) % cfg.sparsity.check_every == 0;
    // A revival check measures the full network, skipped filters included.
    const bool revival = skip_check && skipper->skipping() && cfg.sparsity.revival_every > 0 &&
                         (epoch + 1) % cfg.sparsity.revival_every == 0;
    if ((every > 0 && (epoch + 1) % every == 0) ||
        (last_epoch && cfg.statistics.activation.exact_final) || skip_check) {
      const auto t0 = Clock::now();
      ActivationRecorder exact = make_block_recorder(model);
      if (revival)
        record_exact_pass(model, train, data.normalization, eval_batch, exact);
      else
        record_exact_pass(net, train, data.normalization, eval_batch, exact, computed);
      exact_stats = block_stats(model, exact, thresholds);
      add_activation_stats(rec, "exact_eval", exact_stats);
      rec["exact_pass_s"] = seconds_since(t0);
    }
    if (skipper) {
      json skip = {{"skipped_total", skipper->skipped_total()},
                   {"params", net.num_params()},
                   {"flops_per_image", net.flops_per_image()}};
      for (std::size_t b = 0; b < model.conv_bn_relu_blocks().size(); ++b)
        skip["skipped"][model.conv_bn_relu_blocks()[b].name] = skipper->skipped(b);
      if (skip_check) {
        skip["revival_check"] = revival;
        if (skipper->record_check(exact_stats, epoch + 1)) skipper->rebuild();
        skip["skipped_total_next"] = skipper->skipped_total();
      }
      rec["skip_dead"] = skip;
    }
    const double epoch_time = seconds_since(epoch_start);
    rec["epoch_time_s"] = epoch_time;
    rec["train_time_s"] = train_time;
    rec["elapsed_s"] = elapsed_before + seconds_since(run_start);
    rec["images_per_sec"] = train_time > 0 ? static_cast<double>(seen) / train_time : 0.0;
    rec["loader_wait_fraction"] = train_time > 0 ? loader.wait_seconds() / train_time : 0.0;

    // metrics first, then the checkpoint: a run killed in between redoes this epoch
    // on resume and rewrites the same line.
    append_jsonl(paths.metrics(), rec);
    progress.line(epoch_line(rec, epochs));
    last_record = rec;

    if (last_epoch && cfg.statistics.per_filter_final) {
      const bool exact = !exact_stats.empty();
      if (exact || !train_stats.empty())
        final_filters =
            filters_json(exact ? exact_stats : train_stats, model,
                         exact ? "exact_eval" : "train_pass", epoch + 1, thresholds, computed);
    }
    // Before the final checkpoint: a run killed in between redoes the last epoch on resume.
    if (!final_filters.is_null()) write_json_atomic(paths.filters_final(), final_filters);
    const int ck_every = cfg.output.checkpoint_every;
    if (last_epoch || (ck_every > 0 && (epoch + 1) % ck_every == 0)) {
      json meta = {
          {"epoch", epoch + 1},
          {"dropout_calls", model.dropout_calls()},
          {"elapsed_s", rec["elapsed_s"]},
          {"config", to_json(cfg)},
          {"config_fingerprint", config_fingerprint(cfg)},
          {"normalization", {{"mean", data.normalization.mean}, {"std", data.normalization.std}}},
          {"last_metrics", rec}};
      if (skipper) meta["skip_dead"] = skipper->state_json();
      write_checkpoint(paths, epoch + 1, model, opt, meta, cfg.output.keep_checkpoints);
    }
  }

  if (last_record.is_null()) {
    // Nothing left to train: the run was already complete.
    std::vector<json> records = truncate_metrics(paths.metrics(), epochs);
    if (!records.empty()) last_record = records.back();
  }
  json summary = {{"status", "completed"},
                  {"run_dir", paths.dir},
                  {"epochs", epochs},
                  {"config_fingerprint", config_fingerprint(cfg)},
                  {"params", model.num_params()},
                  {"flops_per_image", model.flops_per_image()},
                  {"filters_total", filters_total},
                  {"final", last_record}};
  if (best_test_acc >= 0) summary["best_test_acc_this_session"] = best_test_acc;
  if (skipper)
    summary["skip_dead"] = {{"skipped_total", skipper->skipped_total()},
                            {"params", skipper->model().num_params()},
                            {"flops_per_image", skipper->model().flops_per_image()}};
  write_summary(paths.summary(), summary);
  return {paths.dir, summary};
}

}  // namespace st
