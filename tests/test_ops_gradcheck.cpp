// Finite-difference checks of every backward op of the CPU backend, in double
// precision. Each loss is L = sum(r * y) with a fixed random r (so dy = r), or
// the op's own scalar loss for softmax cross-entropy.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>

#include "backend/cpu/cpu_backend.h"
#include "gradcheck.h"
#include "ops_test_util.h"

using namespace st;
using namespace st::testing;

namespace {

constexpr DType F64 = DType::F64;
constexpr double kStep = 1e-6;

std::vector<double> values(const Tensor& t) {
  return t.to_vector_f64();
}

GradTarget target(const std::string& name, Tensor& t, const Tensor& grad) {
  return {name, t.data<double>(), t.numel(), values(grad), {}};
}

void require_gradients_match(const std::string& what, const std::function<double()>& loss,
                             const std::vector<GradTarget>& targets) {
  GradCheckOptions opt;
  opt.step = kStep;
  const GradCheckReport r = check_gradients(loss, targets, opt);
  INFO(what << "\n" << r.summary());
  REQUIRE(r.ok());
}

struct ConvCase {
  int64_t n, c, h, w, o;
  ConvGeom g;
  bool bias;
};

std::string conv_case_str(const ConvCase& k) {
  return "conv x [" + std::to_string(k.n) + ", " + std::to_string(k.c) + ", " +
         std::to_string(k.h) + ", " + std::to_string(k.w) + "] o " + std::to_string(k.o) + " " +
         geom_str(k.g) + (k.bias ? " bias" : " no bias");
}

// An input element is a kink of max pooling when some window containing it has
// its two largest values within 2h: a probe can then change the argmax.
std::vector<bool> maxpool_ties(const Tensor& x, const PoolGeom& g) {
  const int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
  const std::vector<double> v = values(x);
  std::vector<bool> tie(v.size(), false);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t oh = 0; oh < g.out_h(h); ++oh)
      for (int64_t ow = 0; ow < g.out_w(w); ++ow) {
        std::vector<std::pair<double, int64_t>> win;
        for (int64_t i = 0; i < g.kh; ++i)
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t ih = oh * g.stride_h - g.pad_h + i, iw = ow * g.stride_w - g.pad_w + j;
            if (ih >= 0 && ih < h && iw >= 0 && iw < w)
              win.push_back({v[(pl * h + ih) * w + iw], (pl * h + ih) * w + iw});
          }
        std::sort(win.rbegin(), win.rend());
        if (win.size() > 1 && win[0].first - win[1].first < 2 * kStep)
          for (const auto& e : win) tie[e.second] = true;
      }
  return tie;
}

}  // namespace

TEST_CASE("conv2d backward matches finite differences", "[gradcheck][ops]") {
  auto be = make_cpu_backend();
  const ConvCase cases[] = {
      {1, 2, 5, 7, 3, geom(3, 3, 1, 1, 0, 0), true}, {2, 3, 5, 7, 4, geom(3, 3, 2, 2, 1, 1), false},
      {2, 3, 5, 7, 4, geom(3, 3, 1, 1, 1, 1), true}, {3, 2, 6, 5, 2, geom(1, 1, 1, 1, 0, 0), true},
      {2, 2, 5, 7, 3, geom(2, 3, 2, 1, 1, 0), true}, {2, 3, 7, 5, 2, geom(1, 1, 2, 2, 1, 1), false},
      {1, 1, 8, 8, 2, geom(3, 3, 3, 3, 1, 1), true}, {2, 2, 4, 6, 3, geom(2, 3, 1, 2, 0, 1), false},
  };
  for (const ConvCase& k : cases) {
    const std::string what = conv_case_str(k);
    Tensor x = random_tensor({k.n, k.c, k.h, k.w}, F64, 1);
    Tensor w = random_tensor({k.o, k.c, k.g.kh, k.g.kw}, F64, 2);
    Tensor b = random_tensor({k.o}, F64, 3);
    Tensor y({k.n, k.o, k.g.out_h(k.h), k.g.out_w(k.w)}, F64);
    Tensor r = random_tensor(y.shape(), F64, 4);
    const Tensor* bias = k.bias ? &b : nullptr;
    auto loss = [&] {
      be->conv2d_forward(x, w, bias, k.g, y);
      return dot(y, r);
    };
    Tensor dx(x.shape(), F64), dw(w.shape(), F64), db(b.shape(), F64);
    be->conv2d_backward(x, w, r, k.g, &dx, dw, k.bias ? &db : nullptr);
    std::vector<GradTarget> targets{target("x", x, dx), target("w", w, dw)};
    if (k.bias) targets.push_back(target("bias", b, db));
    require_gradients_match(what, loss, targets);
  }
}

TEST_CASE("batchnorm train-mode backward matches finite differences", "[gradcheck][ops]") {
  auto be = make_cpu_backend();
  const Shape shapes[] = {{2, 3, 4, 5}, {1, 2, 3, 3}, {5, 4}, {3, 2, 1, 1}};
  for (const Shape& s : shapes) {
    const int64_t c = s[1];
    Tensor x = random_tensor(s, F64, 11, -2, 3);
    Tensor gamma = random_tensor({c}, F64, 12, 0.5, 1.5);
    Tensor beta = random_tensor({c}, F64, 13);
    Tensor rm({c}, F64), rv({c}, F64), mean({c}, F64), invstd({c}, F64), y(s, F64);
    Tensor r = random_tensor(s, F64, 14);
    auto loss = [&] {
      be->batchnorm_forward_train(x, gamma, beta, rm, rv, 0.1, 1e-5, y, mean, invstd);
      return dot(y, r);
    };
    loss();
    Tensor dx(s, F64), dgamma({c}, F64), dbeta({c}, F64);
    be->batchnorm_backward(x, gamma, mean, invstd, r, dx, dgamma, dbeta);
    require_gradients_match(
        "batchnorm x " + shape_str(s), loss,
        {target("x", x, dx), target("gamma", gamma, dgamma), target("beta", beta, dbeta)});
  }
}

TEST_CASE("fused batchnorm+relu backward matches finite differences", "[gradcheck][ops]") {
  auto be = make_cpu_backend();
  const Shape shapes[] = {{2, 3, 4, 5}, {5, 4}, {3, 2, 1, 1}};
  for (const Shape& s : shapes) {
    const int64_t c = s[1];
    Tensor x = random_tensor(s, F64, 31, -2, 3);
    Tensor gamma = random_tensor({c}, F64, 32, 0.5, 1.5);
    Tensor beta = random_tensor({c}, F64, 33, -0.5, 0.5);
    Tensor rm({c}, F64), rv({c}, F64), mean({c}, F64), invstd({c}, F64), y(s, F64);
    Tensor r = random_tensor(s, F64, 34);
    auto loss = [&] {
      be->batchnorm_relu_forward_train(x, gamma, beta, rm, rv, 0.1, 1e-5, y, mean, invstd);
      return dot(y, r);
    };
    // A probe of any input moves every pre-activation of its channel (through the batch
    // statistics), so the loss is smooth there only if none of them sits near the kink.
    Tensor pre(s, F64);
    be->batchnorm_forward_train(x, gamma, beta, rm, rv, 0.1, 1e-5, pre, mean, invstd);
    const std::vector<double> z = values(pre);
    const int64_t plane = shape_numel(s) / (s[0] * c);
    std::vector<bool> near_kink(c, false);
    for (std::size_t i = 0; i < z.size(); ++i)
      if (std::abs(z[i]) < 1e-4) near_kink[(static_cast<int64_t>(i) / plane) % c] = true;
    loss();
    Tensor dx(s, F64), dgamma({c}, F64), dbeta({c}, F64);
    be->batchnorm_relu_backward(x, y, gamma, mean, invstd, r, dx, dgamma, dbeta);
    GradTarget tx = target("x", x, dx), tg = target("gamma", gamma, dgamma),
               tb = target("beta", beta, dbeta);
    tx.skip = [=](int64_t i) { return near_kink[(i / plane) % c]; };
    tg.skip = tb.skip = [=](int64_t ch) { return near_kink[ch]; };
    // Half the outputs are clipped: the check must see a gradient that differs from plain BN's.
    Tensor dx_bn(s, F64), dgamma_bn({c}, F64), dbeta_bn({c}, F64);
    be->batchnorm_backward(x, gamma, mean, invstd, r, dx_bn, dgamma_bn, dbeta_bn);
    REQUIRE(max_rel_diff(dx, dx_bn) > 1e-3);
    require_gradients_match("batchnorm+relu x " + shape_str(s), loss, {tx, tg, tb});
  }
}

TEST_CASE("relu backward matches finite differences away from the kink", "[gradcheck][ops]") {
  auto be = make_cpu_backend();
  Tensor x = random_tensor({2, 3, 4, 5}, F64, 21);
  Tensor y(x.shape(), F64), dx(x.shape(), F64);
  Tensor r = random_tensor(x.shape(), F64, 22);
  auto loss = [&] {
    be->relu_forward(x, y);
    return dot(y, r);
  };
  loss();
  be->relu_backward(y, r, dx);
  const std::vector<double> x0 = values(x);
  GradTarget t = target("x", x, dx);
  t.skip = [x0](int64_t i) { return std::abs(x0[i]) < 10 * kStep; };
  require_gradients_match("relu x [2, 3, 4, 5]", loss, {t});
}

TEST_CASE("pooling backward matches finite differences", "[gradcheck][ops]") {
  auto be = make_cpu_backend();
  struct PoolCase {
    Shape x;
    PoolGeom g;
  };
  const PoolCase cases[] = {
      {{1, 2, 5, 7}, geom(2, 2, 2, 2, 0, 0)}, {{2, 3, 5, 7}, geom(3, 3, 2, 2, 1, 1)},
      {{2, 2, 4, 6}, geom(3, 2, 1, 1, 1, 0)}, {{2, 1, 6, 6}, geom(3, 3, 3, 3, 0, 0)},
      {{1, 2, 5, 5}, geom(3, 3, 1, 1, 1, 1)},
  };
  for (const PoolCase& k : cases) {
    const std::string shape = " x " + shape_str(k.x) + " " + geom_str(k.g);
    Tensor x = random_tensor(k.x, F64, 31);
    const Shape out{k.x[0], k.x[1], k.g.out_h(k.x[2]), k.g.out_w(k.x[3])};
    Tensor y(out, F64), argmax(out, DType::I32), dx(k.x, F64);
    Tensor r = random_tensor(out, F64, 32);

    auto max_loss = [&] {
      be->maxpool2d_forward(x, k.g, y, argmax);
      return dot(y, r);
    };
    max_loss();
    be->maxpool2d_backward(r, argmax, dx);
    GradTarget t = target("x", x, dx);
    const std::vector<bool> ties = maxpool_ties(x, k.g);
    t.skip = [ties](int64_t i) { return static_cast<bool>(ties[i]); };
    require_gradients_match("maxpool2d" + shape, max_loss, {t});

    auto avg_loss = [&] {
      be->avgpool2d_forward(x, k.g, y);
      return dot(y, r);
    };
    be->avgpool2d_backward(r, k.g, dx);
    require_gradients_match("avgpool2d" + shape, avg_loss, {target("x", x, dx)});
  }
}

TEST_CASE("global average pool backward matches finite differences", "[gradcheck][ops]") {
  auto be = make_cpu_backend();
  for (const Shape& s : {Shape{1, 3, 5, 7}, Shape{2, 2, 3, 1}}) {
    Tensor x = random_tensor(s, F64, 41);
    Tensor y({s[0], s[1]}, F64), dx(s, F64);
    Tensor r = random_tensor(y.shape(), F64, 42);
    auto loss = [&] {
      be->global_avgpool_forward(x, y);
      return dot(y, r);
    };
    be->global_avgpool_backward(r, dx);
    require_gradients_match("global_avgpool x " + shape_str(s), loss, {target("x", x, dx)});
  }
}

TEST_CASE("linear backward matches finite differences", "[gradcheck][ops]") {
  auto be = make_cpu_backend();
  for (int64_t n : {1, 4}) {
    for (bool with_bias : {true, false}) {
      Tensor x = random_tensor({n, 5}, F64, 51);
      Tensor w = random_tensor({3, 5}, F64, 52);
      Tensor b = random_tensor({3}, F64, 53);
      Tensor y({n, 3}, F64), r = random_tensor({n, 3}, F64, 54);
      const Tensor* bias = with_bias ? &b : nullptr;
      auto loss = [&] {
        be->linear_forward(x, w, bias, y);
        return dot(y, r);
      };
      Tensor dx(x.shape(), F64), dw(w.shape(), F64), db(b.shape(), F64);
      be->linear_backward(x, w, r, &dx, dw, with_bias ? &db : nullptr);
      std::vector<GradTarget> targets{target("x", x, dx), target("w", w, dw)};
      if (with_bias) targets.push_back(target("bias", b, db));
      require_gradients_match(
          "linear x " + shape_str(x.shape()) + (with_bias ? " bias" : " no bias"), loss, targets);
    }
  }
}

TEST_CASE("softmax cross-entropy backward matches finite differences", "[gradcheck][ops]") {
  auto be = make_cpu_backend();
  for (const Shape& s : {Shape{1, 3}, Shape{4, 6}, Shape{3, 10}}) {
    Tensor logits = random_tensor(s, F64, 61, -3, 3);
    Tensor labels = random_labels(s[0], static_cast<int>(s[1]), 62);
    Tensor probs(s, F64), dlogits(s, F64);
    auto loss = [&] { return be->softmax_xent_forward(logits, labels, probs); };
    loss();
    be->softmax_xent_backward(probs, labels, dlogits);
    require_gradients_match("softmax_xent logits " + shape_str(s), loss,
                            {target("logits", logits, dlogits)});
  }
}

TEST_CASE("add and dropout backward match finite differences", "[gradcheck][ops]") {
  auto be = make_cpu_backend();
  const Shape s{2, 3, 4, 5};
  Tensor a = random_tensor(s, F64, 71), b = random_tensor(s, F64, 72);
  Tensor y(s, F64), r = random_tensor(s, F64, 73);
  auto add_loss = [&] {
    be->add(a, b, y);
    return dot(y, r);
  };
  // y = a + b passes dy to both inputs unchanged.
  require_gradients_match("add " + shape_str(s), add_loss, {target("a", a, r), target("b", b, r)});

  auto inplace_loss = [&] {
    Tensor acc = a.clone();
    be->add_inplace(acc, b);
    return dot(acc, r);
  };
  require_gradients_match("add_inplace " + shape_str(s), inplace_loss,
                          {target("y", a, r), target("x", b, r)});

  // The mask depends only on (seed, index), so it stays fixed while x is probed.
  Tensor mask(s, F64), dx(s, F64);
  auto dropout_loss = [&] {
    be->dropout_forward(a, 0.3, 1234, mask, y);
    return dot(y, r);
  };
  dropout_loss();
  be->dropout_backward(r, mask, dx);
  require_gradients_match("dropout p 0.3 " + shape_str(s), dropout_loss, {target("x", a, dx)});
}

TEST_CASE("the gradient checker reports a wrong gradient", "[gradcheck]") {
  // A check that cannot fail proves nothing: feed it a deliberately wrong gradient.
  std::vector<double> v{0.3, -1.2, 2.0};
  auto loss = [&] { return v[0] * v[0] + std::sin(v[1]) * v[2]; };
  GradTarget right{"v", v.data(), 3, {2 * v[0], std::cos(v[1]) * v[2], std::sin(v[1])}, {}};
  REQUIRE(check_gradients(loss, {right}).ok());
  GradTarget wrong = right;
  wrong.analytic[1] *= 1.001;
  const GradCheckReport r = check_gradients(loss, {wrong});
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.failed == 1);
  REQUIRE(r.mismatches.at(0).index == 1);
}

TEST_CASE("the gradient checker's kink guard skips non-smooth points", "[gradcheck]") {
  std::vector<double> v{0.0, 0.5};
  auto loss = [&] { return std::max(v[0], 0.0) + v[1] * v[1]; };
  // At v[0] = 0 no single derivative exists; 0.5 is as wrong as any value.
  GradTarget t{"v", v.data(), 2, {0.5, 1.0}, {}};
  GradCheckOptions opt;
  opt.kink_tol = 1e-3;
  const GradCheckReport r = check_gradients(loss, {t}, opt);
  REQUIRE(r.ok());
  REQUIRE(r.skipped == 1);
  REQUIRE(r.checked == 1);
}
