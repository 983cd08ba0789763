// Layer kinds: every descriptor is complete, and one network using every kind goes through
// the JSON form, a train step (gradients against finite differences), compaction (outputs
// unchanged), the ONNX export (each layer's nodes as its descriptor says) and the PyTorch
// twin of scripts/torch_model.py (same logits in float64). A kind added to enum LayerKind
// without support in one of these fails here.
#include <onnx/onnx_pb.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include "backend/cpu/cpu_backend.h"
#include "export_test_nets.h"
#include "io/onnx_export.h"
#include "nn/layer_json.h"
#include "nn/layer_kinds.h"
#include "run_helpers.h"
#include "sparsity/compaction.h"

using namespace st;
using namespace st::testnets;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> be = make_backend("cpu");
  return *be;
}

const InputShape kInput{2, 6, 6};
constexpr int64_t kClasses = 3;

// Every kind at least once: a residual stem with a max-pool, a padded average pool, dropout
// and flatten into one linear head, a global pool into a second one, the heads added.
std::vector<LayerSpec> every_kind_net() {
  std::vector<LayerSpec> l;
  l.push_back(conv("c1", 4));
  l.push_back(layer(LayerKind::BatchNorm, "b1"));
  l.push_back(layer(LayerKind::ReLU, "r1"));
  l.push_back(pool(LayerKind::MaxPool, "mp", 2, 2));
  l.push_back(conv("c2", 4, 3, 1, {}, 1, true));
  l.push_back(layer(LayerKind::BatchNorm, "b2"));
  l.push_back(layer(LayerKind::Add, "a", {"b2", "mp"}));
  l.push_back(layer(LayerKind::ReLU, "r2"));
  l.push_back(pool(LayerKind::AvgPool, "ap", 3, 1, 1));
  l.push_back(layer(LayerKind::Dropout, "d"));
  l.back().p = 0.25;
  l.push_back(layer(LayerKind::Flatten, "f"));
  l.push_back(linear("l1"));
  l.push_back(layer(LayerKind::GlobalAvgPool, "g", {"r2"}));
  l.push_back(linear("l2", false));
  l.push_back(layer(LayerKind::Add, "out", {"l1", "l2"}));
  return l;
}

Tensor normal_input(int64_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<double> v(n * kInput.channels * kInput.height * kInput.width);
  for (double& e : v) e = d(gen);
  return Tensor::from_vector(v, {n, kInput.channels, kInput.height, kInput.width});
}

// Mean softmax cross-entropy in double, and its gradient: the loss is computed here so that
// the check does not rest on the backend's loss.
double xent(const Tensor& logits, const std::vector<int32_t>& labels, std::vector<double>* grad) {
  const std::vector<double> z = logits.to_vector_f64();
  const int64_t n = logits.dim(0), k = logits.dim(1);
  double loss = 0;
  if (grad) grad->assign(z.size(), 0.0);
  for (int64_t r = 0; r < n; ++r) {
    double m = z[r * k];
    for (int64_t c = 1; c < k; ++c) m = std::max(m, z[r * k + c]);
    double sum = 0;
    for (int64_t c = 0; c < k; ++c) sum += std::exp(z[r * k + c] - m);
    loss += m + std::log(sum) - z[r * k + labels[r]];
    if (grad)
      for (int64_t c = 0; c < k; ++c)
        (*grad)[r * k + c] = (std::exp(z[r * k + c] - m) / sum - (c == labels[r] ? 1.0 : 0.0)) / n;
  }
  return loss / n;
}

// A train-mode loss with the same dropout masks every time.
double train_loss(Model& m, const Tensor& x, const std::vector<int32_t>& labels,
                  std::vector<double>* grad = nullptr) {
  m.set_dropout_calls(0);
  return xent(m.forward(x, true), labels, grad);
}

void set_params(Model& m, const std::vector<double>& p) {
  m.params().copy_from(Tensor::from_vector(p, {m.params().numel()}).to(m.dtype()));
}

// Per-channel maximum of every ReLU on [C, H, W] over a batch, in eval mode.
ReluMaxima relu_maxima(Model& m, const Tensor& x) {
  m.forward(x, false);
  ReluMaxima out;
  for (int i = 0; i < static_cast<int>(m.specs().size()); ++i) {
    if (m.specs()[i].kind != LayerKind::ReLU || m.output_shape(i).size() != 3) continue;
    const Tensor& a = m.activation(i);
    const std::vector<double> v = a.to_vector_f64();
    const int64_t n = a.dim(0), c = a.dim(1), hw = a.dim(2) * a.dim(3);
    std::vector<float> mx(c, -1e30f);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t e = 0; e < hw; ++e)
          mx[ch] = std::max(mx[ch], static_cast<float>(v[(b * c + ch) * hw + e]));
    out[m.specs()[i].name] = mx;
  }
  return out;
}

double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(a[i] - b[i]));
    scale = std::max(scale, std::fabs(a[i]));
  }
  return diff / std::max(scale, 1e-30);
}

// Each layer's ONNX nodes must be the ops its descriptor lists (a linear reading [C, H, W]
// gets a Flatten first); every node belongs to a layer but the final Identity.
void check_onnx_nodes(const Model& m) {
  onnx::ModelProto p;
  REQUIRE(p.ParseFromString(onnx_model_bytes(m)));  // runs the ONNX checker and inference
  std::map<std::string, std::vector<std::string>> ops;
  for (const auto& n : p.graph().node()) {
    const std::string owner = n.name().substr(0, n.name().find('/'));
    if (n.op_type() == "Identity" && n.name() == "output") continue;
    REQUIRE_NOTHROW(m.layer_index(owner));
    ops[owner].push_back(n.op_type());
  }
  for (int i = 0; i < static_cast<int>(m.specs().size()); ++i) {
    const LayerSpec& s = m.specs()[i];
    std::vector<std::string> want = layer_kind_info(s.kind).onnx_ops;
    const int j = m.layer_inputs(i)[0];
    if (s.kind == LayerKind::Linear && (j < 0 || m.output_shape(j).size() != 1))
      want.insert(want.begin(), "Flatten");
    INFO("layer " << s.name << " (" << layer_kind_name(s.kind) << ")");
    CHECK(ops[s.name] == want);
  }
  std::set<std::string> inits;
  for (const auto& t : p.graph().initializer()) inits.insert(t.name());
  for (const ParamView& v : m.param_views()) CHECK(inits.count(v.name) == 1);
}

std::string torch_script() {
  return std::string(SPARSETRAIN_FIXTURES_DIR) + "/../../scripts/torch_model.py";
}

bool torch_available() {
  return std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") == 0;
}

// Runs scripts/torch_model.py; fails the test with its output on a non-zero exit.
void run_torch_model(const std::string& args, const std::string& log) {
  const std::string cmd =
      "/usr/bin/python3 '" + torch_script() + "' " + args + " > '" + log + "' 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(log);
  const std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO(cmd << "\n" << output);
  REQUIRE(status == 0);
}

// The logits of scripts/torch_model.py's PyTorch model built from m's layer list and loaded
// with m's state_dict (strictly), in float64 and eval mode.
std::vector<double> torch_logits(const Model& m, const Tensor& x, const test::ScratchDir& dir) {
  json state = json::object();
  auto add = [&](const std::string& name, const Shape& shape) {
    state[name] = {{"shape", shape}, {"values", m.tensor(name).to_vector_f64()}};
  };
  for (const ParamView& v : m.param_views()) add(v.name, v.shape);
  for (const BufferView& v : m.buffer_views()) add(v.name, v.shape);
  const json in = {{"layers", layers_to_json(m.specs())},
                   {"input", {kInput.channels, kInput.height, kInput.width}},
                   {"classes", m.classes()},
                   {"state_dict", state},
                   {"x", {{"shape", x.shape()}, {"values", x.to_vector_f64()}}}};
  std::ofstream(dir / "in.json") << in.dump();
  run_torch_model("forward '" + (dir / "in.json") + "' '" + (dir / "out.json") + "'",
                  dir / "forward.log");
  const json out = test::read_json(dir / "out.json");
  CHECK(out.at("shape") == json({x.dim(0), m.classes()}));
  return out.at("values").get<std::vector<double>>();
}

}  // namespace

TEST_CASE("layer kinds: every descriptor is complete and round-trips through JSON",
          "[layer_kinds]") {
  std::set<std::string> names;
  for (LayerKind k : all_layer_kinds()) {
    const LayerKindInfo& info = layer_kind_info(k);
    INFO("kind #" << static_cast<int>(k) << " " << info.name);
    CHECK(info.kind == k);
    CHECK(names.insert(info.name).second);
    CHECK(layer_kind_from_name(info.name) == k);
    CHECK(info.infer_shape != nullptr);
    CHECK(info.inputs >= 1);
    CHECK(info.defaults.kind == k);
    // A kind creating channels owns the weights that create them.
    CHECK(keeps_channels(k) ==
          (info.params != ParamLayout::Conv && info.params != ParamLayout::Linear));
    std::set<LayerField> fields;
    json minimal = {{"kind", info.name}};
    for (const LayerKey& key : info.keys) {
      CHECK(fields.insert(key.field).second);
      if (key.required) minimal[layer_field_name(key.field)] = 5;
    }
    // Reading the minimal object gives the defaults; writing it back gives every key.
    const json back = layers_to_json(layers_from_json(json::array({minimal}), "layers"))[0];
    CHECK(back.size() == info.keys.size() + 1);
    for (const LayerKey& key : info.keys) CHECK(back.contains(layer_field_name(key.field)));
  }
  // The kinds are the enum's values from 0; the value past the last has no descriptor.
  for (std::size_t i = 0; i < all_layer_kinds().size(); ++i)
    CHECK(static_cast<std::size_t>(all_layer_kinds()[i]) == i);
  CHECK_THROWS_AS(layer_kind_info(static_cast<LayerKind>(all_layer_kinds().size())),
                  std::logic_error);
  // Typos get the shared suggestion.
  auto error = [](const json& j) {
    try {
      layers_from_json(j, "model.layers");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK_THAT(error(json::parse(R"([{"kind": "conv", "out": 4, "kernal": 3}])")),
             Contains("model.layers[0].kernal: unknown key (did you mean 'kernel'?)"));
  CHECK_THAT(error(json::parse(R"([{"kind": "maxpoool"}])")),
             Contains("model.layers[0].kind") && Contains("did you mean 'maxpool'?"));
  CHECK_THAT(error(json::parse(R"([{"kind": "bn", "momentun": 0.1}])")),
             Contains("did you mean 'momentum'?"));
}

TEST_CASE("layer kinds: every kind through build, train step, compaction, ONNX and PyTorch",
          "[layer_kinds][compaction][onnx]") {
  const std::vector<LayerSpec> specs = every_kind_net();
  std::set<LayerKind> used;
  for (const LayerSpec& s : specs) used.insert(s.kind);
  for (LayerKind k : all_layer_kinds()) {
    INFO("layer kind '" << layer_kind_name(k) << "' is missing from every_kind_net()");
    CHECK(used.count(k) == 1);
  }

  // Build, from the JSON form.
  const std::vector<LayerSpec> parsed = layers_from_json(layers_to_json(specs), "layers");
  REQUIRE(layers_to_json(parsed) == layers_to_json(specs));
  Model m(parsed, kInput, kClasses, cpu(), DType::F64);
  randomize(m, 7);
  m.set_dropout_seed(11);

  // Train step: the gradient of each parameterized layer against central differences along
  // it, then a small step down the gradient lowers the loss.
  const Tensor x = normal_input(4, 3);
  const std::vector<int32_t> labels = {0, 2, 1, 2};
  std::vector<double> dlogits;
  const double loss0 = train_loss(m, x, labels, &dlogits);
  m.backward(Tensor::from_vector(dlogits, {4, kClasses}).to(DType::F64));
  const std::vector<double> theta = m.params().to_vector_f64();
  const std::vector<double> g = m.grads().to_vector_f64();
  std::map<int, std::vector<const ParamView*>> by_layer;
  for (const ParamView& v : m.param_views()) by_layer[v.layer].push_back(&v);
  CHECK(by_layer.size() == 6);  // c1, b1, c2, b2, l1, l2
  for (const auto& [layer, views] : by_layer) {
    std::vector<double> dir(theta.size(), 0.0);
    double norm = 0;
    for (const ParamView* v : views)
      for (int64_t e = v->offset; e < v->offset + shape_numel(v->shape); ++e) {
        dir[e] = g[e];
        norm += g[e] * g[e];
      }
    norm = std::sqrt(norm);
    INFO("layer " << m.specs()[layer].name);
    REQUIRE(norm > 0);
    const double eps = 1e-5;
    auto loss_at = [&](double t) {
      std::vector<double> p = theta;
      for (std::size_t e = 0; e < p.size(); ++e) p[e] += t * dir[e] / norm;
      set_params(m, p);
      return train_loss(m, x, labels);
    };
    const double numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps);
    CHECK(numeric == Approx(norm).epsilon(1e-6));
  }
  std::vector<double> stepped = theta;
  for (std::size_t e = 0; e < stepped.size(); ++e) stepped[e] -= 1e-3 * g[e];
  set_params(m, stepped);
  CHECK(train_loss(m, x, labels) < loss0);

  // Compaction: filter 1 dead in both convs writing the residual stream, so its channel is 0
  // at every reader (c2 after the max-pool, l1 after avgpool-dropout-flatten, l2 after gap).
  set_constant_bn_output(m, "c1", "b1", 1, -0.5);
  set_constant_bn_output(m, "c2", "b2", 1, -2.0);
  const Tensor data = normal_input(16, 5);
  const CompactionPlan plan = plan_compaction(m, CompactionOptions{}, relu_maxima(m, data));
  const ChannelGroup& stream = plan.groups[plan.group_of[m.layer_index("c1")]];
  CHECK(plan.group_of[m.layer_index("c2")] == plan.group_of[m.layer_index("c1")]);
  CHECK(stream.kept == std::vector<int64_t>{0, 2, 3});
  CHECK(stream.readers.size() == 3);
  auto compacted = apply_compaction(m, plan, cpu());
  CHECK(compacted->tensor("c1.weight").shape() == Shape{3, 2, 3, 3});
  CHECK(compacted->tensor("c2.weight").shape() == Shape{3, 3, 3, 3});
  CHECK(compacted->tensor("b2.running_var").shape() == Shape{3});
  CHECK(compacted->tensor("l1.weight").shape() == Shape{kClasses, 27});
  CHECK(compacted->tensor("l2.weight").shape() == Shape{kClasses, 3});
  const Tensor probe = normal_input(5, 9);
  const std::vector<double> full = m.forward(probe, false).to_vector_f64();
  const std::vector<double> small = compacted->forward(probe, false).to_vector_f64();
  CHECK(max_relative_difference(full, small) < 1e-12);

  // ONNX, of the network and of its compacted form.
  check_onnx_nodes(m);
  check_onnx_nodes(*compacted);

  // The PyTorch twin of both.
  if (!torch_available()) {
    WARN("PyTorch is not installed for /usr/bin/python3: the PyTorch leg is skipped");
    return;
  }
  test::ScratchDir dir("layer-kinds");
  CHECK(max_relative_difference(full, torch_logits(m, probe, dir)) < 1e-10);
  CHECK(max_relative_difference(small, torch_logits(*compacted, probe, dir)) < 1e-10);
}

TEST_CASE("layer kinds: scripts/torch_model.py knows every kind with the same keys and defaults",
          "[layer_kinds]") {
  if (!torch_available()) {
    WARN("PyTorch is not installed for /usr/bin/python3: skipped");
    return;
  }
  test::ScratchDir dir("layer-kinds-py");
  run_torch_model("describe-kinds", dir / "kinds.json");
  std::ifstream in(dir / "kinds.json");
  const nlohmann::ordered_json theirs = nlohmann::ordered_json::parse(in);
  CHECK(theirs.size() == all_layer_kinds().size());
  for (LayerKind k : all_layer_kinds()) {
    const LayerKindInfo& info = layer_kind_info(k);
    INFO("layer kind '" << info.name << "'");
    REQUIRE(theirs.contains(info.name));
    const auto& t = theirs.at(info.name);
    CHECK(t.at("inputs") == info.inputs);
    // Ours: the keys in order, null where required, else the default as layers_to_json writes.
    LayerSpec s = info.defaults;
    const json written = layers_to_json({s})[0];
    nlohmann::ordered_json ours = nlohmann::ordered_json::object();
    for (const LayerKey& key : info.keys) {
      const char* name = layer_field_name(key.field);
      ours[name] = key.required ? nlohmann::ordered_json() : nlohmann::ordered_json(written[name]);
    }
    CHECK(t.at("keys").dump() == ours.dump());
  }
}
