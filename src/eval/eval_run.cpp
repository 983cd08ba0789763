#include "eval/eval_run.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "backend/backend.h"
#include "eval/evaluate.h"
#include "export/compacted.h"
#include "export/model_source.h"
#include "io/safetensors.h"
#include "train/experiment_data.h"
#include "train/trainer.h"

namespace st {

namespace {

// The network evaluated and how it relates to the stored (full) one.
struct EvaluatedNetwork {
  std::unique_ptr<Model> model;
  std::string compacted_by;  // "eval", "export", or empty: the full network
  std::optional<int64_t> params_full, flops_full, filters_removed;
  nlohmann::json activation_statistics;  // where eval's compaction took its maxima from
};

// The stored network with its dead filters removed: activation criterion, exact folding only,
// so that it computes what the full one does.
EvaluatedNetwork compacted_network(const ModelSource& src, const ExperimentData& data,
                                   const data::Normalization& norm, int64_t batch_size,
                                   Backend& backend, const ExportLog& log) {
  std::unique_ptr<Model> full = src.checkpoint->make_model(backend);
  CompactionSettings settings;
  settings.criterion = DeadCriterion::Activation;
  settings.fold_constant = ConstantFold::Exact;
  settings.batch_size = batch_size;
  CompactedModel c = compact_source_model(*full, src, data, norm, settings, backend, log);
  EvaluatedNetwork net;
  net.compacted_by = "eval";
  net.params_full = full->num_params();
  net.flops_full = full->flops_per_image();
  net.filters_removed = filters_removed(*full, *c.model);
  net.activation_statistics = std::move(c.activation_statistics);
  net.model = std::move(c.model);
  return net;
}

// The stored network as it is.
EvaluatedNetwork full_network(std::unique_ptr<Model> model) {
  EvaluatedNetwork net;
  net.params_full = model->num_params();
  net.flops_full = model->flops_per_image();
  net.filters_removed = 0;
  net.model = std::move(model);
  return net;
}

// An exported model as it is, with the size of the network it was exported from (rebuilt from
// its config, without weights) where that can be had.
EvaluatedNetwork exported_network(const ModelSource& src, Backend& backend, const ExportLog& log) {
  // A checkpoint given as --model is a full network.
  if (!src.checkpoint->meta().contains("export"))
    return full_network(src.checkpoint->make_model(backend));
  EvaluatedNetwork net;
  net.model = src.checkpoint->make_model(backend);
  net.compacted_by = "export";
  try {
    auto cpu = make_backend("cpu");
    const Model full(model_layers(src.config.model), net.model->input_shape(), net.model->classes(),
                     *cpu);
    net.params_full = full.num_params();
    net.flops_full = full.flops_per_image();
    net.filters_removed = filters_removed(full, *net.model);
  } catch (const std::exception& e) {
    log(src.file() + ": the size of the network it was exported from is unknown (" + e.what() +
        ")");
  }
  return net;
}

EvaluatedNetwork network_to_evaluate(const EvalRequest& f, const ModelSource& src,
                                     const ExperimentData& data, const data::Normalization& norm,
                                     Backend& backend, const ExportLog& log) {
  if (!f.model.empty()) return exported_network(src, backend, log);
  if (!f.full) return compacted_network(src, data, norm, f.batch_size, backend, log);
  return full_network(src.checkpoint->make_model(backend));
}

nlohmann::json optional_json(const std::optional<int64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json network_json(const EvaluatedNetwork& net) {
  nlohmann::json j = {{"compacted", !net.compacted_by.empty()},
                      {"compacted_by", net.compacted_by.empty() ? nlohmann::json(nullptr)
                                                                : nlohmann::json(net.compacted_by)},
                      {"params", net.model->num_params()},
                      {"params_full", optional_json(net.params_full)},
                      {"flops_per_image", net.model->flops_per_image()},
                      {"flops_per_image_full", optional_json(net.flops_full)},
                      {"filters_removed", optional_json(net.filters_removed)}};
  if (net.compacted_by == "eval") {
    j["criterion"] = "activation";
    j["fold_constant"] = "exact";
    j["activation_statistics"] = net.activation_statistics;
  }
  return j;
}

std::string network_line(const EvaluatedNetwork& net) {
  const Model& m = *net.model;
  std::string line = "network: ";
  if (net.compacted_by == "eval")
    line += "compacted (dead filters removed: activation criterion, exact folding)";
  else if (net.compacted_by == "export")
    line += "as exported (compacted by `sparsetrain export`)";
  else
    line += "full (uncompacted)";
  const bool compacted = !net.compacted_by.empty();
  // "N what", and next to it the full network's figure when this one is compacted.
  const auto figure = [compacted](int64_t v, const char* what, const std::optional<int64_t>& full) {
    std::string s = std::to_string(v) + " " + what;
    if (compacted) s += " (full " + (full ? std::to_string(*full) : std::string("unknown")) + ")";
    return s;
  };
  line += ", " + figure(m.num_params(), "parameters", net.params_full) + ", " +
          figure(m.flops_per_image(), "FLOPs/image", net.flops_full);
  if (compacted && net.filters_removed)
    line += ", " + std::to_string(*net.filters_removed) + " filters removed";
  return line;
}

// The first `count` test images (normalized as the model sees them), their labels and the
// model's logits: a fixed batch for cross-checks in other frameworks.
void dump_outputs(Model& model, const data::Dataset& test, const data::Normalization& norm,
                  int64_t count, const std::string& path) {
  data::LoaderOptions o = eval_loader_options(std::min<int64_t>(count, test.size()), norm);
  o.prefetch = false;
  data::BatchLoader loader(test, o);
  loader.start_epoch(0);
  std::optional<data::Batch> b = loader.next();
  if (!b) throw std::runtime_error(path + ": nothing to dump: the test set is empty");
  const Device dev = model.backend().device();
  const Tensor x = dev == Device::CPU ? b->images.to(model.dtype()) : b->images.to(dev);
  const Tensor logits = model.forward(x, false).to(Device::CPU).to(DType::F32);
  write_safetensors(path, {{"images", b->images}, {"labels", b->labels}, {"logits", logits}});
}

}  // namespace

EvalReport run_evaluation(const EvalRequest& f, const ExportLog& log) {
  const int given = !f.run.empty() + !f.checkpoint.empty() + !f.model.empty();
  if (given != 1)
    throw std::invalid_argument("eval: give exactly one of a run, checkpoint or model");
  if (f.batch_size < 1) throw std::invalid_argument("eval: the batch size must be positive");
  if (f.dump_count < 1) throw std::invalid_argument("eval: the dump count must be positive");
  if (f.full && !f.model.empty())
    throw std::invalid_argument("eval: an exported model is evaluated as it is, never in full");
  ModelSource src = !f.run.empty() ? open_run(f.run)
                                   : open_model_file(f.checkpoint.empty() ? f.model : f.checkpoint);
  auto backend = make_backend(f.device);
  const ExperimentData data = load_source_data(src, f.data_path);
  if (!data.test) throw std::runtime_error(src.file() + ": the data set has no test split");
  const data::Normalization norm = source_normalization(src, data);
  const EvaluatedNetwork net = network_to_evaluate(f, src, data, norm, *backend, log);
  Model& model = *net.model;
  const EvalResult r = evaluate(model, *data.test, norm, f.batch_size);
  if (!f.dump_outputs.empty()) dump_outputs(model, *data.test, norm, f.dump_count, f.dump_outputs);
  EvalReport out;
  out.result = r;
  out.json = eval_json(r);
  out.json["split"] = "test";
  out.json["file"] = src.file();
  out.json["device"] = backend->name();
  out.json["network"] = network_json(net);
  std::ostringstream text;
  text << src.file() << " on " << backend->name() << ": test images " << r.images << ", loss "
       << r.loss << ", accuracy " << 100.0 * r.accuracy() << " %\n"
       << network_line(net) << "\n";
  out.text = text.str();
  return out;
}

}  // namespace st
