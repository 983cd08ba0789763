// ExperimentConfig -> JSON (the resolved config a run saves), fingerprints and resume checks.
#include <cstdio>

#include "config/experiment.h"
#include "config/json_reader.h"
#include "config/names.h"

namespace st {

namespace {

using nlohmann::json;

json normalize_json(const NormalizeConfig& n) {
  if (n.mode == NormalizeMode::None) return "none";
  if (n.mode == NormalizeMode::Computed) return "computed";
  return {{"mean", n.mean}, {"std", n.std}};
}

json data_json(const DataConfig& d) {
  json j = {{"kind", data_kind_name(d.kind)},
            {"train_subset", d.train_subset},
            {"subset_seed", d.subset_seed},
            {"subset_mode", d.subset_first ? "first" : "stratified"},
            {"validation_split", d.validation_split},
            {"augmentation",
             {{"random_crop_padding", d.augmentation.random_crop_padding},
              {"horizontal_flip", d.augmentation.horizontal_flip},
              {"normalize", normalize_json(d.augmentation.normalize)}}},
            {"loader", {{"prefetch", d.loader.prefetch}}}};
  if (d.kind != DataKind::Synthetic) j["path"] = d.path;
  if (d.kind == DataKind::Cifar100) j["label"] = table_name(cifar100_label_table(), d.label);
  if (d.kind == DataKind::ImageFolder) {
    const ImageFolderOptions& o = d.image_folder;
    j["image_folder"] = {
        {"channels", o.channels}, {"size", {o.height, o.width}}, {"resize", o.resize}};
  }
  if (d.kind == DataKind::Synthetic) {
    const SyntheticOptions& o = d.synthetic;
    j["synthetic"] = {{"train_size", o.train_size}, {"test_size", o.test_size},
                      {"channels", o.channels},     {"height", o.height},
                      {"width", o.width},           {"classes", o.classes},
                      {"noise", o.noise},           {"seed", o.seed}};
  }
  return j;
}

json model_json(const ModelConfig& m) {
  if (m.uses_preset()) return {{"preset", m.preset}, {"width", m.width}};
  return {{"layers", m.layers}};
}

json optimizer_json(const OptimizerConfig& o) {
  const OptimHyper& h = o.hyper;
  json j = {{"name", optimizer_name(o.name)}, {"lr", h.lr}};
  switch (o.name) {
    case OptimizerName::SGD:
      j.update({{"momentum", h.momentum}, {"dampening", h.dampening}, {"nesterov", h.nesterov}});
      break;
    case OptimizerName::Adam:
    case OptimizerName::AdamW:
      j.update({{"betas", {h.beta1, h.beta2}}, {"eps", h.eps}, {"amsgrad", h.amsgrad}});
      break;
    case OptimizerName::AdaGrad:
      j.update({{"lr_decay", h.lr_decay},
                {"initial_accumulator", h.initial_accumulator},
                {"eps", h.eps}});
      break;
    case OptimizerName::RMSProp:
      j.update(
          {{"alpha", h.alpha}, {"eps", h.eps}, {"momentum", h.momentum}, {"centered", h.centered}});
      break;
    case OptimizerName::AdaDelta:
      j.update({{"rho", h.rho}, {"eps", h.eps}});
      break;
    case OptimizerName::AdaMax:
      j.update({{"betas", {h.beta1, h.beta2}}, {"eps", h.eps}});
      break;
  }
  return j;
}

json regularization_json(const RegularizationConfig& r) {
  json j = {{"kind", reg_kind_name(r.kind)}, {"lambda", r.lambda}};
  if (r.kind == RegKind::None) return j;
  json groups = json::array();
  for (ParamGroup g : r.groups) groups.push_back(param_group_name(g));
  j["groups"] = groups;
  if (r.kind == RegKind::Decoupled) j["scale_with_lr_schedule"] = r.scale_with_lr_schedule;
  return j;
}

json schedule_json(const ScheduleConfig& s) {
  json j = {{"kind", schedule_kind_name(s.kind)},
            {"warmup_epochs", s.warmup_epochs},
            {"warmup_start_factor", s.warmup_start_factor}};
  if (s.kind == ScheduleKind::Step) j.update({{"step_size", s.step_size}, {"gamma", s.gamma}});
  if (s.kind == ScheduleKind::MultiStep) {
    j.update({{"milestones", s.milestones}, {"gamma", s.gamma}});
  }
  if (s.kind == ScheduleKind::Cosine) j["min_lr"] = s.min_lr;
  return j;
}

json training_json(const TrainingConfig& t) {
  return {{"batch_size", t.batch_size},
          {"epochs", t.epochs},
          {"seed", t.seed},
          {"threads", t.threads},
          {"device", device_choice_name(t.device)},
          {"drop_last", t.drop_last},
          {"eval_every", t.eval_every}};
}

json statistics_json(const StatisticsConfig& s) {
  return {{"activation",
           {{"train_pass", s.activation.train_pass},
            {"exact_every", s.activation.exact_every},
            {"exact_final", s.activation.exact_final},
            {"threshold", s.activation.threshold}}},
          {"gamma_threshold", s.gamma_threshold},
          {"selectivity_threshold", s.selectivity_threshold},
          {"per_filter_final", s.per_filter_final}};
}

json output_json(const OutputConfig& o) {
  return {{"dir", o.dir},
          {"name", o.name},
          {"checkpoint_every", o.checkpoint_every},
          {"keep_checkpoints", o.keep_checkpoints},
          {"progress", progress_mode_name(o.progress)}};
}

json sparsity_json(const SparsityConfig& s) {
  return {{"skip_dead", s.skip_dead},
          {"skip_after", s.skip_after},
          {"check_every", s.check_every},
          {"revival_every", s.revival_every}};
}

void collect_differences(const json& a, const json& b, const std::string& path,
                         std::vector<ConfigDifference>& out) {
  if (a.is_object() && b.is_object()) {
    json keys = a;
    keys.update(b);  // the union of both key sets, in key order
    for (auto it = keys.begin(); it != keys.end(); ++it) {
      const std::string child = json_path_join(path, it.key());
      json av = a.contains(it.key()) ? a[it.key()] : json();
      json bv = b.contains(it.key()) ? b[it.key()] : json();
      collect_differences(av, bv, child, out);
    }
    return;
  }
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) {
      collect_differences(a[i], b[i], json_path_index(path, i), out);
    }
    return;
  }
  if (a != b) out.push_back({path, a, b});
}

uint64_t fnv1a64(const std::string& text) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace

nlohmann::json to_json(const ExperimentConfig& c) {
  json j = {{"version", c.version},
            {"data", data_json(c.data)},
            {"model", model_json(c.model)},
            {"optimizer", optimizer_json(c.optimizer)},
            {"regularization", regularization_json(c.regularization)},
            {"schedule", schedule_json(c.schedule)},
            {"training", training_json(c.training)},
            {"statistics", statistics_json(c.statistics)},
            {"output", output_json(c.output)},
            {"sparsity", sparsity_json(c.sparsity)}};
  if (!c.description.empty()) j["description"] = c.description;
  return j;
}

nlohmann::json training_relevant_json(const ExperimentConfig& c) {
  json j = to_json(c);
  j.erase("description");
  j.erase("statistics");
  j.erase("output");
  j["data"].erase("path");
  j["data"].erase("loader");
  j["training"].erase("threads");
  j["training"].erase("device");
  j["training"].erase("eval_every");
  if (c.schedule.kind != ScheduleKind::Cosine) j["training"].erase("epochs");
  return j;
}

std::string config_fingerprint(const ExperimentConfig& c) {
  // nlohmann::json objects keep their keys sorted, so the dump is canonical.
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(fnv1a64(training_relevant_json(c).dump())));
  return hex;
}

std::vector<ConfigDifference> training_differences(const ExperimentConfig& saved,
                                                   const ExperimentConfig& requested) {
  std::vector<ConfigDifference> out;
  collect_differences(training_relevant_json(saved), training_relevant_json(requested), "", out);
  return out;
}

void check_resume_compatible(const ExperimentConfig& saved, const ExperimentConfig& requested) {
  std::vector<ConfigDifference> diffs = training_differences(saved, requested);
  if (diffs.empty()) return;
  std::string list;
  for (const ConfigDifference& d : diffs) {
    if (!list.empty()) list += "; ";
    list += (d.path.empty() ? "(config)" : d.path) + ": saved " + describe_json_value(d.saved) +
            ", now " + describe_json_value(d.requested);
  }
  throw ConfigError("resume", "",
                    "the config differs from the saved run in what training computes (" + list +
                        "); restore those values or start a new run in another output.dir");
}

}  // namespace st
