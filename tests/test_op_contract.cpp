// The op contract (backend.cpp) holds for every backend: a backend that accepts
// anything in its do_<op> still sees only checked calls. The stand-in device here
// runs F32 only, like CUDA, and counts the calls that reach it.
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "optim/optim_types.h"
#include "tensor/tensor.h"

using namespace st;
using Catch::Matchers::Contains;

namespace {

class CountingBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
  std::string name() const override { return "counting"; }
  bool supports(DType dtype) const override { return dtype == DType::F32; }
  std::map<std::string, int> calls;

 protected:
#define ST_COUNT_OP(R, name, params, args, key) \
  R do_##name params override {                 \
    ++calls[#name];                             \
    return R();                                 \
  }
  ST_BACKEND_OPS(ST_COUNT_OP)
#undef ST_COUNT_OP
};

}  // namespace

TEST_CASE("op contract: every backend gets checked arguments only", "[ops][contract]") {
  CountingBackend be;
  const Tensor x({2, 3, 4, 4}), gamma({3}), beta({3});
  Tensor rm({3}), rv({3}), y({2, 3, 4, 4}), mean({3}), invstd({3});

  SECTION("batch norm: momentum in [0, 1], eps positive") {
    be.batchnorm_forward_train(x, gamma, beta, rm, rv, 0.1, 1e-5, y, mean, invstd);
    CHECK(be.calls["batchnorm_forward_train"] == 1);
    REQUIRE_THROWS_WITH(
        be.batchnorm_forward_train(x, gamma, beta, rm, rv, 1.5, 1e-5, y, mean, invstd),
        Contains("batchnorm_forward_train") && Contains("momentum"));
    REQUIRE_THROWS_WITH(
        be.batchnorm_forward_train(x, gamma, beta, rm, rv, 0.1, 0.0, y, mean, invstd),
        Contains("eps"));
    REQUIRE_THROWS_WITH(be.batchnorm_forward_eval(x, gamma, beta, rm, rv, -1.0, y),
                        Contains("batchnorm_forward_eval") && Contains("eps"));
    CHECK(be.calls["batchnorm_forward_train"] == 1);
    CHECK(be.calls.count("batchnorm_forward_eval") == 0);
  }

  SECTION("dtypes the backend does not run are refused, naming the backend") {
    const Tensor x64({2, 3}, DType::F64);
    Tensor y64({2, 3}, DType::F64);
    REQUIRE_THROWS_WITH(be.relu_forward(x64, y64),
                        Contains("relu_forward") && Contains("expected f32 on the counting"));
    CHECK(be.calls.count("relu_forward") == 0);
  }

  SECTION("shapes are checked before the device sees the call") {
    Tensor wrong({2, 3, 4, 5});
    REQUIRE_THROWS_WITH(be.relu_forward(x, wrong), Contains("y has shape [2, 3, 4, 5]"));
    const Tensor w({5, 3, 3, 3});
    Tensor out({2, 5, 2, 2});
    ConvGeom g;  // 3x3, stride 1, no padding: 4x4 -> 2x2
    be.conv2d_forward(x, w, nullptr, g, out);
    CHECK(be.calls["conv2d_forward"] == 1);
    g.pad_h = g.pad_w = 1;  // 4x4 output now
    REQUIRE_THROWS_WITH(be.conv2d_forward(x, w, nullptr, g, out),
                        Contains("conv2d_forward") && Contains("y has shape"));
    CHECK(be.calls["conv2d_forward"] == 1);
  }

  SECTION("optimizer buffers and segments") {
    OptimStep s;
    s.hyper.rule = UpdateRule::SGD;
    s.step = 1;
    Tensor p({10}), g({10});
    std::vector<Tensor> state(static_cast<std::size_t>(optimizer_state_count(s.hyper)),
                              Tensor({10}));
    be.optimizer_step(s, p, g, state, {{0, 4, 0.0f}, {4, 6, 0.0f}});
    CHECK(be.calls["optimizer_step"] == 1);
    REQUIRE_THROWS_WITH(be.optimizer_step(s, p, g, state, {{0, 4, 0.0f}, {5, 5, 0.0f}}),
                        Contains("segment 1"));
    REQUIRE_THROWS_WITH(be.optimizer_step(s, p, g, state, {{0, 9, 0.0f}}),
                        Contains("segments cover 9"));
    s.step = 0;
    REQUIRE_THROWS_WITH(be.optimizer_step(s, p, g, state, {{0, 10, 0.0f}}), Contains("step"));
    CHECK(be.calls["optimizer_step"] == 1);
  }

  SECTION("upload_batch: host batch in, device tensors out, shapes alike") {
    const Tensor images({2, 3, 4, 4});
    const Tensor labels = Tensor::from_vector(std::vector<int32_t>{1, 0}, {2});
    Tensor xd({2, 3, 4, 4}), yd({2}, DType::I32);
    be.upload_batch(images, labels, xd, yd);
    CHECK(be.calls["upload_batch"] == 1);
    Tensor short_y({1}, DType::I32);
    REQUIRE_THROWS_WITH(be.upload_batch(images, labels, xd, short_y),
                        Contains("upload_batch") && Contains("y has shape [1]"));
    const Tensor float_labels({2});
    REQUIRE_THROWS_WITH(be.upload_batch(images, float_labels, xd, yd), Contains("labels"));
    CHECK(be.calls["upload_batch"] == 1);
  }
}

TEST_CASE("op contract: the CPU backend's upload_batch copies the batch", "[ops][contract]") {
  auto be = make_backend("cpu");
  const Tensor images =
      Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 1, 2, 2});
  const Tensor labels = Tensor::from_vector(std::vector<int32_t>{3, 1}, {2});
  Tensor x({2, 1, 2, 2}), y({2}, DType::I32);
  be->upload_batch(images, labels, x, y);
  CHECK(x.to_vector_f64() == images.to_vector_f64());
  CHECK(y.to_vector_f64() == std::vector<double>{3, 1});
}

TEST_CASE("op contract: --device cuda without a device is a usage error", "[ops][contract]") {
  if (cuda_device_available()) return;  // the error needs a machine without a device
  REQUIRE_THROWS_AS(make_backend("cuda"), DeviceError);
  REQUIRE_THROWS_WITH(make_backend("cuda"), Contains("--device cuda") && Contains("--device cpu"));
  REQUIRE_THROWS_AS(make_backend("tpu"), DeviceError);
  CHECK(make_backend("auto")->device() == Device::CPU);
}
