// train_step(): the non-finite checks and the divergence bound, against a network whose
// failure is put in by hand, and the skip_batch policy leaving the network as it was.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "nn/layer_json.h"
#include "nn/model.h"
#include "ops_test_util.h"
#include "optim/optimizer.h"
#include "train/train_step.h"

using namespace st;

namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> be = make_backend("cpu");
  return *be;
}

// With ReLUs, a NaN reaching a ReLU comes out as 0, so the loss can stay finite while the
// gradient does not; without them, a non-finite value reaches the loss.
std::unique_ptr<Model> small_net(bool relu = true) {
  const nlohmann::json layers = nlohmann::json::parse(relu ? R"([
    { "kind": "conv", "name": "conv1", "out": 4, "kernel": 3, "pad": 1 },
    { "kind": "bn", "name": "bn1" }, { "kind": "relu" },
    { "kind": "conv", "name": "conv2", "out": 6, "kernel": 3, "pad": 1 },
    { "kind": "bn", "name": "bn2" }, { "kind": "relu", "name": "relu2" },
    { "kind": "gap" },
    { "kind": "linear", "name": "fc", "out": "classes" }
  ])"
                                                           : R"([
    { "kind": "conv", "name": "conv1", "out": 4, "kernel": 3, "pad": 1 },
    { "kind": "bn", "name": "bn1" },
    { "kind": "gap", "name": "pool" },
    { "kind": "linear", "name": "fc", "out": "classes" }
  ])");
  auto m = std::make_unique<Model>(layers_from_json(layers, "model.layers"), InputShape{3, 8, 8}, 4,
                                   cpu());
  m->init_parameters(7);
  return m;
}

Tensor with_value(const Tensor& x, int64_t at, float value) {
  std::vector<float> v = x.to_vector_f32();
  v[static_cast<std::size_t>(at)] = value;
  return Tensor::from_vector(v, x.shape());
}

Optimizer adam(const Model& m) {
  OptimHyper h;
  h.rule = UpdateRule::Adam;
  h.lr = 1e-2;
  return Optimizer(h, RegKind::L2, 1e-3, {}, m);
}

StepChecks checks(NonFinitePolicy policy) {
  StepChecks c;
  c.on_nonfinite = policy;
  return c;
}

void poison(Model& m, const std::string& name, int64_t at) {
  Tensor t = m.tensor(name);
  std::vector<float> v = t.to_vector_f32();
  v[static_cast<std::size_t>(at)] = std::numeric_limits<float>::quiet_NaN();
  t.copy_from(Tensor::from_vector(v, t.shape()));
}

const Tensor images = testing::random_tensor({8, 3, 8, 8}, DType::F32, 3);
const Tensor labels = testing::random_labels(8, 4, 4);

StepInput input(int epoch, int64_t batch, const Tensor& x = images) {
  return {x, labels, 1e-2, 1e-2, epoch, batch};
}

}  // namespace

TEST_CASE("first_nonfinite finds NaN and infinities anywhere, and nothing in finite data",
          "[train_step]") {
  std::vector<float> v(10000, 1.5f);
  v[9000] = -3e38f;  // large but finite
  REQUIRE(first_nonfinite(Tensor::from_vector(v, {10000})) == -1);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    for (int64_t at : {0, 4095, 4096, 9999}) {
      std::vector<float> w = v;
      w[static_cast<std::size_t>(at)] = bad;
      INFO(bad << " at " << at);
      REQUIRE(first_nonfinite(Tensor::from_vector(w, {10000})) == at);
    }
  }
  std::vector<double> d(5, 0.0);
  d[3] = std::numeric_limits<double>::infinity();
  REQUIRE(first_nonfinite(Tensor::from_vector(d, {5})) == 3);
}

TEST_CASE("a NaN gradient with a finite loss stops the step, naming the parameter",
          "[train_step]") {
  auto m = small_net();
  Optimizer opt = adam(*m);
  StepState state(cpu(), checks(NonFinitePolicy::Stop));
  // A finite first step.
  const StepResult ok = train_step(state, *m, opt, input(1, 1));
  REQUIRE(std::isfinite(ok.loss));
  REQUIRE(opt.steps() == 1);
  // conv2's weight turns NaN after the forward: the loss is finite, but the gradient flowing
  // back through conv2 into bn1 and conv1 is not (conv2's own weight gradient is).
  const std::vector<float> before = m->params().to_vector_f32();
  try {
    train_step(state, *m, opt, input(3, 17),
               [](const Model& net) { poison(const_cast<Model&>(net), "conv2.weight", 5); });
    FAIL("no TrainingDiverged");
  } catch (const TrainingDiverged& e) {
    const std::string msg = e.what();
    INFO(msg);
    REQUIRE(msg.find("epoch 3, batch 17") != std::string::npos);
    REQUIRE(msg.find("'conv1.weight'") != std::string::npos);
    REQUIRE(e.details()["reason"] == "nonfinite_gradient");
    REQUIRE(e.details()["parameter"] == "conv1.weight");
    REQUIRE(e.details()["epoch"] == 3);
    REQUIRE(e.details()["batch"] == 17);
  }
  REQUIRE(opt.steps() == 1);  // no update with the bad gradient
}

TEST_CASE("a NaN loss stops the step, naming where the first non-finite value is", "[train_step]") {
  auto m = small_net(/*relu=*/false);
  Optimizer opt = adam(*m);
  StepState state(cpu(), checks(NonFinitePolicy::Stop));
  const auto diverged = [&](const Tensor& x) {
    try {
      train_step(state, *m, opt, input(2, 5, x));
    } catch (const TrainingDiverged& e) {
      INFO(e.what());
      REQUIRE(e.details()["reason"] == "nonfinite_loss");
      REQUIRE(std::string(e.what()).find("epoch 2, batch 5") != std::string::npos);
      return e.details();
    }
    FAIL("no TrainingDiverged");
    return nlohmann::json();
  };
  SECTION("a NaN parameter") {
    poison(*m, "bn1.bias", 2);
    const nlohmann::json d = diverged(images);
    REQUIRE(d["parameter"] == "bn1.bias");
    REQUIRE(d["loss"] == "nan");
  }
  SECTION("a NaN input") {
    REQUIRE(diverged(with_value(images, 100, std::nanf("")))["layer"] == "input");
  }
  SECTION("a layer that overflows") {
    // Finite inputs near the float maximum: sums of 27 of them overflow in conv1.
    const Tensor huge = testing::random_tensor(images.shape(), DType::F32, 9, 1e38, 3e38);
    REQUIRE(first_nonfinite(huge) == -1);
    REQUIRE(diverged(huge)["layer"] == "conv1");
  }
  REQUIRE(opt.steps() == 0);
}

TEST_CASE("a NaN input that ReLUs hide from the loss is caught in the gradient", "[train_step]") {
  auto m = small_net();
  Optimizer opt = adam(*m);
  StepState state(cpu(), checks(NonFinitePolicy::Stop));
  try {
    train_step(state, *m, opt, input(1, 1, with_value(images, 100, std::nanf(""))));
    FAIL("no TrainingDiverged");
  } catch (const TrainingDiverged& e) {
    INFO(e.what());
    REQUIRE(e.details()["reason"] == "nonfinite_gradient");
    REQUIRE(e.details()["parameter"] == "conv1.weight");
  }
  REQUIRE(opt.steps() == 0);
}

TEST_CASE("a finite loss above the divergence bound stops the step", "[train_step]") {
  auto m = small_net();
  Optimizer opt = adam(*m);
  TrainingConfig config;
  config.divergence.factor = 0.5;  // 0.5 x ln 4 = 0.69: below the ~1.39 of a fresh network
  const StepChecks c = step_checks(config, 4, Device::CPU);
  REQUIRE(c.max_loss == Approx(0.5 * std::log(4.0)));
  StepState state(cpu(), c);
  try {
    train_step(state, *m, opt, input(1, 1));
    FAIL("no TrainingDiverged");
  } catch (const TrainingDiverged& e) {
    INFO(e.what());
    REQUIRE(e.details()["reason"] == "loss_above_bound");
    REQUIRE(std::string(e.what()).find("training.divergence.factor") != std::string::npos);
  }
  // The absolute bound wins where it is tighter; 0 switches both off.
  config.divergence = {0.5, 0.1};
  REQUIRE(step_checks(config, 4, Device::CPU).max_loss == 0.1);
  config.divergence = {0, 0};
  REQUIRE(std::isinf(step_checks(config, 4, Device::CPU).max_loss));
  config.divergence = {100, 0};
  REQUIRE_NOTHROW(
      train_step(*std::make_unique<StepState>(cpu(), step_checks(config, 4, Device::CPU)), *m, opt,
                 input(1, 1)));
}

TEST_CASE("skip_batch leaves parameters, BN statistics and optimizer state as they were",
          "[train_step]") {
  auto m = small_net();
  Optimizer opt = adam(*m);
  StepState state(cpu(), checks(NonFinitePolicy::SkipBatch));
  train_step(state, *m, opt, input(1, 1));
  const std::vector<float> params = m->params().to_vector_f32();
  const std::vector<float> buffers = m->buffers().to_vector_f32();

  SECTION("an infinite input (caught in the gradient behind the ReLUs)") {
    const StepResult r = train_step(state, *m, opt, input(1, 2, with_value(images, 7, INFINITY)));
    REQUIRE(r.skipped);
    REQUIRE(r.skip_reason.find("non-finite gradient") != std::string::npos);
    REQUIRE(m->params().to_vector_f32() == params);
    REQUIRE(m->buffers().to_vector_f32() == buffers);  // the forward's BN update undone
    REQUIRE(opt.steps() == 1);
  }
  SECTION("a NaN gradient") {
    const StepResult r = train_step(state, *m, opt, input(1, 2), [](const Model& net) {
      poison(const_cast<Model&>(net), "conv2.weight", 0);
    });
    REQUIRE(r.skipped);
    REQUIRE(r.skip_reason.find("conv1.weight") != std::string::npos);
    std::vector<float> now = m->params().to_vector_f32();
    const ParamView& conv2 =
        *std::find_if(m->param_views().begin(), m->param_views().end(),
                      [](const ParamView& v) { return v.name == "conv2.weight"; });
    REQUIRE(std::isnan(now[static_cast<std::size_t>(conv2.offset)]));
    now[static_cast<std::size_t>(conv2.offset)] = params[static_cast<std::size_t>(conv2.offset)];
    REQUIRE(now == params);  // nothing but the hand-made NaN
    REQUIRE(m->buffers().to_vector_f32() == buffers);
    REQUIRE(opt.steps() == 1);
    m->tensor("conv2.weight")
        .copy_from(Tensor::from_vector(
            std::vector<float>(params.begin() + conv2.offset,
                               params.begin() + conv2.offset + shape_numel(conv2.shape)),
            conv2.shape));
  }
  // The next good batch trains as usual.
  const StepResult next = train_step(state, *m, opt, input(1, 3));
  REQUIRE_FALSE(next.skipped);
  REQUIRE(opt.steps() == 2);
  REQUIRE(m->params().to_vector_f32() != params);
}

TEST_CASE("skip_batch undoes the BN update of a batch whose loss is NaN", "[train_step]") {
  auto m = small_net(/*relu=*/false);
  Optimizer opt = adam(*m);
  StepState state(cpu(), checks(NonFinitePolicy::SkipBatch));
  const std::vector<float> params = m->params().to_vector_f32();
  const std::vector<float> buffers = m->buffers().to_vector_f32();
  const StepResult r =
      train_step(state, *m, opt, input(1, 1, with_value(images, 3, std::nanf(""))));
  REQUIRE(r.skipped);
  REQUIRE(r.skip_reason.find("non-finite loss at epoch 1, batch 1") != std::string::npos);
  REQUIRE(m->params().to_vector_f32() == params);
  REQUIRE(m->buffers().to_vector_f32() == buffers);
  REQUIRE(opt.steps() == 0);
  REQUIRE_FALSE(train_step(state, *m, opt, input(1, 2)).skipped);
  REQUIRE(first_nonfinite(m->buffers()) == -1);
}
