// Export: a network trained here (Adam + strong L2, so that filters die) compacted and
// compared with the original on its training set; the exact activation pass against the
// trainer's; the ONNX graph (checked by the ONNX library, weights bit for bit); the
// safetensors export read back as a checkpoint; the run's statistics file; the whole export
// pipeline on a checkpoint.
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "backend/cpu/cpu_backend.h"
#include "eval/evaluate.h"
#include "export/export_run.h"
#include "export_test_nets.h"
#include "io/checkpoint.h"
#include "io/onnx_export.h"
#include "nn/layer_json.h"
#include "optim/optimizer.h"
#include "sparsity/activation_pass.h"
#include "sparsity/compaction.h"
#include "sparsity/exact_stats.h"

using namespace st;
using namespace st::testnets;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> be = make_backend("cpu");
  return *be;
}

std::vector<int> relu_layers(const Model& m) {
  std::vector<int> out;
  for (int i = 0; i < static_cast<int>(m.specs().size()); ++i)
    if (m.specs()[i].kind == LayerKind::ReLU && m.output_shape(i).size() == 3) out.push_back(i);
  return out;
}

ReluMaxima maxima_of(Model& m, const data::Dataset& d, const data::Normalization& n) {
  const std::vector<int> relus = relu_layers(m);
  const auto v = exact_channel_maxima(m, d, n, 64, relus);
  ReluMaxima out;
  for (std::size_t k = 0; k < relus.size(); ++k) out[m.specs()[relus[k]].name] = v[k];
  return out;
}

// A small residual CNN trained for a few hundred Adam steps with strong L2, which kills
// filters (the paper's effect).
struct TrainedNet {
  std::unique_ptr<Model> model;
  data::Dataset train;
  data::Normalization norm;
};

TrainedNet train_small_net() {
  std::vector<LayerSpec> l;
  block(l, "c1.", 16);
  block(l, "c2.", 16);
  l.push_back(conv("c3.conv", 16, 3, 1));
  l.push_back(layer(LayerKind::BatchNorm, "c3.bn"));
  l.push_back(layer(LayerKind::Add, "add", {"c3.bn", "c1.relu"}));
  l.push_back(layer(LayerKind::ReLU, "relu"));
  l.push_back(pool(LayerKind::MaxPool, "pool", 2, 2));
  block(l, "c4.", 24);
  l.push_back(layer(LayerKind::GlobalAvgPool, "gap"));
  l.push_back(linear("fc"));
  TrainedNet t;
  t.model = std::make_unique<Model>(l, InputShape{3, 12, 12}, 4, cpu());
  t.model->init_parameters(3);
  t.train = synthetic_images(t.model->input_shape(), 4, 512, 11);
  t.norm = data::normalization_from(t.train);
  OptimHyper h;
  h.rule = UpdateRule::Adam;
  h.lr = 1e-2;
  Optimizer opt(h, RegKind::L2, 1e-2, *t.model);
  data::LoaderOptions lo;
  lo.batch_size = 16;
  lo.seed = 5;
  lo.normalization = t.norm;
  data::BatchLoader loader(t.train, lo);
  Tensor probs, dlogits;
  for (int epoch = 0; epoch < 10; ++epoch) {
    loader.start_epoch(epoch);
    while (auto b = loader.next()) {
      const Tensor& logits = t.model->forward(b->images, true);
      probs = Tensor(logits.shape());
      dlogits = Tensor(logits.shape());
      cpu().softmax_xent_forward(logits, b->labels, probs);
      cpu().softmax_xent_backward(probs, b->labels, dlogits);
      t.model->backward(dlogits);
      opt.step(*t.model, h.lr, h.lr);
    }
  }
  return t;
}

// Trained once, shared by the tests that need it.
TrainedNet& trained_net() {
  static TrainedNet t = train_small_net();
  return t;
}

}  // namespace

TEST_CASE("export: a trained network loses its dead filters and keeps its outputs",
          "[export][trained]") {
  TrainedNet& t = trained_net();
  Model& m = *t.model;
  const ReluMaxima maxima = maxima_of(m, t.train, t.norm);

  // The maxima agree with the trainer's own exact pass, an independent loop.
  ActivationRecorder rec = make_block_recorder(m);
  record_exact_pass(m, t.train, t.norm, 50, rec);
  const std::vector<LayerStats> stats = block_stats(m, rec, StatsThresholds{});
  int64_t dead = 0;
  for (std::size_t b = 0; b < stats.size(); ++b) {
    const std::string relu = m.specs()[m.conv_bn_relu_blocks()[b].relu].name;
    for (std::size_t f = 0; f < stats[b].filters.size(); ++f)
      CHECK(stats[b].filters[f].max_activation == maxima.at(relu)[f]);
    dead += stats[b].dead_activation;
  }
  INFO("dead filters by the activation criterion: " << dead);
  REQUIRE(dead >= 3);

  CompactionOptions o;
  const CompactionPlan plan = plan_compaction(m, o, maxima);
  auto c = apply_compaction(m, plan, cpu());
  CHECK(c->num_params() < m.num_params());
  CHECK(c->flops_per_image() < m.flops_per_image());
  // On the training set, where the criterion holds, the outputs are the same.
  const Comparison cmp = compare_models(m, *c, t.train, t.norm, 64);
  CHECK(cmp.max_abs_logit_diff <= 1e-5 * cmp.max_abs_logit);
  CHECK(cmp.prediction_changes == 0);
  CHECK(cmp.a.correct == cmp.b.correct);
  CHECK(cmp.a.accuracy() > 0.5);  // it did learn
  // Fused, too.
  auto f = fuse_batchnorm(*c, cpu());
  const Comparison cf = compare_models(m, *f, t.train, t.norm, 64);
  CHECK(cf.max_abs_logit_diff <= 1e-5 * cf.max_abs_logit);
}

namespace {

std::unique_ptr<Model> mixed_net() {
  std::vector<LayerSpec> l;
  block(l, "a.", 6);
  LayerSpec avg = pool(LayerKind::AvgPool, "avg", 3, 1, 1);
  l.push_back(avg);
  block(l, "b.", 5, 1, 0);
  l.push_back(layer(LayerKind::Add, "add", {"b.relu", "b.relu"}));
  LayerSpec drop = layer(LayerKind::Dropout, "drop");
  drop.p = 0.3;
  l.push_back(drop);
  l.push_back(pool(LayerKind::MaxPool, "max", 2, 2, 1));
  LayerSpec hidden = linear("hidden");
  hidden.out = 7;
  l.push_back(hidden);
  l.push_back(layer(LayerKind::ReLU, "hrelu"));
  l.push_back(linear("fc", false));
  auto m = std::make_unique<Model>(l, InputShape{2, 6, 6}, 3, cpu());
  randomize(*m, 41);
  return m;
}

onnx::ModelProto parse_onnx(const std::string& bytes) {
  onnx::ModelProto p;
  REQUIRE(p.ParseFromString(bytes));
  return p;
}

}  // namespace

TEST_CASE("export: ONNX graph of every layer kind - weights bit for bit", "[export][onnx]") {
  auto m = mixed_net();
  const onnx::ModelProto p = parse_onnx(onnx_model_bytes(*m, {{"k", "v"}}));
  REQUIRE(p.opset_import_size() == 1);
  CHECK(p.opset_import(0).version() == kOnnxOpset);
  CHECK(p.metadata_props(0).key() == "k");
  const onnx::GraphProto& g = p.graph();
  std::multiset<std::string> ops;
  for (const auto& n : g.node()) ops.insert(n.op_type());
  CHECK(ops.count("Conv") == 2);
  CHECK(ops.count("BatchNormalization") == 2);
  CHECK(ops.count("AveragePool") == 1);
  CHECK(ops.count("MaxPool") == 1);
  CHECK(ops.count("Add") == 1);
  CHECK(ops.count("Gemm") == 2);
  CHECK(ops.count("Flatten") == 1);  // before the first linear, which reads [C, H, W]
  CHECK(ops.count("Dropout") == 0);
  for (const auto& n : g.node()) {
    if (n.op_type() == "AveragePool") {
      bool counted = false;
      for (const auto& a : n.attribute())
        if (a.name() == "count_include_pad") counted = a.i() == 1;
      CHECK(counted);
    }
    if (n.op_type() == "Add") CHECK(n.input(0) == n.input(1));
    if (n.op_type() == "MaxPool") CHECK(n.input(0) == "add");  // dropout skipped
  }
  // Every parameter and BN statistic is an initializer with the model's values.
  std::set<std::string> names;
  for (const auto& init : g.initializer()) {
    names.insert(init.name());
    const Tensor t = m->tensor(init.name());
    Shape dims(init.dims().begin(), init.dims().end());
    CHECK(dims == t.shape());
    const std::vector<float> v = t.to_vector_f32();
    REQUIRE(init.raw_data().size() == v.size() * sizeof(float));
    CHECK(std::memcmp(init.raw_data().data(), v.data(), init.raw_data().size()) == 0);
  }
  for (const ParamView& v : m->param_views()) CHECK(names.count(v.name) == 1);
  CHECK(names.count("a.bn.running_var") == 1);
  CHECK(g.input(0).name() == "input");
  CHECK(g.output(0).name() == "logits");
  // Shape inference through the whole graph gives [batch, classes].
  onnx::ModelProto inferred = p;
  onnx::shape_inference::InferShapes(inferred);
  bool found = false;
  for (const auto& v : inferred.graph().value_info())
    if (v.name() == "fc") {
      found = true;
      const auto& s = v.type().tensor_type().shape();
      REQUIRE(s.dim_size() == 2);
      CHECK(s.dim(0).dim_param() == "batch");
      CHECK(s.dim(1).dim_value() == 3);
    }
  CHECK(found);
}

TEST_CASE("export: ONNX of a compacted - BN-fused residual network", "[export][onnx]") {
  auto m = mixed_net();
  set_gamma_beta(*m, "a.bn", 2, 0.0, -1.0);
  CompactionOptions o;
  o.criterion = DeadCriterion::Gamma;
  auto c = fuse_batchnorm(*apply_compaction(*m, plan_compaction(*m, o, {}), cpu()), cpu());
  const onnx::ModelProto p = parse_onnx(onnx_model_bytes(*c));
  for (const auto& n : p.graph().node()) CHECK(n.op_type() != "BatchNormalization");
  for (const auto& init : p.graph().initializer())
    if (init.name() == "a.conv.weight") CHECK(init.dims(0) == 5);
}

TEST_CASE("export: the safetensors export loads back as a model with the same outputs",
          "[export]") {
  auto m = mixed_net();
  set_gamma_beta(*m, "b.bn", 1, 0.0, 0.5);  // a constant channel folded into 'hidden'
  CompactionOptions o;
  o.criterion = DeadCriterion::Gamma;
  const CompactionPlan plan = plan_compaction(*m, o, {});
  auto c = apply_compaction(*m, plan, cpu());
  CHECK(c->specs()[c->layer_index("hidden")].bias);
  const fs::path dir = fs::temp_directory_path() / "sparsetrain_test_export";
  fs::create_directories(dir);
  const std::string path = (dir / "m.safetensors").string();
  nlohmann::json extra = {{"export", {{"kept_filters", kept_filters_json(*m, plan)}}}};
  save_checkpoint(path, *c, nullptr, extra);
  const Checkpoint ck = Checkpoint::load(path);
  auto back = ck.make_model(cpu());
  CHECK(relative_logit_difference(*c, *back, random_input(*m, 8, 1)) == 0.0);
  CHECK(relative_logit_difference(*m, *back, random_input(*m, 8, 2)) < 1e-5);
  CHECK(ck.reader().entry("b.bn.num_batches_tracked").dtype == "I64");
  const auto& kept = ck.meta().at("export").at("kept_filters");
  CHECK(kept.at(1).at("layer") == "b.conv");
  CHECK(kept.at(1).at("kept") == std::vector<int64_t>{0, 2, 3, 4});
  CHECK(ck.meta().at("model").at("layers").at(4).at("out") == 4);
  fs::remove_all(dir);
}

namespace {

nlohmann::json stats_file_for(const Model& m) {
  nlohmann::json layers = nlohmann::json::array();
  for (const ConvBNReLU& b : m.conv_bn_relu_blocks()) {
    nlohmann::json filters = nlohmann::json::array();
    for (int64_t f = 0; f < b.channels; ++f)
      filters.push_back({{"index", f}, {"max_activation", f == 1 ? 0.0 : 1.0 + f}});
    layers.push_back({{"name", b.name},
                      {"bn", m.specs()[b.bn].name},
                      {"relu", m.specs()[b.relu].name},
                      {"channels", b.channels},
                      {"filters", filters}});
  }
  return {{"source", "exact_eval"},
          {"epoch", 3},
          {"thresholds", {{"activation", 1e-10}, {"gamma", 2e-3}}},
          {"layers", layers}};
}

std::string write_json(const fs::path& p, const nlohmann::json& j) {
  std::ofstream(p) << j.dump();
  return p.string();
}

}  // namespace

TEST_CASE("export: a run's filter statistics are read and checked against the model", "[export]") {
  auto m = mixed_net();
  const fs::path dir = fs::temp_directory_path() / "sparsetrain_test_stats";
  fs::create_directories(dir);
  nlohmann::json j = stats_file_for(*m);
  const FilterStatsFile s = read_filter_stats(write_json(dir / "ok.json", j), *m);
  CHECK(s.source == "exact_eval");
  CHECK(s.activation_threshold == 1e-10);
  CHECK(s.gamma_threshold == 2e-3);
  CHECK(s.maxima.at("b.relu") == std::vector<float>{1, 0, 3, 4, 5});
  j["layers"][1]["channels"] = 6;
  CHECK_THROWS_WITH(read_filter_stats(write_json(dir / "bad.json", j), *m),
                    Contains("layers[1]") && Contains("5 channels"));
  j = stats_file_for(*m);
  j["layers"][0]["name"] = "nope";
  CHECK_THROWS_WITH(read_filter_stats(write_json(dir / "bad.json", j), *m),
                    Contains("'nope' is not a conv-BN-ReLU block"));
  fs::remove_all(dir);
}

TEST_CASE("export: the whole pipeline on a checkpoint with synthetic data", "[export]") {
  TrainedNet& t = trained_net();
  const fs::path dir = fs::temp_directory_path() / "sparsetrain_test_pipeline";
  fs::remove_all(dir);
  fs::create_directories(dir);
  // A synthetic config of the same shape: the pipeline measures the activations on its
  // training set and evaluates on its test set.
  nlohmann::json config = {{"version", 1},
                           {"data",
                            {{"kind", "synthetic"},
                             {"synthetic",
                              {{"train_size", 256},
                               {"test_size", 128},
                               {"channels", 3},
                               {"height", 12},
                               {"width", 12},
                               {"classes", 4}}}}},
                           {"model", {{"layers", layers_to_json(t.model->specs())}}},
                           {"optimizer", {{"name", "adam"}}},
                           {"training", {{"batch_size", 16}, {"epochs", 1}}}};
  const std::string ckpt = (dir / "ckpt.safetensors").string();
  save_checkpoint(ckpt, *t.model, nullptr, {{"config", config}});
  ExportRequest r;
  r.checkpoint = ckpt;
  r.onnx = true;
  r.fuse_bn = true;
  r.out = (dir / "out" / "net.onnx").string();
  r.bench_batch = 4;
  std::vector<std::string> log;
  const nlohmann::json rep = run_export(r, [&](const std::string& s) { log.push_back(s); });
  CHECK(fs::exists(dir / "out" / "net.safetensors"));
  CHECK(fs::exists(dir / "out" / "net.onnx"));
  CHECK(fs::exists(dir / "out" / "export_report.json"));
  CHECK(rep.at("parameters").at("after").get<int64_t>() <
        rep.at("parameters").at("before").get<int64_t>());
  CHECK(rep.at("test").at("images") == 128);
  CHECK(rep.at("throughput").at("cpu").at("speedup").get<double>() > 0);
  CHECK(rep.at("activation_statistics").at("measured_exact_eval").size() == 4);
  CHECK(rep.at("compaction").at("criterion") == "activation");
  // The exported file is self-contained: it evaluates like the compacted network.
  ModelSource src = open_model_file((dir / "out" / "net.safetensors").string());
  auto back = src.checkpoint->make_model(cpu());
  const ExperimentData data = load_source_data(src, "");
  const EvalResult e = evaluate(*back, *data.test, source_normalization(src, data), 64);
  CHECK(e.correct == rep.at("test").at("compacted").at("correct").get<int64_t>());
  for (const LayerSpec& s : back->specs()) CHECK(s.kind != LayerKind::BatchNorm);
  fs::remove_all(dir);
}

TEST_CASE("export: bad requests name the problem", "[export]") {
  ExportRequest r;
  r.out = "x";
  CHECK_THROWS_WITH(run_export(r, {}), Contains("exactly one of"));
  r.checkpoint = "does-not-exist.safetensors";
  CHECK_THROWS_WITH(run_export(r, [](const std::string&) {}), Contains("does not exist"));
  r.round_to = 0;
  CHECK_THROWS_WITH(run_export(r, {}), Contains("round-to"));
}
