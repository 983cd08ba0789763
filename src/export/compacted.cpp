#include "export/compacted.h"

#include <filesystem>
#include <map>
#include <stdexcept>

#include "run/run_files.h"
#include "sparsity/exact_stats.h"

namespace st {

namespace fs = std::filesystem;

FilterStatsFile read_filter_stats(const std::string& path, const Model& model) {
  const FiltersFinal file = read_filters_final(path);
  FilterStatsFile out;
  out.source = file.source;
  out.epoch = file.epoch;
  out.activation_threshold = file.activation_threshold;
  out.gamma_threshold = file.gamma_threshold;
  std::map<std::string, const ConvBNReLU*> blocks;
  for (const ConvBNReLU& b : model.conv_bn_relu_blocks()) blocks[b.name] = &b;
  for (std::size_t li = 0; li < file.layers.size(); ++li) {
    const FilterLayerRecord& l = file.layers[li];
    const std::string where = path + ": layers[" + std::to_string(li) + "]";
    auto it = blocks.find(l.name);
    if (it == blocks.end())
      throw RunFileError(where + ": '" + l.name +
                         "' is not a conv-BN-ReLU block of the checkpoint's model");
    const ConvBNReLU& b = *it->second;
    const std::string relu = model.specs()[b.relu].name;
    if (!l.relu.empty() && l.relu != relu)
      throw RunFileError(where + ".relu: '" + l.relu + "', the model's block '" + l.name +
                         "' ends in '" + relu + "'");
    if (l.channels != b.channels || static_cast<int64_t>(l.filters.size()) != b.channels)
      throw RunFileError(where + ": " + std::to_string(l.filters.size()) +
                         " filters, the model's '" + l.name + "' has " +
                         std::to_string(b.channels) + " channels");
    std::vector<float> maxima(static_cast<std::size_t>(b.channels), 0.0f);
    for (const FilterRecord& f : l.filters)
      maxima[static_cast<std::size_t>(f.index)] = f.max_activation;
    out.maxima[relu] = std::move(maxima);
  }
  return out;
}

std::string run_stats_path(const ModelSource& source) {
  RunPaths run;
  if (!source.run_dir.empty()) {
    run.dir = source.run_dir;
  } else {
    // RUN/checkpoints/FILE.safetensors, in a folder that is a run (it has config.json).
    const fs::path folder = fs::absolute(source.file()).parent_path();
    run.dir = folder.parent_path().string();
    if (folder.string() != fs::path(run.checkpoints_dir()).string() || !fs::exists(run.config()))
      return "";
  }
  return fs::exists(run.filters_final()) ? run.filters_final() : "";
}

namespace {

std::optional<int> checkpoint_epoch(const ModelSource& source) {
  const nlohmann::json& meta = source.checkpoint->meta();
  if (!meta.contains("epoch") || !meta.at("epoch").is_number_integer()) return std::nullopt;
  return meta.at("epoch").get<int>();
}

}  // namespace

std::optional<FilterStatsFile> exact_run_stats(const ModelSource& source, const Model& model,
                                               const ExportLog& log) {
  const std::string path = run_stats_path(source);
  if (path.empty()) return std::nullopt;
  FilterStatsFile stats = read_filter_stats(path, model);
  if (stats.source != "exact_eval") {
    // Train-pass maxima come from train-mode BN: not the definition compaction relies on.
    log(path + " holds '" + stats.source + "' statistics; measuring the exact ones instead");
    return std::nullopt;
  }
  const std::optional<int> epoch = checkpoint_epoch(source);
  if (stats.epoch && epoch && *stats.epoch != *epoch) {
    log(path + " holds the statistics of epoch " + std::to_string(*stats.epoch) + ", " +
        source.file() + " is of epoch " + std::to_string(*epoch) + "; measuring them instead");
    return std::nullopt;
  }
  if ((!stats.epoch || !epoch) && source.run_dir.empty()) {
    log(path + ": cannot tell whether its statistics are of " + source.file() +
        " (no epoch recorded); measuring them instead");
    return std::nullopt;
  }
  return stats;
}

namespace {

std::vector<int> spatial_relus(const Model& m) {
  std::vector<int> out;
  for (int i = 0; i < static_cast<int>(m.specs().size()); ++i)
    if (m.specs()[i].kind == LayerKind::ReLU && m.output_shape(i).size() == 3) out.push_back(i);
  return out;
}

// The activation maxima the criterion needs: the run's stats file where it has them, an exact
// eval-mode pass over the training set for the rest.
ReluMaxima activation_maxima(Model& model, const CompactionSettings& s, const ExperimentData& data,
                             const data::Normalization& norm, const FilterStatsFile* stats,
                             const std::string& stats_path, nlohmann::json& source_out,
                             const ExportLog& log) {
  ReluMaxima maxima;
  std::vector<std::string> from_file;
  if (stats) {
    maxima = stats->maxima;
    for (const auto& [name, v] : maxima) from_file.push_back(name);
  }
  std::vector<int> missing;
  for (int r : spatial_relus(model))
    if (!maxima.count(model.specs()[r].name)) missing.push_back(r);
  std::vector<std::string> measured;
  if (s.criterion != DeadCriterion::Gamma && !missing.empty()) {
    log("measuring activations: eval-mode pass over " + std::to_string(data.train.size()) +
        " training images for " + std::to_string(missing.size()) + " ReLU layer(s)");
    const auto values = exact_channel_maxima(model, data.train, norm, s.batch_size, missing);
    for (std::size_t k = 0; k < missing.size(); ++k) {
      maxima[model.specs()[missing[k]].name] = values[k];
      measured.push_back(model.specs()[missing[k]].name);
    }
  }
  source_out = {{"stats_file", stats ? nlohmann::json(stats_path) : nlohmann::json(nullptr)},
                {"from_stats_file", from_file},
                {"measured_exact_eval", measured},
                {"training_images", data.train.size()}};
  return maxima;
}

}  // namespace

CompactedModel compact_source_model(Model& original, const ModelSource& source,
                                    const ExperimentData& data, const data::Normalization& norm,
                                    const CompactionSettings& s, Backend& backend,
                                    const ExportLog& log) {
  if (s.round_to < 1)
    throw std::invalid_argument("compaction: round-to must be at least 1, got " +
                                std::to_string(s.round_to));
  const std::optional<FilterStatsFile> stats = exact_run_stats(source, original, log);
  CompactionOptions o;
  o.criterion = s.criterion;
  o.fold_constant = s.fold_constant;
  o.round_to = s.round_to;
  const StatisticsConfig& sc = source.config.statistics;
  o.activation_threshold = s.activation_threshold.value_or(stats && stats->activation_threshold
                                                               ? *stats->activation_threshold
                                                               : sc.activation.threshold);
  o.gamma_threshold = s.gamma_threshold.value_or(
      stats && stats->gamma_threshold ? *stats->gamma_threshold : sc.gamma_threshold);

  CompactedModel out;
  const ReluMaxima maxima =
      activation_maxima(original, s, data, norm, stats ? &*stats : nullptr,
                        stats ? run_stats_path(source) : "", out.activation_statistics, log);
  out.plan = plan_compaction(original, o, maxima);
  out.model = apply_compaction(original, out.plan, backend);
  return out;
}

int64_t filters_removed(const Model& full, const Model& compacted) {
  std::map<std::string, int64_t> kept;
  for (const LayerSpec& s : compacted.specs())
    if (s.kind == LayerKind::Conv) kept[s.name] = compacted.tensor(s.name + ".weight").dim(0);
  int64_t removed = 0;
  for (const LayerSpec& s : full.specs()) {
    if (s.kind != LayerKind::Conv) continue;
    auto it = kept.find(s.name);
    if (it == kept.end())
      throw std::invalid_argument("filters_removed: the compacted network has no conv '" + s.name +
                                  "'");
    removed += full.tensor(s.name + ".weight").dim(0) - it->second;
  }
  return removed;
}

}  // namespace st
