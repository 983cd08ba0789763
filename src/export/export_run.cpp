#include "export/export_run.h"

#include "io/file_write.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "backend/backend.h"
#include "eval/evaluate.h"
#include "io/onnx_export.h"
#include "nn/layer_json.h"

namespace st {

namespace fs = std::filesystem;

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

  CompactionSettings settings;
  settings.criterion = req.criterion;
  settings.activation_threshold = req.activation_threshold;
  settings.gamma_threshold = req.gamma_threshold;
  settings.fold_constant = req.fold_constant;
  settings.round_to = req.round_to;
  settings.batch_size = req.batch_size;
  CompactedModel compacted = compact_source_model(*original, src, data, norm, settings, *cpu, log);
  const CompactionPlan& plan = compacted.plan;
  std::unique_ptr<Model> exported = std::move(compacted.model);
  if (req.fuse_bn) exported = fuse_batchnorm(*exported, *cpu);

  nlohmann::json report;
  report["source"] = {{"file", src.file()}, {"run", req.run_dir}};
  report["compaction"] = plan_json(*original, plan);
  report["compaction"]["fuse_bn"] = req.fuse_bn;
  report["activation_statistics"] = compacted.activation_statistics;
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
  write_file_atomic(report_path.string(), report.dump(2) + "\n");
  report["files"]["report"] = report_path.string();
  return report;
}

}  // namespace st
