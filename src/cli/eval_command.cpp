// sparsetrain eval --run DIR | --checkpoint FILE | --model FILE: loss and accuracy on the test
// set of the model's experiment config, in eval mode.
#include <iostream>
#include <memory>

#include "backend/backend.h"
#include "cli/commands.h"
#include "export/evaluate.h"
#include "export/model_source.h"
#include "io/safetensors.h"

namespace st {

namespace {

struct EvalFlags {
  std::string run, checkpoint, model;
  std::string device = "auto";
  int64_t batch_size = 256;
  std::string data_path;
  bool json = false;
  std::string dump_outputs;
  int64_t dump_count = 64;
};

// The first `count` test images (normalized as the model sees them), their labels and the
// model's logits: a fixed batch for cross-checks in other frameworks.
void dump_outputs(Model& model, const data::Dataset& test, const data::Normalization& norm,
                  int64_t count, const std::string& path) {
  data::LoaderOptions o;
  o.batch_size = std::min<int64_t>(count, test.size());
  o.shuffle = false;
  o.normalization = norm;
  o.prefetch = false;
  data::BatchLoader loader(test, o);
  loader.start_epoch(0);
  std::optional<data::Batch> b = loader.next();
  if (!b) throw std::runtime_error("--dump-outputs: the test set is empty");
  const Device dev = model.backend().device();
  const Tensor x = dev == Device::CPU ? b->images.to(model.dtype()) : b->images.to(dev);
  const Tensor logits = model.forward(x, false).to(Device::CPU).to(DType::F32);
  write_safetensors(path, {{"images", b->images}, {"labels", b->labels}, {"logits", logits}});
}

int run_eval(const EvalFlags& f) {
  const int given = !f.run.empty() + !f.checkpoint.empty() + !f.model.empty();
  if (given != 1) throw UsageError("eval: give exactly one of --run, --checkpoint or --model");
  if (f.batch_size < 1) throw UsageError("eval: --batch-size must be positive");
  if (f.dump_count < 1) throw UsageError("eval: --dump-count must be positive");
  ModelSource src = !f.run.empty() ? open_run(f.run)
                                   : open_model_file(f.checkpoint.empty() ? f.model : f.checkpoint);
  auto backend = make_backend(f.device);
  auto model = src.checkpoint->make_model(*backend);
  const ExperimentData data = load_source_data(src, f.data_path);
  if (!data.test) throw std::runtime_error(src.file() + ": the data set has no test split");
  const data::Normalization norm = source_normalization(src, data);
  const EvalResult r = evaluate(*model, *data.test, norm, f.batch_size);
  if (!f.dump_outputs.empty()) dump_outputs(*model, *data.test, norm, f.dump_count, f.dump_outputs);
  if (f.json) {
    nlohmann::json j = eval_json(r);
    j["split"] = "test";
    j["file"] = src.file();
    j["device"] = backend->name();
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << src.file() << " on " << backend->name() << ": test images " << r.images
              << ", loss " << r.loss << ", accuracy " << 100.0 * r.accuracy() << " %\n";
  }
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& app, CommandRun& run) {
  auto flags = std::make_shared<EvalFlags>();
  CLI::App* sub = app.add_subcommand(
      "eval", "evaluate a run, checkpoint or exported model on its test set (eval mode)");
  sub->add_option("--run", flags->run, "run directory (uses checkpoints/last.safetensors)");
  sub->add_option("--checkpoint", flags->checkpoint, "checkpoint file");
  sub->add_option("--model", flags->model, "model file written by `sparsetrain export`");
  sub->add_option("--device", flags->device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  sub->add_option("--batch-size", flags->batch_size, "evaluation batch size (default 256)");
  sub->add_option("--data-path", flags->data_path, "dataset directory, replacing data.path");
  sub->add_flag("--json", flags->json, "print the result as JSON");
  sub->add_option("--dump-outputs", flags->dump_outputs,
                  "write the first test images, labels and logits to this safetensors file");
  sub->add_option("--dump-count", flags->dump_count, "images for --dump-outputs (default 64)");
  sub->callback([&run, flags] { run = [flags] { return run_eval(*flags); }; });
}

}  // namespace st
