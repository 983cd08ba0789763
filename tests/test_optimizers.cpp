// Optimizer tests: PyTorch 1.13 parity on every rule x regularization (fixture
// written by scripts/make_fixtures.py), closed-form single steps, the segment
// machinery, and the name parsers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "config/names.h"
#include "fixtures.h"
#include "optim/optimizer.h"
#include "optim/update_rules.h"

using namespace st;
using json = nlohmann::json;

namespace {

ParamGroup group_from_fixture_name(const std::string& name) {
  if (name == "conv_weight") return ParamGroup::ConvWeight;
  if (name == "conv_bias") return ParamGroup::ConvBias;
  if (name == "linear_weight") return ParamGroup::LinearWeight;
  if (name == "linear_bias") return ParamGroup::LinearBias;
  if (name == "bn_weight") return ParamGroup::BNWeight;
  if (name == "bn_bias") return ParamGroup::BNBias;
  throw std::invalid_argument("fixture names unknown parameter group " + name);
}

OptimHyper hyper_from_fixture(const json& c) {
  OptimHyper h;
  h.rule =
      optimizer_info(table_value(optimizer_table(), c.at("optimizer").get<std::string>())).rule;
  const json& p = c.at("hyper");
  h.lr = p.at("lr").get<double>();
  h.momentum = p.value("momentum", 0.0);
  h.dampening = p.value("dampening", 0.0);
  h.nesterov = p.value("nesterov", false);
  h.beta1 = p.value("beta1", 0.9);
  h.beta2 = p.value("beta2", 0.999);
  h.amsgrad = p.value("amsgrad", false);
  h.eps = p.value("eps", 1e-8);
  h.lr_decay = p.value("lr_decay", 0.0);
  h.initial_accumulator = p.value("initial_accumulator", 0.0);
  h.alpha = p.value("alpha", 0.99);
  h.centered = p.value("centered", false);
  h.rho = p.value("rho", 0.9);
  return h;
}

struct OptimizerFixture {
  SafetensorsReader file = test::load_fixture("optimizers.safetensors");
  json cases = json::parse(file.metadata().at("cases"));
  json params = json::parse(file.metadata().at("params"));
  int steps = std::stoi(file.metadata().at("steps"));

  std::vector<ParamView> views() const {
    std::vector<ParamView> out;
    int64_t offset = 0;
    for (const json& p : params) {
      ParamView v;
      v.name = p.at("name").get<std::string>();
      v.group = group_from_fixture_name(p.at("group").get<std::string>());
      v.offset = offset;
      v.shape = p.at("shape").get<Shape>();
      offset += shape_numel(v.shape);
      out.push_back(v);
    }
    return out;
  }
  int64_t numel() const {
    int64_t n = 0;
    for (const ParamView& v : views()) n += shape_numel(v.shape);
    return n;
  }
  // The named tensors concatenated into one flat buffer.
  std::vector<double> flat(const std::string& prefix) const {
    std::vector<double> out;
    for (const ParamView& v : views()) {
      std::vector<double> t = file.get_f64(prefix + v.name).to_vector_f64();
      out.insert(out.end(), t.begin(), t.end());
    }
    return out;
  }
};

Tensor flat_tensor(const std::vector<double>& v, DType dtype) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}).to(dtype);
}

// Runs one fixture case through Optimizer and returns the parameters after all steps.
std::vector<double> replay(const OptimizerFixture& fx, const json& c, DType dtype) {
  const OptimHyper h = hyper_from_fixture(c);
  const RegKind reg = table_value(reg_kind_table(), c.at("reg").get<std::string>());
  std::set<ParamGroup> groups;
  for (const json& g : c.at("reg_groups")) groups.insert(group_from_fixture_name(g));
  const std::vector<UpdateSegment> segments =
      build_update_segments(fx.views(), fx.numel(), reg, c.at("reg_lambda").get<double>(), groups);
  Optimizer opt(h, reg, segments, fx.numel(), dtype);
  REQUIRE(opt.lambda() == Approx(reg == RegKind::None ? 0.0 : c.at("reg_lambda").get<double>()));
  Tensor params = flat_tensor(fx.flat("init."), dtype);
  for (int k = 0; k < fx.steps; ++k) {
    Tensor grads = flat_tensor(fx.flat("grad." + std::to_string(k) + "."), dtype);
    opt.step(params, grads, h.lr, h.lr, nullptr);
  }
  REQUIRE(opt.steps() == fx.steps);
  return params.to_vector_f64();
}

// Largest |a - b| / (|b| + floor) over the buffer.
double max_rel_error(const std::vector<double>& a, const std::vector<double>& b, double floor) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]) / (std::fabs(b[i]) + floor));
  return worst;
}

}  // namespace

TEST_CASE("optimizers match PyTorch 1.13 over five steps", "[optim][parity]") {
  const OptimizerFixture fx;
  REQUIRE(fx.cases.size() >= 30);
  for (const json& c : fx.cases) {
    const std::string name = c.at("name").get<std::string>();
    INFO("case " << name << ": " << c.dump());
    const std::vector<double> expected = fx.flat("after." + name + ".");
    // float32 run against the float64 reference; then the float64 run, which
    // must agree to near double precision.
    const double err32 = max_rel_error(replay(fx, c, DType::F32), expected, 1e-2);
    CHECK(err32 <= 1e-4);
    const double err64 = max_rel_error(replay(fx, c, DType::F64), expected, 1e-2);
    CHECK(err64 <= 1e-10);
  }
}

TEST_CASE("optimizer fixture cases are sensitive to the rule and the regularizer",
          "[optim][parity]") {
  // Guards the parity test against weak fixtures: every case moves the
  // parameters far beyond the tolerance, and every regularized case ends far
  // from its unregularized twin.
  const OptimizerFixture fx;
  const std::vector<double> init = fx.flat("init.");
  for (const json& c : fx.cases) {
    const std::string name = c.at("name").get<std::string>();
    INFO("case " << name);
    const std::vector<double> after = fx.flat("after." + name + ".");
    CHECK(max_rel_error(after, init, 1e-2) > 1e-2);
    if (c.at("reg") != "none") {
      std::string plain = name.substr(0, name.find(c.at("reg").get<std::string>())) + "none";
      CHECK(max_rel_error(after, fx.flat("after." + plain + "."), 1e-2) > 1e-3);
    }
  }
}

TEST_CASE("one Adam step from zero state is lr * g / (|g| + eps)", "[optim]") {
  OptimStep s;
  s.hyper.rule = UpdateRule::Adam;
  s.hyper.eps = 1e-3;
  s.lr = 0.1;
  s.step = 1;
  const std::vector<double> p0 = {1.0, -2.0, 0.5}, g = {0.3, -0.02, 0.0};
  Tensor params = flat_tensor(p0, DType::F64), grads = flat_tensor(g, DType::F64);
  std::vector<Tensor> state = {Tensor({3}, DType::F64), Tensor({3}, DType::F64)};
  cpu_optimizer_step(s, params, grads, state, {{0, 3, 0.0f}});
  const std::vector<double> p = params.to_vector_f64();
  // Bias corrections cancel on step 1, except on eps: denom = |g| + eps.
  for (int i = 0; i < 3; ++i)
    CHECK(p[i] == Approx(p0[i] - 0.1 * g[i] / (std::fabs(g[i]) + 1e-3)).epsilon(1e-12));
  CHECK(state[0].to_vector_f64()[0] == Approx(0.1 * 0.3));
  CHECK(state[1].to_vector_f64()[1] == Approx(0.001 * 0.02 * 0.02));
}

TEST_CASE("SGD momentum starts from the gradient - then dampens", "[optim]") {
  OptimStep s;
  s.hyper.rule = UpdateRule::SGD;
  s.hyper.momentum = 0.9;
  s.hyper.dampening = 0.5;
  s.reg = RegKind::L2;
  s.lr = 0.1;
  Tensor params = flat_tensor({2.0, 2.0}, DType::F64);
  Tensor grads = flat_tensor({1.0, 1.0}, DType::F64);
  std::vector<Tensor> state = {Tensor({2}, DType::F64)};
  // Element 0 is regularized with lambda 0.5, element 1 is exempt.
  const std::vector<UpdateSegment> segs = {{0, 1, 0.5f}, {1, 1, 0.0f}};
  s.step = 1;
  cpu_optimizer_step(s, params, grads, state, segs);
  // d = g + lambda * p = 2 -> buf = 2, p = 2 - 0.2 = 1.8; exempt: buf = 1, p = 1.9.
  CHECK(params.to_vector_f64() == std::vector<double>{2.0 - 0.1 * 2.0, 2.0 - 0.1 * 1.0});
  s.step = 2;
  cpu_optimizer_step(s, params, grads, state, segs);
  // d = 1 + 0.9 = 1.9 -> buf = 0.9 * 2 + 0.5 * 1.9 = 2.75, p = 1.8 - 0.275.
  const std::vector<double> p = params.to_vector_f64();
  CHECK(p[0] == Approx(1.8 - 0.275).epsilon(1e-14));
  // exempt: buf = 0.9 * 1 + 0.5 * 1 = 1.4, p = 1.9 - 0.14.
  CHECK(p[1] == Approx(1.9 - 0.14).epsilon(1e-14));
}

TEST_CASE("decoupled decay scales the parameter by 1 - decay_lr * lambda before the rule",
          "[optim]") {
  OptimStep s;
  s.hyper.rule = UpdateRule::SGD;
  s.reg = RegKind::Decoupled;
  s.lr = 0.1;
  s.decay_lr = 0.5;  // differs from lr on purpose
  Tensor params = flat_tensor({4.0, 4.0}, DType::F64);
  Tensor grads = flat_tensor({1.0, 1.0}, DType::F64);
  std::vector<Tensor> state;
  cpu_optimizer_step(s, params, grads, state, {{0, 1, 0.25f}, {1, 1, 0.0f}});
  CHECK(params.to_vector_f64() == std::vector<double>{4.0 * (1 - 0.5 * 0.25) - 0.1, 4.0 - 0.1});
}

TEST_CASE("the parallel loop updates every element once with its segment's lambda", "[optim]") {
  // A large buffer with many segments must give, element by element, what a
  // one-element buffer gives.
  OptimStep s;
  s.hyper.rule = UpdateRule::RMSProp;
  s.hyper.centered = true;
  s.hyper.momentum = 0.5;
  s.reg = RegKind::L2;
  s.lr = 0.01;
  const int64_t n = 200003;
  std::vector<float> p0(n), g(n);
  for (int64_t i = 0; i < n; ++i) {
    p0[i] = std::sin(0.37f * static_cast<float>(i));
    g[i] = std::cos(0.11f * static_cast<float>(i));
  }
  std::vector<UpdateSegment> segs;
  for (int64_t off = 0, k = 0; off < n; ++k) {
    const int64_t len = std::min<int64_t>(n - off, 1000 + 7919 * k % 20000);
    segs.push_back({off, len, k % 3 == 0 ? 0.0f : 0.01f * static_cast<float>(k % 5)});
    off += len;
  }
  Tensor params = Tensor::from_vector(p0, {n}), grads = Tensor::from_vector(g, {n});
  std::vector<Tensor> state = {Tensor({n}), Tensor({n}), Tensor({n})};
  for (int step = 1; step <= 2; ++step) {
    s.step = step;
    cpu_optimizer_step(s, params, grads, state, segs);
  }
  const std::vector<float> big = params.to_vector_f32();
  for (const UpdateSegment& seg : segs) {
    for (int64_t i : {seg.offset, seg.offset + seg.length / 2, seg.offset + seg.length - 1}) {
      Tensor p1 = Tensor::from_vector(std::vector<float>{p0[i]}, {1});
      Tensor g1 = Tensor::from_vector(std::vector<float>{g[i]}, {1});
      std::vector<Tensor> st1 = {Tensor({1}), Tensor({1}), Tensor({1})};
      for (int step = 1; step <= 2; ++step) {
        s.step = step;
        cpu_optimizer_step(s, p1, g1, st1, {{0, 1, seg.lambda}});
      }
      REQUIRE(big[i] == p1.to_vector_f32()[0]);
    }
  }
}

TEST_CASE("cpu_optimizer_step rejects inconsistent buffers", "[optim]") {
  OptimStep s;
  s.hyper.rule = UpdateRule::Adam;
  Tensor params({4}), grads({4});
  std::vector<Tensor> state = {Tensor({4}), Tensor({4})};
  CHECK_NOTHROW(cpu_optimizer_step(s, params, grads, state, {{0, 4, 0.0f}}));
  // Segments with a gap, an overlap, or short coverage.
  CHECK_THROWS_WITH(cpu_optimizer_step(s, params, grads, state, {{0, 2, 0.0f}, {3, 1, 0.0f}}),
                    Catch::Contains("segment 1"));
  CHECK_THROWS_AS(cpu_optimizer_step(s, params, grads, state, {{0, 3, 0.0f}, {2, 2, 0.0f}}),
                  std::invalid_argument);
  CHECK_THROWS_WITH(cpu_optimizer_step(s, params, grads, state, {{0, 3, 0.0f}}),
                    Catch::Contains("cover 3"));
  std::vector<Tensor> one = {Tensor({4})};
  CHECK_THROWS_WITH(cpu_optimizer_step(s, params, grads, one, {{0, 4, 0.0f}}),
                    Catch::Contains("2 state buffers"));
  Tensor short_grads({3});
  CHECK_THROWS_AS(cpu_optimizer_step(s, params, short_grads, state, {{0, 4, 0.0f}}),
                  std::invalid_argument);
  Tensor ints({4}, DType::I32);
  CHECK_THROWS_WITH(cpu_optimizer_step(s, ints, grads, state, {{0, 4, 0.0f}}),
                    Catch::Contains("f32 or f64"));
  s.step = 0;
  CHECK_THROWS_WITH(cpu_optimizer_step(s, params, grads, state, {{0, 4, 0.0f}}),
                    Catch::Contains("step"));
}

TEST_CASE("state buffers per rule", "[optim]") {
  OptimHyper h;
  h.rule = UpdateRule::SGD;
  CHECK(optimizer_state_count(h) == 0);
  h.momentum = 0.9;
  CHECK(optimizer_state_names(h) == std::vector<std::string>{"momentum_buffer"});
  h.rule = UpdateRule::Adam;
  CHECK(optimizer_state_count(h) == 2);
  h.amsgrad = true;
  CHECK(optimizer_state_names(h).back() == "max_exp_avg_sq");
  h.rule = UpdateRule::RMSProp;
  h.momentum = 0.0;
  CHECK(optimizer_state_count(h) == 1);
  h.centered = true;
  CHECK(optimizer_state_names(h) == std::vector<std::string>{"square_avg", "grad_avg"});
  h.momentum = 0.5;
  CHECK(optimizer_state_count(h) == 3);
  for (UpdateRule r : {UpdateRule::SGD, UpdateRule::Adam, UpdateRule::AdaGrad, UpdateRule::RMSProp,
                       UpdateRule::AdaDelta, UpdateRule::AdaMax}) {
    h.rule = r;
    CHECK(static_cast<int>(optimizer_state_names(h).size()) == optimizer_state_count(h));
  }
}

TEST_CASE("Optimizer allocates state - counts steps and validates", "[optim]") {
  OptimHyper h;
  h.rule = UpdateRule::AdaGrad;
  h.initial_accumulator = 0.25;
  Optimizer opt(h, RegKind::None, {{0, 3, 0.0f}}, 3);
  REQUIRE(opt.state().size() == 1);
  CHECK(opt.state()[0].to_vector_f32() == std::vector<float>{0.25f, 0.25f, 0.25f});
  CHECK(opt.state_names() == std::vector<std::string>{"sum"});
  Tensor params({3}), grads = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3});
  opt.step(params, grads, 0.1, 0.1, nullptr);
  CHECK(opt.steps() == 1);
  CHECK(opt.state()[0].to_vector_f32()[1] == Approx(4.25f));
  Tensor wrong({4});
  CHECK_THROWS_WITH(opt.step(wrong, wrong, 0.1, 0.1, nullptr), Catch::Contains("3 parameters"));
  CHECK_THROWS_WITH(opt.step(params, grads, -1.0, 0.1, nullptr), Catch::Contains("learning rate"));
  CHECK(opt.steps() == 1);
  opt.set_steps(10);
  CHECK(opt.steps() == 10);

  CHECK_THROWS_WITH(Optimizer(h, RegKind::None, {{0, 2, 0.0f}}, 3), Catch::Contains("cover 2"));
  OptimHyper bad;
  bad.rule = UpdateRule::SGD;
  bad.nesterov = true;
  CHECK_THROWS_WITH(validate_hyper(bad), Catch::Contains("nesterov"));
  bad = OptimHyper{};
  bad.beta2 = 1.0;
  CHECK_THROWS_WITH(validate_hyper(bad), Catch::Contains("beta2"));
}

TEST_CASE("update segments follow the parameter groups and merge neighbours", "[optim]") {
  auto view = [](const char* name, ParamGroup g, int64_t offset, Shape shape) {
    ParamView v;
    v.name = name;
    v.group = g;
    v.offset = offset;
    v.shape = std::move(shape);
    return v;
  };
  // Out of order on purpose: segments follow offsets, not list order.
  const std::vector<ParamView> views = {
      view("conv2.weight", ParamGroup::ConvWeight, 60, {2, 2, 3, 3}),
      view("conv1.weight", ParamGroup::ConvWeight, 0, {4, 1, 3, 3}),
      view("bn1.weight", ParamGroup::BNWeight, 36, {4}),
      view("bn1.bias", ParamGroup::BNBias, 40, {4}),
      view("fc.weight", ParamGroup::LinearWeight, 44, {4, 4}),
  };
  const std::set<ParamGroup> no_bn = {ParamGroup::ConvWeight, ParamGroup::LinearWeight};
  const auto segs = build_update_segments(views, 96, RegKind::L2, 0.5, no_bn);
  REQUIRE(segs.size() == 3);
  CHECK((segs[0].offset == 0 && segs[0].length == 36 && segs[0].lambda == 0.5f));
  CHECK((segs[1].offset == 36 && segs[1].length == 8 && segs[1].lambda == 0.0f));
  CHECK((segs[2].offset == 44 && segs[2].length == 52 && segs[2].lambda == 0.5f));

  const auto all = build_update_segments(views, 96, RegKind::Decoupled, 0.5, all_param_groups());
  REQUIRE(all.size() == 1);
  const auto none = build_update_segments(views, 96, RegKind::None, 0.5, all_param_groups());
  REQUIRE(none.size() == 1);
  CHECK(none[0].lambda == 0.0f);

  CHECK_THROWS_WITH(build_update_segments(views, 100, RegKind::L2, 0.5, no_bn),
                    Catch::Contains("cover 96"));
  std::vector<ParamView> gap = views;
  gap[0].offset = 61;
  CHECK_THROWS_WITH(build_update_segments(gap, 97, RegKind::L2, 0.5, no_bn),
                    Catch::Contains("conv2.weight"));
  CHECK_THROWS_AS(build_update_segments(views, 96, RegKind::L2, -1.0, no_bn),
                  std::invalid_argument);
}

TEST_CASE("optimizer names map to their update rules", "[optim]") {
  // torch.optim.AdamW is Adam with decoupled weight decay; every other name is its own rule.
  CHECK(optimizer_info(OptimizerName::AdamW).rule == UpdateRule::Adam);
  CHECK(optimizer_info(OptimizerName::AdamW).default_reg == RegKind::Decoupled);
  CHECK(optimizer_info(OptimizerName::Adam).default_reg == RegKind::L2);
  std::set<UpdateRule> rules;
  for (const OptimizerInfo& info : optimizer_infos()) {
    INFO(info.text);
    CHECK(table_name(optimizer_table(), info.name) == info.text);
    rules.insert(info.rule);
  }
  CHECK(rules.size() == 6);  // every rule reachable from some name
  CHECK(table_names(reg_kind_table()) == std::vector<std::string>{"none", "l2", "decoupled"});
}
