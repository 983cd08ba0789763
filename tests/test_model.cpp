// Model: whole-network gradients against central finite differences in double
// precision, graph and shape validation, presets' names, initialization, and
// the layer JSON form.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>
#include <set>

#include "backend/cpu/cpu_backend.h"
#include "nn/layer_json.h"
#include "nn/model.h"

using namespace st;
using Catch::Matchers::Contains;

namespace {

LayerSpec conv(const std::string& name, int64_t out, int kernel = 3, int stride = 1, int pad = 1,
               bool bias = false, std::vector<std::string> inputs = {}) {
  LayerSpec s;
  s.kind = LayerKind::Conv;
  s.name = name;
  s.out = out;
  s.kernel = kernel;
  s.stride = stride;
  s.pad = pad;
  s.bias = bias;
  s.inputs = std::move(inputs);
  return s;
}

LayerSpec layer(LayerKind kind, const std::string& name = "",
                std::vector<std::string> inputs = {}) {
  LayerSpec s;
  s.kind = kind;
  s.name = name;
  s.inputs = std::move(inputs);
  return s;
}

LayerSpec pool(LayerKind kind, int kernel, int stride, int pad = 0) {
  LayerSpec s = layer(kind);
  s.kernel = kernel;
  s.stride = stride;
  s.pad = pad;
  return s;
}

LayerSpec linear(const std::string& name, int64_t out = kOutClasses, bool bias = true) {
  LayerSpec s = layer(LayerKind::Linear, name);
  s.out = out;
  s.bias = bias;
  return s;
}

// Mean softmax cross-entropy and its gradient, computed here in double so the
// check does not rely on the backend's loss.
double xent(const Tensor& logits, const std::vector<int32_t>& labels, Tensor* dlogits) {
  const int64_t n = logits.dim(0), k = logits.dim(1);
  const double* z = logits.data<double>();
  double loss = 0;
  for (int64_t r = 0; r < n; ++r) {
    double m = z[r * k];
    for (int64_t c = 1; c < k; ++c) m = std::max(m, z[r * k + c]);
    double sum = 0;
    for (int64_t c = 0; c < k; ++c) sum += std::exp(z[r * k + c] - m);
    loss += m + std::log(sum) - z[r * k + labels[r]];
    if (dlogits)
      for (int64_t c = 0; c < k; ++c)
        dlogits->data<double>()[r * k + c] =
            (std::exp(z[r * k + c] - m) / sum - (c == labels[r] ? 1.0 : 0.0)) / n;
  }
  return loss / n;
}

Tensor random_tensor(Shape shape, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> dist(0.0, scale);
  std::vector<double> v(shape_numel(shape));
  for (double& x : v) x = dist(gen);
  return Tensor::from_vector(v, shape);
}

// Moves BN's gamma and beta off 1 and 0 so that their gradients are generic.
void randomize_bn(Model& m, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  for (const auto& v : m.param_views()) {
    if (v.group != ParamGroup::BNWeight && v.group != ParamGroup::BNBias) continue;
    double* p = m.tensor(v.name).data<double>();
    for (int64_t i = 0; i < shape_numel(v.shape); ++i)
      p[i] = (v.group == ParamGroup::BNWeight ? 1.0 : 0.0) + u(gen);
  }
}

struct GradCheckResult {
  int checked = 0, skipped = 0;
  double worst = 0;  // largest |analytic - numeric| / max(1, |numeric|)
  std::string worst_name;
};

// Compares every parameter's gradient with central differences of the
// train-mode loss. Where a ReLU or max-pool winner flips inside [-2h, 2h] the
// loss is not smooth; such points show as disagreeing step-h and step-2h
// differences (which agree to O(h^2) on smooth stretches) and are skipped.
GradCheckResult check_gradients(Model& m, const Tensor& x, const std::vector<int32_t>& labels) {
  auto loss = [&] { return xent(m.forward(x, true), labels, nullptr); };
  Tensor dlogits({x.dim(0), m.classes()}, DType::F64);
  xent(m.forward(x, true), labels, &dlogits);
  m.backward(dlogits);
  const std::vector<double> analytic = m.grads().to_vector_f64();

  GradCheckResult r;
  const double h = 1e-5;
  double* p = m.params().data<double>();
  for (const auto& v : m.param_views()) {
    for (int64_t k = 0; k < shape_numel(v.shape); ++k) {
      const int64_t idx = v.offset + k;
      const double p0 = p[idx];
      auto at = [&](double d) {
        p[idx] = p0 + d;
        double l = loss();
        p[idx] = p0;
        return l;
      };
      const double d1 = (at(h) - at(-h)) / (2 * h);
      const double d2 = (at(2 * h) - at(-2 * h)) / (4 * h);
      if (std::abs(d1 - d2) > 1e-7 * std::max(1.0, std::abs(d1))) {
        ++r.skipped;
        continue;
      }
      ++r.checked;
      const double err = std::abs(analytic[idx] - d1) / std::max(1.0, std::abs(d1));
      if (err > r.worst) {
        r.worst = err;
        r.worst_name = v.name + "[" + std::to_string(k) + "]";
      }
    }
  }
  return r;
}

void require_gradients_match(Model& m, const Tensor& x, const std::vector<int32_t>& labels) {
  GradCheckResult r = check_gradients(m, x, labels);
  INFO("checked " << r.checked << ", skipped " << r.skipped << ", worst " << r.worst << " at "
                  << r.worst_name);
  REQUIRE(r.checked > 0);
  REQUIRE(r.skipped * 20 <= r.checked + r.skipped);  // kinks are rare
  REQUIRE(r.worst < 1e-6);
}

std::vector<LayerSpec> small_chain() {
  return {conv("conv1", 4, 3, 1, 1, true),
          layer(LayerKind::BatchNorm, "bn1"),
          layer(LayerKind::ReLU),
          pool(LayerKind::MaxPool, 2, 2),
          conv("conv2", 5),
          layer(LayerKind::BatchNorm, "bn2"),
          layer(LayerKind::ReLU),
          layer(LayerKind::GlobalAvgPool),
          linear("fc")};
}

// Without BatchNorm (a network with BN folded into its convs): c1 and c2 feed
// only a ReLU and fuse with it; c3 also feeds an add, so its ReLU runs apart.
std::vector<LayerSpec> folded_chain() {
  return {conv("c1", 6, 3, 1, 1, true),    layer(LayerKind::ReLU, "r1"),
          pool(LayerKind::MaxPool, 2, 2),  conv("c2", 5, 3, 1, 1, true),
          layer(LayerKind::ReLU, "r2"),    conv("c3", 5, 1, 1, 0),
          layer(LayerKind::ReLU, "r3"),    layer(LayerKind::Add, "sum", {"c3", "r3"}),
          layer(LayerKind::GlobalAvgPool), linear("fc")};
}

// Fan-out with two computed consumers (stem -> a.conv1 and shortcut.0), a
// strided 1x1 conv shortcut, an identity shortcut (r1 -> b.conv1 and the add),
// an add of a tensor with itself, an explicit flatten and a linear layer.
std::vector<LayerSpec> small_resnet() {
  return {conv("stem", 4, 3, 1, 1),
          layer(LayerKind::BatchNorm, "stem_bn"),
          layer(LayerKind::ReLU, "r0"),
          conv("a.conv1", 4),
          layer(LayerKind::BatchNorm, "a.bn1"),
          layer(LayerKind::ReLU),
          conv("a.conv2", 6, 3, 2, 1),
          layer(LayerKind::BatchNorm, "a.bn2"),
          conv("a.shortcut.0", 6, 1, 2, 0, false, {"r0"}),
          layer(LayerKind::BatchNorm, "a.shortcut.1"),
          layer(LayerKind::Add, "a.add", {"a.bn2", "a.shortcut.1"}),
          layer(LayerKind::ReLU, "r1"),
          conv("b.conv1", 6, 3, 1, 1, true),
          layer(LayerKind::BatchNorm, "b.bn1"),
          layer(LayerKind::Add, "b.add", {"b.bn1", "r1"}),
          layer(LayerKind::ReLU, "r2"),
          layer(LayerKind::Add, "twice", {"r2", "r2"}),
          layer(LayerKind::Flatten),
          linear("fc")};
}

std::vector<int32_t> labels_for(int64_t n, int64_t classes) {
  std::vector<int32_t> l;
  for (int64_t i = 0; i < n; ++i) l.push_back(static_cast<int32_t>((i * 7 + 3) % classes));
  return l;
}

// Largest |a - b| over all elements: 0 when they are equal bit for bit (up to the sign of 0).
double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector_f64(), y = b.to_vector_f64();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_CASE("chain network gradients match finite differences in f64", "[model][gradcheck]") {
  auto be = make_cpu_backend();
  Model m(small_chain(), {3, 8, 8}, 4, *be, DType::F64);
  m.init_parameters(11);
  randomize_bn(m, 12);
  require_gradients_match(m, random_tensor({3, 3, 8, 8}, 13), labels_for(3, 4));
}

TEST_CASE("folded network (conv + ReLU fused) gradients match finite differences in f64",
          "[model][gradcheck]") {
  auto be = make_cpu_backend();
  Model m(folded_chain(), {3, 8, 8}, 4, *be, DType::F64);
  REQUIRE(m.fused_relu(m.layer_index("c1")) == m.layer_index("r1"));
  m.init_parameters(14);
  require_gradients_match(m, random_tensor({3, 3, 8, 8}, 15), labels_for(3, 4));
}

TEST_CASE("residual network gradients match finite differences in f64", "[model][gradcheck]") {
  auto be = make_cpu_backend();
  Model m(small_resnet(), {2, 6, 6}, 3, *be, DType::F64);
  m.init_parameters(21);
  randomize_bn(m, 22);
  require_gradients_match(m, random_tensor({4, 2, 6, 6}, 23), labels_for(4, 3));
}

TEST_CASE("input batchnorm - padded avg-pool and implicit flatten gradients match",
          "[model][gradcheck]") {
  // The BN reads the model input (its dx goes nowhere); the linear reads [C, H, W].
  auto be = make_cpu_backend();
  std::vector<LayerSpec> specs = {layer(LayerKind::BatchNorm), pool(LayerKind::AvgPool, 3, 2, 1),
                                  layer(LayerKind::ReLU), conv("c", 3, 1, 1, 0, true),
                                  linear("fc")};
  Model m(specs, {2, 5, 5}, 3, *be, DType::F64);
  m.init_parameters(31);
  randomize_bn(m, 32);
  require_gradients_match(m, random_tensor({3, 2, 5, 5}, 33), labels_for(3, 3));
}

TEST_CASE("train forward updates BN running stats and counts batches - eval does not", "[model]") {
  auto be = make_cpu_backend();
  Model m(small_chain(), {3, 8, 8}, 4, *be, DType::F64);
  const Tensor x = random_tensor({5, 3, 8, 8}, 3, 2.0);
  m.forward(x, true);
  m.forward(x, true);
  REQUIRE(m.tensor("bn1.num_batches_tracked").to_vector_f64()[0] == 2.0);
  const auto mean = m.tensor("bn1.running_mean").to_vector_f64();
  m.forward(x, false);
  REQUIRE(m.tensor("bn1.num_batches_tracked").to_vector_f64()[0] == 2.0);
  REQUIRE(m.tensor("bn1.running_mean").to_vector_f64() == mean);
  // Two updates with momentum 0.1 from 0 give 0.19 * the batch mean of conv1's
  // output, which is the same each time (same input and weights).
  const double* c = m.activation(0).data<double>();
  double batch_mean = 0;
  for (int64_t n = 0; n < 5; ++n)
    for (int64_t k = 0; k < 64; ++k) batch_mean += c[n * 4 * 64 + k];
  batch_mean /= 5 * 64;
  REQUIRE(mean[0] == Approx(0.19 * batch_mean).epsilon(1e-12));
}

TEST_CASE("activation buffers are reused across batches of the same or smaller size", "[model]") {
  auto be = make_cpu_backend();
  Model m(small_chain(), {3, 8, 8}, 4, *be, DType::F32);
  Tensor x({6, 3, 8, 8});
  m.forward(x, true);
  const void* a0 = m.activation(2).raw();
  m.forward(x, true);
  REQUIRE(m.activation(2).raw() == a0);
  Tensor small({2, 3, 8, 8});
  m.forward(small, false);
  REQUIRE(m.activation(2).raw() == a0);
  REQUIRE(m.activation(2).dim(0) == 2);
  REQUIRE(m.forward(small, false).shape() == Shape{2, 4});
}

TEST_CASE("dropout: active in train with reproducible masks - identity in eval", "[model]") {
  auto be = make_cpu_backend();
  LayerSpec drop = layer(LayerKind::Dropout, "drop");
  drop.p = 0.5;
  std::vector<LayerSpec> specs = {layer(LayerKind::GlobalAvgPool), drop, linear("fc")};
  Model m(specs, {16, 2, 2}, 3, *be, DType::F64);
  m.set_dropout_seed(7);
  const Tensor x = random_tensor({8, 16, 2, 2}, 5);
  m.forward(x, false);
  REQUIRE(m.activation(1).to_vector_f64() == m.activation(0).to_vector_f64());

  m.forward(x, true);
  const auto in = m.activation(0).to_vector_f64();
  const auto out1 = m.activation(1).to_vector_f64();
  int dropped = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const bool zero = out1[i] == 0.0;
    dropped += zero;
    if (!zero) REQUIRE(out1[i] == Approx(2.0 * in[i]));
  }
  REQUIRE(dropped > 16);
  REQUIRE(dropped < 112);
  m.forward(x, true);
  const auto out2 = m.activation(1).to_vector_f64();
  REQUIRE(out2 != out1);  // a new mask per call

  m.set_dropout_calls(0);
  m.forward(x, true);
  REQUIRE(m.activation(1).to_vector_f64() == out1);
}

TEST_CASE("backward checks what it is given", "[model]") {
  auto be = make_cpu_backend();
  Model m(small_chain(), {3, 8, 8}, 4, *be, DType::F64);
  Tensor x({2, 3, 8, 8}, DType::F64);
  m.forward(x, false);
  REQUIRE_THROWS_WITH(m.backward(Tensor({2, 4}, DType::F64)), Contains("train-mode"));
  m.forward(x, true);
  REQUIRE_THROWS_WITH(m.backward(Tensor({3, 4}, DType::F64)), Contains("[2, 4]"));
  REQUIRE_THROWS_WITH(m.forward(Tensor({2, 3, 8, 9}, DType::F64), true), Contains("[2, 3, 8, 9]"));
  REQUIRE_THROWS_WITH(m.forward(Tensor({2, 3, 8, 8}, DType::F32), true), Contains("f32"));
}

TEST_CASE("shape errors name the layer and the shapes", "[model][errors]") {
  auto be = make_cpu_backend();
  const InputShape in{3, 8, 8};

  SECTION("add of different shapes") {
    std::vector<LayerSpec> s = {conv("c1", 4), conv("c2", 5, 3, 1, 1, false, {"input"}),
                                layer(LayerKind::Add, "sum", {"c1", "c2"}),
                                layer(LayerKind::GlobalAvgPool), linear("fc")};
    std::string e = error_of([&] { Model m(s, in, 3, *be); });
    CHECK_THAT(e, Contains("'sum'") && Contains("[4, 8, 8]") && Contains("[5, 8, 8]"));
  }
  SECTION("conv kernel larger than the padded input") {
    std::vector<LayerSpec> s = {conv("big", 4, 11, 1, 1), layer(LayerKind::GlobalAvgPool),
                                linear("fc")};
    std::string e = error_of([&] { Model m(s, in, 3, *be); });
    CHECK_THAT(e, Contains("'big'") && Contains("[3, 8, 8]") && Contains("11"));
  }
  SECTION("pool kernel larger than the input") {
    std::vector<LayerSpec> s = {pool(LayerKind::MaxPool, 2, 2),  pool(LayerKind::MaxPool, 2, 2),
                                pool(LayerKind::MaxPool, 2, 2),  pool(LayerKind::MaxPool, 2, 2),
                                layer(LayerKind::GlobalAvgPool), linear("fc")};
    std::string e = error_of([&] { Model m(s, in, 3, *be); });
    CHECK_THAT(e, Contains("'maxpool4'") && Contains("[3, 1, 1]"));
  }
  SECTION("batchnorm after a flat tensor") {
    std::vector<LayerSpec> s = {layer(LayerKind::GlobalAvgPool), layer(LayerKind::BatchNorm, "bnx"),
                                linear("fc")};
    std::string e = error_of([&] { Model m(s, in, 3, *be); });
    CHECK_THAT(e, Contains("'bnx'") && Contains("[3]"));
  }
  SECTION("last layer is not [classes]") {
    std::vector<LayerSpec> s = {layer(LayerKind::GlobalAvgPool), linear("fc", 7)};
    std::string e = error_of([&] { Model m(s, in, 3, *be); });
    CHECK_THAT(e, Contains("'fc'") && Contains("[7]") && Contains("[3]"));
  }
  SECTION("duplicate names name both layers") {
    std::vector<LayerSpec> s = {conv("c", 4), layer(LayerKind::ReLU, "c"),
                                layer(LayerKind::GlobalAvgPool), linear("fc")};
    std::string e = error_of([&] { Model m(s, in, 3, *be); });
    CHECK_THAT(e, Contains("'c'") && Contains("#0, conv") && Contains("#1, relu"));
  }
  SECTION("inputs must name earlier layers") {
    std::vector<LayerSpec> s = {conv("c", 4, 3, 1, 1, false, {"later"}), conv("later", 4),
                                layer(LayerKind::GlobalAvgPool), linear("fc")};
    CHECK_THAT(error_of([&] { Model m(s, in, 3, *be); }),
               Contains("'c'") && Contains("'later'") && Contains("earlier"));
    s[0].inputs = {"nope"};
    CHECK_THAT(error_of([&] { Model m(s, in, 3, *be); }), Contains("'nope'"));
  }
  SECTION("an add needs two inputs") {
    std::vector<LayerSpec> s = {conv("c", 3), layer(LayerKind::Add, "a", {"c"}),
                                layer(LayerKind::GlobalAvgPool), linear("fc")};
    CHECK_THAT(error_of([&] { Model m(s, in, 3, *be); }), Contains("'a'") && Contains("2 inputs"));
  }
  SECTION("unused outputs") {
    std::vector<LayerSpec> s = {conv("dangling", 4), conv("c", 4, 3, 1, 1, false, {"input"}),
                                layer(LayerKind::GlobalAvgPool), linear("fc")};
    CHECK_THAT(error_of([&] { Model m(s, in, 3, *be); }),
               Contains("'dangling'") && Contains("never used"));
  }
  SECTION("a name inside another layer's path") {
    std::vector<LayerSpec> s = {conv("block", 4), conv("block.conv", 4),
                                layer(LayerKind::GlobalAvgPool), linear("fc")};
    CHECK_THAT(error_of([&] { Model m(s, in, 3, *be); }), Contains("'block.conv'"));
  }
  SECTION("invalid names") {
    std::vector<LayerSpec> s = {conv("a..b", 4), layer(LayerKind::GlobalAvgPool), linear("fc")};
    CHECK_THAT(error_of([&] { Model m(s, in, 3, *be); }), Contains("'a..b'"));
    s[0].name = "input";
    CHECK_THAT(error_of([&] { Model m(s, in, 3, *be); }), Contains("reserved"));
  }
}

TEST_CASE("unnamed layers get unique kind-numbered names", "[model]") {
  auto be = make_cpu_backend();
  // The 2nd relu is explicitly "relu3", so the 3rd unnamed relu moves on to relu4.
  std::vector<LayerSpec> s = {conv("", 4),
                              layer(LayerKind::ReLU),
                              conv("", 4),
                              layer(LayerKind::ReLU, "relu3"),
                              layer(LayerKind::ReLU),
                              layer(LayerKind::GlobalAvgPool),
                              linear("")};
  Model m(s, {3, 8, 8}, 3, *be);
  std::vector<std::string> names;
  for (const auto& l : m.specs()) names.push_back(l.name);
  REQUIRE(names ==
          std::vector<std::string>{"conv1", "relu1", "conv2", "relu3", "relu4", "gap1", "linear1"});
  REQUIRE(m.layer_index("relu4") == 4);
  REQUIRE(m.layer_inputs(0) == std::vector<int>{-1});
  REQUIRE(m.layer_consumers(2) == std::vector<int>{3});
}

TEST_CASE("parameter layout follows PyTorch's state_dict order", "[model]") {
  auto be = make_cpu_backend();
  Model m(small_chain(), {3, 8, 8}, 4, *be);
  std::vector<std::string> names;
  std::vector<Shape> shapes;
  for (const auto& v : m.param_views()) {
    names.push_back(v.name);
    shapes.push_back(v.shape);
  }
  REQUIRE(names == std::vector<std::string>{"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias",
                                            "conv2.weight", "bn2.weight", "bn2.bias", "fc.weight",
                                            "fc.bias"});
  REQUIRE(shapes ==
          std::vector<Shape>{{4, 3, 3, 3}, {4}, {4}, {4}, {5, 4, 3, 3}, {5}, {5}, {4, 5}, {4}});
  int64_t offset = 0;
  for (const auto& v : m.param_views()) {
    REQUIRE(v.offset == offset);
    offset += shape_numel(v.shape);
  }
  REQUIRE(m.num_params() == offset);
  std::vector<std::string> bufs;
  for (const auto& v : m.buffer_views()) bufs.push_back(v.name);
  REQUIRE(bufs == std::vector<std::string>{"bn1.running_mean", "bn1.running_var",
                                           "bn1.num_batches_tracked", "bn2.running_mean",
                                           "bn2.running_var", "bn2.num_batches_tracked"});
  REQUIRE(m.tensor("bn2.num_batches_tracked").shape() == Shape{});
  REQUIRE(m.tensor("conv2.weight").raw() ==
          static_cast<char*>(m.params().raw()) + 4 * (4 * 27 + 4 + 8));
  REQUIRE_THROWS_WITH(m.tensor("conv3.weight"), Contains("'conv3.weight'"));
  REQUIRE_THROWS_WITH(m.grad("bn1.running_mean"), Contains("'bn1.running_mean'"));

  // Conv-BN-ReLU units and FLOPs (2 * MACs of convs and linear layers).
  REQUIRE(m.conv_bn_relu_blocks().size() == 2);
  REQUIRE(m.conv_bn_relu_blocks()[1].name == "conv2");
  REQUIRE(m.conv_bn_relu_blocks()[1].channels == 5);
  REQUIRE(m.flops_per_image() == 2 * (4 * 3 * 9 * 8 * 8 + 5 * 4 * 9 * 4 * 4 + 4 * 5));
}

TEST_CASE("initialization follows PyTorch's defaults and is deterministic", "[model]") {
  auto be = make_cpu_backend();
  std::vector<LayerSpec> s = {conv("c", 64, 3, 1, 1, true), layer(LayerKind::BatchNorm, "bn"),
                              layer(LayerKind::GlobalAvgPool), linear("fc", kOutClasses, true)};
  Model a(s, {16, 8, 8}, 10, *be), b(s, {16, 8, 8}, 10, *be);
  a.init_parameters(5);
  b.init_parameters(5);
  REQUIRE(a.params().to_vector_f32() == b.params().to_vector_f32());
  b.init_parameters(6);
  REQUIRE(a.params().to_vector_f32() != b.params().to_vector_f32());

  const double bound = 1.0 / std::sqrt(16.0 * 9.0);  // fan_in = C * kh * kw
  const auto w = a.tensor("c.weight").to_vector_f64();
  double sum = 0, sq = 0, mx = 0;
  for (double v : w) sum += v, sq += v * v, mx = std::max(mx, std::abs(v));
  REQUIRE(mx <= bound);
  REQUIRE(mx > 0.99 * bound);
  // U(-b, b): mean 0, variance b^2/3; 9216 samples.
  REQUIRE(std::abs(sum / w.size()) < 0.05 * bound);
  REQUIRE(sq / w.size() == Approx(bound * bound / 3).epsilon(0.05));
  for (double v : a.tensor("c.bias").to_vector_f64()) REQUIRE(std::abs(v) <= bound);
  for (double v : a.tensor("fc.weight").to_vector_f64()) REQUIRE(std::abs(v) <= 1.0 / 8.0);
  for (double v : a.tensor("bn.weight").to_vector_f64()) REQUIRE(v == 1.0);
  for (double v : a.tensor("bn.bias").to_vector_f64()) REQUIRE(v == 0.0);
  for (double v : a.tensor("bn.running_mean").to_vector_f64()) REQUIRE(v == 0.0);
  for (double v : a.tensor("bn.running_var").to_vector_f64()) REQUIRE(v == 1.0);
}

TEST_CASE("presets have the documented names and structure", "[model][presets]") {
  auto be = make_cpu_backend();
  REQUIRE(preset_names() == std::vector<std::string>{"basicnet", "vgg11", "vgg16", "resnet18"});
  REQUIRE_THROWS_WITH(make_preset("vgg13", 1.0), Contains("'vgg13'") && Contains("vgg16"));
  REQUIRE_THROWS_WITH(make_preset("vgg11", 0.0), Contains("width"));

  Model basic(make_preset("basicnet", 1.0), {3, 32, 32}, 10, *be);
  REQUIRE(basic.conv_bn_relu_blocks().size() == 7);
  REQUIRE(basic.conv_bn_relu_blocks()[6].name == "conv7");
  REQUIRE(basic.tensor("conv7.weight").shape() == Shape{512, 512, 3, 3});
  REQUIRE(basic.tensor("bn3.running_var").shape() == Shape{128});
  REQUIRE(basic.tensor("fc.weight").shape() == Shape{10, 512});
  REQUIRE(basic.output_shape(basic.layer_index("relu6")) == Shape{512, 8, 8});
  REQUIRE(basic.output_shape(basic.layer_index("pool6")) == Shape{512, 4, 4});

  Model half(make_preset("basicnet", 0.3), {1, 28, 28}, 10, *be);
  REQUIRE(half.tensor("conv1.weight").shape() == Shape{19, 1, 3, 3});   // 64 * 0.3 = 19.2
  REQUIRE(half.tensor("conv4.weight").shape() == Shape{77, 38, 3, 3});  // 76.8, 38.4

  Model v16(make_preset("vgg16", 1.0), {3, 32, 32}, 100, *be);
  REQUIRE(v16.conv_bn_relu_blocks().size() == 13);
  REQUIRE(v16.tensor("features.0.weight").shape() == Shape{64, 3, 3, 3});
  REQUIRE(v16.tensor("features.1.running_mean").shape() == Shape{64});
  REQUIRE(v16.specs()[v16.layer_index("features.6")].kind == LayerKind::MaxPool);
  REQUIRE(v16.tensor("features.41.weight").shape() == Shape{512});
  REQUIRE(v16.tensor("classifier.weight").shape() == Shape{100, 512});

  Model r18(make_preset("resnet18", 1.0), {3, 32, 32}, 10, *be);
  REQUIRE(r18.conv_bn_relu_blocks().size() == 9);  // stem + the first conv of 8 blocks
  REQUIRE(r18.tensor("layer2.0.shortcut.0.weight").shape() == Shape{128, 64, 1, 1});
  REQUIRE(r18.tensor("layer2.0.shortcut.1.bias").shape() == Shape{128});
  REQUIRE_THROWS(r18.tensor("layer1.0.shortcut.0.weight"));
  REQUIRE(r18.tensor("layer4.1.conv2.weight").shape() == Shape{512, 512, 3, 3});
  REQUIRE(r18.output_shape(r18.layer_index("layer4.1.relu2")) == Shape{512, 4, 4});
  REQUIRE(r18.tensor("linear.bias").shape() == Shape{10});
  // 2 * MACs per image, closed form: stem, 4 stages of two blocks, 3 shortcuts, linear.
  int64_t macs = 3 * 64 * 9 * 32 * 32;
  const int64_t planes[] = {64, 128, 256, 512}, side[] = {32, 16, 8, 4};
  int64_t in = 64;
  for (int st = 0; st < 4; ++st) {
    const int64_t p = planes[st], hw = side[st] * side[st];
    macs += (in * p * 9 + p * p * 9) * hw + (p * p * 9 + p * p * 9) * hw;
    if (in != p) macs += in * p * hw;  // 1x1 shortcut at the output resolution
    in = p;
  }
  macs += 512 * 10;
  REQUIRE(r18.flops_per_image() == 2 * macs);
}

TEST_CASE("layer JSON round-trips and rejects bad input with its path", "[model][json]") {
  for (const auto& name : preset_names()) {
    const auto specs = make_preset(name, 0.5);
    const auto back = layers_from_json(layers_to_json(specs), "model.layers");
    REQUIRE(layers_to_json(back) == layers_to_json(specs));
  }
  const auto j = layers_to_json(make_preset("resnet18", 1.0));
  REQUIRE(j[0]["kind"] == "conv");
  REQUIRE(j[0]["name"] == "conv1");
  REQUIRE(j[0]["out"] == 64);
  REQUIRE(j.back()["out"] == "classes");

  using nlohmann::json;
  auto err = [](const json& doc) {
    return error_of([&] { layers_from_json(doc, "model.layers"); });
  };
  json good = json::parse(R"([{"kind": "conv", "out": 8}, {"kind": "maxpool", "kernel": 2},
                              {"kind": "gap"}, {"kind": "linear", "bias": true}])");
  const auto parsed = layers_from_json(good, "model.layers");
  REQUIRE(parsed[0].kernel == 3);
  REQUIRE(parsed[1].stride == 0);  // pools default to stride = kernel
  REQUIRE(parsed[3].out == kOutClasses);
  REQUIRE(parsed[3].bias);

  good[1]["strid"] = 2;
  REQUIRE(err(good) == "model.layers[1].strid: unknown key (did you mean 'stride'?)");
  good[1].erase("strid");
  good[0]["p"] = 0.2;
  REQUIRE_THAT(err(good), Contains("model.layers[0].p") && Contains("not used by a conv"));
  good[0].erase("p");
  good[0]["out"] = "classes";
  REQUIRE_THAT(err(good), Contains("model.layers[0].out"));
  good[0]["out"] = 8;
  good[0]["kernel"] = 2.5;
  REQUIRE_THAT(err(good), Contains("model.layers[0].kernel") && Contains("integer"));
  good[0]["kernel"] = 3;
  good[2]["kind"] = "gapp";
  REQUIRE_THAT(err(good), Contains("model.layers[2].kind") && Contains("'gapp'"));
  good[2]["kind"] = "gap";
  good[2]["inputs"] = "conv1";
  REQUIRE_THAT(err(good), Contains("model.layers[2].inputs") && Contains("array"));
  good[2].erase("inputs");
  REQUIRE_THAT(err(json::parse(R"([{"out": 3}])")),
               Contains("model.layers[0]: missing key 'kind'"));
  REQUIRE_THAT(err(json::parse(R"({"kind": "relu"})")),
               Contains("model.layers: expected an array"));
  REQUIRE_THAT(err(json::parse(R"([{"kind": "conv"}])")), Contains("needs 'out'"));
  REQUIRE_THAT(err(json::parse(R"([{"kind": "dropout", "p": 1.0}])")),
               Contains("model.layers[0].p"));
}

TEST_CASE("ReLU fusion changes no bit of outputs, gradients or running stats", "[model]") {
  auto be = make_cpu_backend();
  for (DType dt : {DType::F32, DType::F64})
    for (const auto& specs : {small_chain(), small_resnet(), folded_chain()}) {
      INFO(dtype_name(dt) << ", " << specs.size() << " layers");
      Model fused(specs, {3, 8, 8}, 4, *be, dt), apart(specs, {3, 8, 8}, 4, *be, dt);
      REQUIRE(fused.fuse_relu());
      apart.set_fuse_relu(false);
      fused.init_parameters(51);
      apart.init_parameters(51);
      const Tensor x = random_tensor({5, 3, 8, 8}, 52).to(dt);
      for (int step = 0; step < 2; ++step) {
        CHECK(max_abs_diff(fused.forward(x, true), apart.forward(x, true)) == 0);
        const Tensor dlogits = random_tensor({5, 4}, 53 + step).to(dt);
        fused.backward(dlogits);
        apart.backward(dlogits);
        CHECK(max_abs_diff(fused.grads(), apart.grads()) == 0);
        CHECK(max_abs_diff(fused.buffers(), apart.buffers()) == 0);
      }
      CHECK(max_abs_diff(fused.forward(x, false), apart.forward(x, false)) == 0);
      // Switched off later, the fused model reallocates and gives the same again.
      fused.set_fuse_relu(false);
      CHECK(max_abs_diff(fused.forward(x, false), apart.forward(x, false)) == 0);
    }
}

TEST_CASE("BatchNorm fuses only with a ReLU that is its sole consumer", "[model]") {
  auto be = make_cpu_backend();
  Model m(small_resnet(), {2, 6, 6}, 3, *be, DType::F32);
  const auto at = [&](const std::string& name) { return m.layer_index(name); };
  CHECK(m.fused_relu(at("stem_bn")) == at("r0"));
  CHECK(m.fused_relu(at("a.bn1")) == at("a.bn1") + 1);
  CHECK(m.fused_relu(at("a.bn2")) == -1);  // feeds an add
  CHECK(m.fused_relu(at("b.bn1")) == -1);
  CHECK(m.fused_relu(at("r0")) == -1);
  m.forward(random_tensor({2, 2, 6, 6}, 61).to(DType::F32), true);
  CHECK_FALSE(m.activation(at("stem_bn")).defined());  // never stored
  CHECK(m.activation(at("a.bn2")).defined());
  m.set_fuse_relu(false);
  CHECK(m.fused_relu(at("stem_bn")) == -1);
  m.forward(random_tensor({2, 2, 6, 6}, 61).to(DType::F32), true);
  CHECK(m.activation(at("stem_bn")).defined());
}

TEST_CASE("a convolution fuses only with a ReLU that is its sole consumer", "[model]") {
  auto be = make_cpu_backend();
  Model m(folded_chain(), {3, 8, 8}, 4, *be, DType::F32);
  const auto at = [&](const std::string& name) { return m.layer_index(name); };
  CHECK(m.fused_relu(at("c1")) == at("r1"));
  CHECK(m.fused_relu(at("c2")) == at("r2"));
  CHECK(m.fused_relu(at("c3")) == -1);  // also feeds the add
  m.forward(random_tensor({2, 3, 8, 8}, 62).to(DType::F32), true);
  CHECK_FALSE(m.activation(at("c1")).defined());  // never stored
  CHECK(m.activation(at("r1")).defined());
  CHECK(m.activation(at("c3")).defined());
  // In a network with BatchNorm the conv's consumer is the BatchNorm: nothing to fuse.
  Model chain(small_chain(), {3, 8, 8}, 4, *be, DType::F32);
  CHECK(chain.fused_relu(chain.layer_index("conv1")) == -1);
}
