// One train step of a small conv net against PyTorch: logits, loss, every
// parameter gradient, BN running statistics after the step, and eval-mode
// logits, from tests/fixtures/net_step.safetensors (scripts/make_fixtures.py).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "backend/cpu/cpu_backend.h"
#include "nn/model.h"

#if __has_include("io/safetensors.h")
#include "io/safetensors.h"
#define SPARSETRAIN_HAVE_SAFETENSORS 1
#endif

using namespace st;

namespace {

// The fixture's network:
//   conv1 Conv2d(3, 8, 3, 1, 1, bias=False) -> bn1 -> relu -> MaxPool2d(2, 2)
//   conv2 Conv2d(8, 12, 3, 1, 1, bias=False) -> bn2 -> relu -> AvgPool2d(2, 2)
//   conv3 Conv2d(12, 16, 3, 2, 1, bias=False) -> bn3 -> relu -> global avg pool
//   fc Linear(16, 5)
// on input [4, 3, 12, 12].
std::vector<LayerSpec> fixture_net() {
  std::vector<LayerSpec> specs;
  auto add = [&](LayerKind kind, const std::string& name, int64_t out = 0, int kernel = 3,
                 int stride = 1, int pad = 0, bool bias = false) {
    LayerSpec s;
    s.kind = kind;
    s.name = name;
    s.out = out;
    s.kernel = kernel;
    s.stride = stride;
    s.pad = pad;
    s.bias = bias;
    specs.push_back(s);
  };
  add(LayerKind::Conv, "conv1", 8, 3, 1, 1);
  add(LayerKind::BatchNorm, "bn1");
  add(LayerKind::ReLU, "relu1");
  add(LayerKind::MaxPool, "pool1", 0, 2, 2);
  add(LayerKind::Conv, "conv2", 12, 3, 1, 1);
  add(LayerKind::BatchNorm, "bn2");
  add(LayerKind::ReLU, "relu2");
  add(LayerKind::AvgPool, "pool2", 0, 2, 2);
  add(LayerKind::Conv, "conv3", 16, 3, 2, 1);
  add(LayerKind::BatchNorm, "bn3");
  add(LayerKind::ReLU, "relu3");
  add(LayerKind::GlobalAvgPool, "gap");
  add(LayerKind::Linear, "fc", 5, 3, 1, 0, true);
  return specs;
}

// max |a - ref| / max |ref|: a norm-wise error that tiny elements cannot dominate.
double relative_error(const Tensor& a, const Tensor& ref) {
  const auto x = a.to_vector_f64(), r = ref.to_vector_f64();
  REQUIRE(x.size() == r.size());
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    diff = std::max(diff, std::abs(x[i] - r[i]));
    scale = std::max(scale, std::abs(r[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

constexpr double kTolerance = 1e-4;

}  // namespace

#ifdef SPARSETRAIN_HAVE_SAFETENSORS

namespace {

Tensor fixture_tensor(const SafetensorsReader& f, const std::string& name, const Shape& shape) {
  INFO("fixture tensor '" << name << "'");
  REQUIRE(f.has(name));
  Tensor t = name == "labels" ? f.get(name) : f.get_f32(name);
  REQUIRE(t.shape() == shape);
  return t;
}

void require_close(const Tensor& ours, const Tensor& ref, const std::string& what) {
  const double err = relative_error(ours, ref);
  INFO(what << ": relative error " << err);
  REQUIRE(err <= kTolerance);
}

}  // namespace

TEST_CASE("one train step and an eval forward match PyTorch", "[model][parity]") {
  const std::string path = std::string(SPARSETRAIN_FIXTURES_DIR) + "/net_step.safetensors";
  if (!std::ifstream(path)) FAIL("missing " << path << " (made by scripts/make_fixtures.py)");
  const SafetensorsReader f = SafetensorsReader::load(path);
  auto be = make_cpu_backend();
  Model m(fixture_net(), {3, 12, 12}, 5, *be);

  for (const auto& v : m.param_views())
    m.tensor(v.name).copy_from(fixture_tensor(f, "param." + v.name, v.shape));
  for (const auto& v : m.buffer_views())
    if (v.shape != Shape{})  // num_batches_tracked starts at 0 in both
      m.tensor(v.name).copy_from(fixture_tensor(f, "buffer." + v.name, v.shape));

  const Tensor input = fixture_tensor(f, "input", {4, 3, 12, 12});
  const Tensor labels = fixture_tensor(f, "labels", {4});
  const Tensor& logits = m.forward(input, true);
  require_close(logits, fixture_tensor(f, "logits", {4, 5}), "train-mode logits");

  Tensor probs({4, 5}), dlogits({4, 5});
  const double loss = be->softmax_xent_forward(logits, labels, probs);
  const double ref_loss = fixture_tensor(f, "loss", {1}).to_vector_f64()[0];
  REQUIRE(std::abs(loss - ref_loss) <= kTolerance * std::abs(ref_loss));

  be->softmax_xent_backward(probs, labels, dlogits);
  m.backward(dlogits);
  for (const auto& v : m.param_views())
    require_close(m.grad(v.name), fixture_tensor(f, "grad." + v.name, v.shape), "grad " + v.name);

  for (const auto& v : m.buffer_views()) {
    if (v.shape == Shape{}) {
      REQUIRE(m.tensor(v.name).to_vector_f64() == std::vector<double>{1.0});
      continue;
    }
    require_close(m.tensor(v.name), fixture_tensor(f, "after." + v.name, v.shape),
                  "after the step: " + v.name);
  }

  require_close(m.forward(input, false), fixture_tensor(f, "eval_logits", {4, 5}),
                "eval-mode logits");
}

#else

TEST_CASE("one train step and an eval forward match PyTorch", "[model][parity]") {
  FAIL("this build has no src/io/safetensors.h, which the parity test reads its fixture with");
}

#endif
