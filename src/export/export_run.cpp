#include "export/export_run.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "backend/backend.h"
#include "export/evaluate.h"
#include "io/onnx_export.h"
#include "nn/layer_json.h"
#include "sparsity/exact_stats.h"

namespace st {

namespace fs = std::filesystem;

FilterStatsFile read_filter_stats(const std::string& path, const Model& model) {
  nlohmann::json j;
  {
    std::ifstream f(path);
    if (!f) throw std::runtime_error(path + ": cannot open");
    try {
      f >> j;
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(path + ": not valid JSON: " + e.what());
    }
  }
  FilterStatsFile out;
  try {
    out.source = j.value("source", "");
    if (j.contains("thresholds")) {
      const auto& t = j.at("thresholds");
      if (t.contains("activation")) out.activation_threshold = t.at("activation").get<double>();
      if (t.contains("gamma")) out.gamma_threshold = t.at("gamma").get<double>();
    }
    std::map<std::string, const ConvBNReLU*> blocks;
    for (const ConvBNReLU& b : model.conv_bn_relu_blocks()) blocks[b.name] = &b;
    const auto& layers = j.at("layers");
    for (std::size_t li = 0; li < layers.size(); ++li) {
      const auto& l = layers[li];
      const std::string where = path + ": layers[" + std::to_string(li) + "]";
      const std::string name = l.at("name").get<std::string>();
      auto it = blocks.find(name);
      if (it == blocks.end())
        throw std::runtime_error(where + ": '" + name +
                                 "' is not a conv-BN-ReLU block of the checkpoint's model");
      const ConvBNReLU& b = *it->second;
      const std::string relu = model.specs()[b.relu].name;
      if (l.contains("relu") && l.at("relu").get<std::string>() != relu)
        throw std::runtime_error(where + ".relu: '" + l.at("relu").get<std::string>() +
                                 "', the model's block '" + name + "' ends in '" + relu + "'");
      const auto& filters = l.at("filters");
      if (l.at("channels").get<int64_t>() != b.channels ||
          static_cast<int64_t>(filters.size()) != b.channels)
        throw std::runtime_error(where + ": " + std::to_string(filters.size()) +
                                 " filters, the model's '" + name + "' has " +
                                 std::to_string(b.channels) + " channels");
      std::vector<float> maxima(b.channels, 0.0f);
      for (const auto& f : filters) {
        const int64_t index = f.at("index").get<int64_t>();
        if (index < 0 || index >= b.channels)
          throw std::runtime_error(where + ": filter index " + std::to_string(index) +
                                   " out of range");
        maxima[index] = f.at("max_activation").get<float>();
      }
      out.maxima[relu] = std::move(maxima);
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": unexpected content: " + e.what());
  }
  return out;
}

nlohmann::json channel_table(const Model& before, const Model& after) {
  nlohmann::json rows = nlohmann::json::array();
  for (const LayerSpec& s : before.specs()) {
    if (s.kind != LayerKind::Conv && s.kind != LayerKind::Linear) continue;
    const Shape b = before.tensor(s.name + ".weight").shape();
    const Shape a = after.tensor(s.name + ".weight").shape();
    rows.push_back({{"name", s.name},
                    {"kind", layer_kind_name(s.kind)},
                    {"out_before", b[0]},
                    {"out_after", a[0]},
                    {"in_before", b[1]},
                    {"in_after", a[1]}});
  }
  return rows;
}

nlohmann::json export_metadata(const ModelSource& source, const data::Normalization& norm,
                               const Model& original, const CompactionPlan& plan, bool fused) {
  const CompactionOptions& o = plan.options;
  return {{"config", to_json(source.config)},
          {"normalization", normalization_json(norm)},
          {"export",
           {{"source", source.file()},
            {"criterion", dead_criterion_name(o.criterion)},
            {"thresholds", {{"activation", o.activation_threshold}, {"gamma", o.gamma_threshold}}},
            {"fold_constant", o.fold_constant == ConstantFold::Exact ? "exact" : "approximate"},
            {"round_to", o.round_to},
            {"fuse_bn", fused},
            {"kept_filters", kept_filters_json(original, plan)}}}};
}

namespace {

std::string stem_of(const std::string& out) {
  fs::path p(out);
  if (p.extension() == ".safetensors" || p.extension() == ".onnx") p.replace_extension();
  return p.string();
}

std::vector<int> spatial_relus(const Model& m) {
  std::vector<int> out;
  for (int i = 0; i < static_cast<int>(m.specs().size()); ++i)
    if (m.specs()[i].kind == LayerKind::ReLU && m.output_shape(i).size() == 3) out.push_back(i);
  return out;
}

// The activation maxima the criterion needs: the run's stats file where it has them, an exact
// eval-mode pass over the training set for the rest.
ReluMaxima activation_maxima(Model& model, const ExportRequest& req, const ExperimentData& data,
                             const data::Normalization& norm, const FilterStatsFile* stats,
                             nlohmann::json& source_out, const ExportLog& log) {
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
  if (req.criterion != DeadCriterion::Gamma && !missing.empty()) {
    log("measuring activations: eval-mode pass over " + std::to_string(data.train.size()) +
        " training images for " + std::to_string(missing.size()) + " ReLU layer(s)");
    const auto values = exact_channel_maxima(model, data.train, norm, req.batch_size, missing);
    for (std::size_t k = 0; k < missing.size(); ++k) {
      maxima[model.specs()[missing[k]].name] = values[k];
      measured.push_back(model.specs()[missing[k]].name);
    }
  }
  nlohmann::json file = nullptr;
  if (stats) file = (fs::path(req.run_dir) / "stats" / "filters_final.json").string();
  source_out = {{"stats_file", file},
                {"from_stats_file", from_file},
                {"measured_exact_eval", measured},
                {"training_images", data.train.size()}};
  return maxima;
}

nlohmann::json throughput_json(const Throughput& before, const Throughput& after) {
  return {{"batch", before.batch},
          {"before_images_per_s", before.images_per_second},
          {"after_images_per_s", after.images_per_second},
          {"speedup", after.images_per_second / before.images_per_second}};
}

nlohmann::json measure_speed(Model& before, Model& after, const ExportRequest& req,
                             const ExportLog& log) {
  const double seconds = req.bench ? 2.0 : 0.5;
  const int repeats = req.bench ? 5 : 3;
  nlohmann::json out;
  log("timing inference on the CPU (batch " + std::to_string(req.bench_batch) + ")");
  const auto [cb, ca] = measure_throughput_pair(before, after, req.bench_batch, seconds, repeats);
  out["cpu"] = throughput_json(cb, ca);
  if (!cuda_device_available()) {
    out["cuda"] = {{"note", "no CUDA device"}};
    return out;
  }
  try {
    auto cuda = make_backend("cuda");
    auto gb = copy_model(before, *cuda);
    auto ga = copy_model(after, *cuda);
    log("timing inference on CUDA");
    const auto [gpu_b, gpu_a] =
        measure_throughput_pair(*gb, *ga, req.bench_batch, seconds, repeats);
    out["cuda"] = throughput_json(gpu_b, gpu_a);
  } catch (const std::exception& e) {
    out["cuda"] = {{"note", std::string("CUDA timing failed: ") + e.what()}};
  }
  return out;
}

void check_request(const ExportRequest& r) {
  if (r.run_dir.empty() == r.checkpoint.empty())
    throw std::invalid_argument("export: give exactly one of a run directory or a checkpoint");
  if (r.out.empty()) throw std::invalid_argument("export: an output path is required");
  if (!r.safetensors && !r.onnx) throw std::invalid_argument("export: no output format chosen");
  if (r.round_to < 1) throw std::invalid_argument("export: round-to must be at least 1");
  if (r.batch_size < 1 || r.bench_batch < 1)
    throw std::invalid_argument("export: batch sizes must be positive");
}

}  // namespace

nlohmann::json run_export(const ExportRequest& req, const ExportLog& log) {
  check_request(req);
  ModelSource src = req.run_dir.empty() ? open_model_file(req.checkpoint) : open_run(req.run_dir);
  auto cpu = make_backend("cpu");
  auto original = src.checkpoint->make_model(*cpu);
  log("loaded " + src.file() + ": " + std::to_string(original->num_params()) + " parameters");
  const ExperimentData data = load_source_data(src, req.data_path);
  const data::Normalization norm = source_normalization(src, data);

  std::optional<FilterStatsFile> stats;
  const fs::path stats_path = fs::path(req.run_dir) / "stats" / "filters_final.json";
  if (!req.run_dir.empty() && fs::exists(stats_path)) {
    stats = read_filter_stats(stats_path.string(), *original);
    if (stats->source != "exact_eval") {
      // Train-pass maxima come from train-mode BN: not the definition compaction relies on.
      log(stats_path.string() + " holds '" + stats->source +
          "' statistics; measuring the exact ones instead");
      stats.reset();
    }
  }
  CompactionOptions o;
  o.criterion = req.criterion;
  o.fold_constant = req.fold_constant;
  o.round_to = req.round_to;
  const StatisticsConfig& sc = src.config.statistics;
  o.activation_threshold = req.activation_threshold.value_or(stats && stats->activation_threshold
                                                                 ? *stats->activation_threshold
                                                                 : sc.activation.threshold);
  o.gamma_threshold = req.gamma_threshold.value_or(
      stats && stats->gamma_threshold ? *stats->gamma_threshold : sc.gamma_threshold);

  nlohmann::json activation_source;
  const ReluMaxima maxima = activation_maxima(*original, req, data, norm, stats ? &*stats : nullptr,
                                              activation_source, log);
  const CompactionPlan plan = plan_compaction(*original, o, maxima);
  std::unique_ptr<Model> exported = apply_compaction(*original, plan, *cpu);
  if (req.fuse_bn) exported = fuse_batchnorm(*exported, *cpu);

  nlohmann::json report;
  report["source"] = {{"file", src.file()}, {"run", req.run_dir}};
  report["compaction"] = plan_json(*original, plan);
  report["compaction"]["fuse_bn"] = req.fuse_bn;
  report["activation_statistics"] = activation_source;
  report["layers"] = channel_table(*original, *exported);
  const auto ratio = [](double before, double after) { return after > 0 ? before / after : 0.0; };
  report["parameters"] = {{"before", original->num_params()},
                          {"after", exported->num_params()},
                          {"reduction", ratio(static_cast<double>(original->num_params()),
                                              static_cast<double>(exported->num_params()))}};
  report["flops_per_image"] = {
      {"before", original->flops_per_image()},
      {"after", exported->flops_per_image()},
      {"reduction", ratio(static_cast<double>(original->flops_per_image()),
                          static_cast<double>(exported->flops_per_image()))}};

  if (data.test) {
    log("evaluating both networks on " + std::to_string(data.test->size()) + " test images");
    const Comparison c = compare_models(*original, *exported, *data.test, norm, req.batch_size);
    report["test"] = {
        {"images", c.a.images},
        {"original", eval_json(c.a)},
        {"compacted", eval_json(c.b)},
        {"max_abs_logit_diff", c.max_abs_logit_diff},
        {"max_rel_logit_diff", c.max_abs_logit_diff / std::max(c.max_abs_logit, 1e-30)},
        {"prediction_changes", c.prediction_changes}};
  } else {
    report["test"] = {{"note", "the data set has no test split"}};
  }
  report["throughput"] = measure_speed(*original, *exported, req, log);

  const std::string stem = stem_of(req.out);
  const fs::path dir = fs::path(stem).parent_path();
  if (!dir.empty()) fs::create_directories(dir);
  const nlohmann::json meta = export_metadata(src, norm, *original, plan, req.fuse_bn);
  if (req.safetensors) {
    const std::string path = stem + ".safetensors";
    save_checkpoint(path, *exported, nullptr, meta);
    report["files"]["safetensors"] = path;
  }
  if (req.onnx) {
    const std::string path = stem + ".onnx";
    nlohmann::json onnx_meta = meta;
    onnx_meta["model"] = model_architecture_json(*exported);
    write_onnx(path, *exported, {{"sparsetrain", onnx_meta.dump()}});
    report["files"]["onnx"] = path;
  }
  const fs::path report_path = (dir.empty() ? fs::path(".") : dir) / "export_report.json";
  std::ofstream(report_path) << report.dump(2) << "\n";
  report["files"]["report"] = report_path.string();
  return report;
}

}  // namespace st
