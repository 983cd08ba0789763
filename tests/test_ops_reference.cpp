// Forward (and multi-threaded backward) results of the CPU ops against naive
// direct loops and closed forms in double precision, F32/F64 agreement, and
// argument validation.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm/gemm.h"
#include "ops_test_util.h"
#include "tensor/random.h"

using namespace st;
using namespace st::testing;
using Catch::Matchers::Contains;

namespace {

constexpr DType F32 = DType::F32;
constexpr DType F64 = DType::F64;

double tolerance(DType t) {
  return t == F64 ? 1e-12 : 2e-5;
}

struct ConvRef {
  std::vector<double> y, dx, dw, db;
};

// Direct loops over every output and kernel tap; dy drives the backward sums.
ConvRef naive_conv(const Tensor& xt, const Tensor& wt, const Tensor* bt, const Tensor& dyt,
                   const ConvGeom& g) {
  const int64_t n = xt.dim(0), c = xt.dim(1), h = xt.dim(2), w = xt.dim(3), o = wt.dim(0);
  const int64_t oh = g.out_h(h), ow = g.out_w(w);
  const std::vector<double> x = xt.to_vector_f64(), wv = wt.to_vector_f64(),
                            dy = dyt.to_vector_f64();
  const std::vector<double> b = bt ? bt->to_vector_f64() : std::vector<double>(o, 0.0);
  ConvRef r{std::vector<double>(n * o * oh * ow), std::vector<double>(x.size()),
            std::vector<double>(wv.size()), std::vector<double>(o)};
  for (int64_t in = 0; in < n; ++in)
    for (int64_t io = 0; io < o; ++io)
      for (int64_t p = 0; p < oh; ++p)
        for (int64_t q = 0; q < ow; ++q) {
          const int64_t yi = ((in * o + io) * oh + p) * ow + q;
          double acc = b[io];
          r.db[io] += dy[yi];
          for (int64_t ic = 0; ic < c; ++ic)
            for (int64_t i = 0; i < g.kh; ++i)
              for (int64_t j = 0; j < g.kw; ++j) {
                const int64_t ih = p * g.stride_h - g.pad_h + i, iw = q * g.stride_w - g.pad_w + j;
                if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                const int64_t xi = ((in * c + ic) * h + ih) * w + iw;
                const int64_t wi = ((io * c + ic) * g.kh + i) * g.kw + j;
                acc += x[xi] * wv[wi];
                r.dx[xi] += wv[wi] * dy[yi];
                r.dw[wi] += x[xi] * dy[yi];
              }
          r.y[yi] = acc;
        }
  return r;
}

double diff_to(const Tensor& a, const std::vector<double>& b) {
  return max_rel_diff(a, Tensor::from_vector(b, {static_cast<int64_t>(b.size())}));
}

struct ConvCase {
  Shape x;
  int64_t o;
  ConvGeom g;
};

const ConvCase kConvCases[] = {
    {{1, 3, 5, 7}, 4, geom(3, 3, 1, 1, 0, 0)},    {{2, 3, 5, 7}, 4, geom(3, 3, 2, 2, 1, 1)},
    {{3, 4, 6, 5}, 5, geom(1, 1, 1, 1, 0, 0)},    {{2, 2, 5, 7}, 3, geom(2, 3, 2, 1, 1, 0)},
    {{5, 8, 16, 12}, 16, geom(3, 3, 1, 1, 1, 1)},  // large enough to run on several threads
    {{4, 16, 9, 9}, 8, geom(1, 1, 1, 1, 0, 0)},    // pointwise, several threads
    {{3, 6, 11, 9}, 7, geom(5, 3, 2, 3, 2, 1)},
};

}  // namespace

TEST_CASE("conv2d forward and backward match direct loops", "[ops]") {
  auto be = make_cpu_backend();
  const int saved_threads = cpu_threads();
  // One thread, and three: an uneven split of the batch across threads.
  // F32 on every GEMM kernel set; F64 runs on OpenBLAS, once.
  for (cpu::Isa isa : cpu::supported_isas()) {
    cpu::ScopedIsa kernels(isa);
    for (int threads : {1, 3}) {
      set_cpu_threads(threads);
      for (DType dt : {F32, F64}) {
        if (dt == F64 && isa != cpu::best_isa()) continue;
        for (const ConvCase& k : kConvCases) {
          INFO("conv x " << shape_str(k.x) << " o " << k.o << " " << geom_str(k.g) << " "
                         << dtype_name(dt) << ", " << threads << " threads, kernels "
                         << cpu::isa_name(isa));
          Tensor x = random_tensor(k.x, dt, 1);
          Tensor w = random_tensor({k.o, k.x[1], k.g.kh, k.g.kw}, dt, 2);
          Tensor b = random_tensor({k.o}, dt, 3);
          const Shape ys{k.x[0], k.o, k.g.out_h(k.x[2]), k.g.out_w(k.x[3])};
          Tensor y(ys, dt), dy = random_tensor(ys, dt, 4);
          Tensor dx(x.shape(), dt), dw(w.shape(), dt), db(b.shape(), dt);
          be->conv2d_forward(x, w, &b, k.g, y);
          be->conv2d_backward(x, w, dy, k.g, &dx, dw, &db);
          const ConvRef ref = naive_conv(x, w, &b, dy, k.g);
          CHECK(diff_to(y, ref.y) < tolerance(dt));
          CHECK(diff_to(dx, ref.dx) < tolerance(dt));
          CHECK(diff_to(dw, ref.dw) < tolerance(dt));
          CHECK(diff_to(db, ref.db) < tolerance(dt));

          // Without a bias, and without dx (the first layer's case).
          be->conv2d_forward(x, w, nullptr, k.g, y);
          Tensor dw2(w.shape(), dt);
          be->conv2d_backward(x, w, dy, k.g, nullptr, dw2, nullptr);
          const ConvRef nobias = naive_conv(x, w, nullptr, dy, k.g);
          CHECK(diff_to(y, nobias.y) < tolerance(dt));
          CHECK(diff_to(dw2, ref.dw) < tolerance(dt));
        }
      }
    }
  }
  set_cpu_threads(saved_threads);
}

TEST_CASE("conv2d backward-weight is bitwise reproducible", "[ops]") {
  auto be = make_cpu_backend();
  const ConvGeom g = geom(3, 3, 1, 1, 1, 1);
  Tensor x = random_tensor({7, 8, 12, 12}, F32, 5);
  Tensor w = random_tensor({16, 8, 3, 3}, F32, 6);
  Tensor dy = random_tensor({7, 16, 12, 12}, F32, 7);
  Tensor dw1(w.shape(), F32), dw2(w.shape(), F32), db1({16}, F32), db2({16}, F32);
  be->conv2d_backward(x, w, dy, g, nullptr, dw1, &db1);
  be->conv2d_backward(x, w, dy, g, nullptr, dw2, &db2);
  REQUIRE(dw1.to_vector_f32() == dw2.to_vector_f32());
  REQUIRE(db1.to_vector_f32() == db2.to_vector_f32());

  // A different thread count may round differently, but not by more than F32 noise.
  const int saved = cpu_threads();
  set_cpu_threads(1);
  REQUIRE(cpu_threads() == 1);
  be->conv2d_backward(x, w, dy, g, nullptr, dw2, &db2);
  set_cpu_threads(saved);
  CHECK(max_rel_diff(dw1, dw2) < 1e-5);
}

TEST_CASE("batchnorm train mode matches the closed form and updates running stats", "[ops]") {
  auto be = make_cpu_backend();
  for (DType dt : {F32, F64}) {
    INFO(dtype_name(dt));
    const int64_t n = 3, c = 2, hw = 5;
    const double momentum = 0.1, eps = 1e-5;
    Tensor x = random_tensor({n, c, 1, hw}, dt, 8, -1, 4);
    Tensor gamma = random_tensor({c}, dt, 9), beta = random_tensor({c}, dt, 10);
    Tensor rm = random_tensor({c}, dt, 11), rv = random_tensor({c}, dt, 12, 0.5, 2);
    const std::vector<double> rm0 = rm.to_vector_f64(), rv0 = rv.to_vector_f64();
    Tensor y(x.shape(), dt), mean({c}, dt), invstd({c}, dt);
    be->batchnorm_forward_train(x, gamma, beta, rm, rv, momentum, eps, y, mean, invstd);
    const std::vector<double> xv = x.to_vector_f64(), yv = y.to_vector_f64();
    const std::vector<double> g = gamma.to_vector_f64(), bv = beta.to_vector_f64();
    for (int64_t ch = 0; ch < c; ++ch) {
      double s = 0, s2 = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < hw; ++j) s += xv[(i * c + ch) * hw + j];
      const double m = s / (n * hw);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < hw; ++j) s2 += std::pow(xv[(i * c + ch) * hw + j] - m, 2);
      const double var = s2 / (n * hw), unbiased = s2 / (n * hw - 1);
      const double tol = dt == F64 ? 1e-12 : 1e-5;
      CHECK(std::abs(mean.to_vector_f64()[ch] - m) < tol);
      CHECK(std::abs(invstd.to_vector_f64()[ch] - 1 / std::sqrt(var + eps)) < tol);
      CHECK(std::abs(rm.to_vector_f64()[ch] - ((1 - momentum) * rm0[ch] + momentum * m)) < tol);
      CHECK(std::abs(rv.to_vector_f64()[ch] - ((1 - momentum) * rv0[ch] + momentum * unbiased)) <
            tol);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < hw; ++j) {
          const int64_t k = (i * c + ch) * hw + j;
          CHECK(std::abs(yv[k] - ((xv[k] - m) / std::sqrt(var + eps) * g[ch] + bv[ch])) < tol);
        }
    }
  }
}

TEST_CASE("batchnorm eval mode uses the running statistics", "[ops]") {
  auto be = make_cpu_backend();
  for (DType dt : {F32, F64}) {
    INFO(dtype_name(dt));
    Tensor x = random_tensor({2, 3, 2, 2}, dt, 13, -2, 2);
    Tensor gamma = random_tensor({3}, dt, 14), beta = random_tensor({3}, dt, 15);
    Tensor rm = random_tensor({3}, dt, 16), rv = random_tensor({3}, dt, 17, 0.1, 3);
    Tensor y(x.shape(), dt);
    be->batchnorm_forward_eval(x, gamma, beta, rm, rv, 1e-3, y);
    const auto xv = x.to_vector_f64(), yv = y.to_vector_f64(), g = gamma.to_vector_f64(),
               b = beta.to_vector_f64(), m = rm.to_vector_f64(), v = rv.to_vector_f64();
    for (std::size_t k = 0; k < xv.size(); ++k) {
      const std::size_t ch = (k / 4) % 3;
      CHECK(std::abs(yv[k] - ((xv[k] - m[ch]) / std::sqrt(v[ch] + 1e-3) * g[ch] + b[ch])) <
            tolerance(dt) * 10);
    }
  }
}

// The fused op computes the same float expressions as the two ops, so the results must be
// identical bit for bit, in every mode and on every shape (including ones that are not a
// multiple of the vector width and ones large enough to run on several threads).
TEST_CASE("fused batchnorm+relu equals batchnorm then relu bit for bit", "[ops]") {
  auto be = make_cpu_backend();
  const Shape shapes[] = {{3, 5, 7, 9}, {4, 6}, {2, 3, 1, 1}, {16, 24, 17, 17}};
  for (DType dt : {F32, F64})
    for (const Shape& s : shapes) {
      INFO(dtype_name(dt) << " " << shape_str(s));
      const int64_t c = s[1];
      Tensor x = random_tensor(s, dt, 41, -2, 3);
      Tensor gamma = random_tensor({c}, dt, 42, 0.5, 1.5), beta = random_tensor({c}, dt, 43);
      Tensor rm1 = random_tensor({c}, dt, 44), rv1 = random_tensor({c}, dt, 45, 0.5, 2);
      Tensor rm2 = rm1.clone(), rv2 = rv1.clone();
      Tensor bn(s, dt), y_ref(s, dt), y(s, dt);
      Tensor mean1({c}, dt), invstd1({c}, dt), mean2({c}, dt), invstd2({c}, dt);
      be->batchnorm_forward_train(x, gamma, beta, rm1, rv1, 0.1, 1e-5, bn, mean1, invstd1);
      be->relu_forward(bn, y_ref);
      be->batchnorm_relu_forward_train(x, gamma, beta, rm2, rv2, 0.1, 1e-5, y, mean2, invstd2);
      CHECK(max_abs_diff(y, y_ref) == 0);
      CHECK(max_abs_diff(mean2, mean1) == 0);
      CHECK(max_abs_diff(invstd2, invstd1) == 0);
      CHECK(max_abs_diff(rm2, rm1) == 0);
      CHECK(max_abs_diff(rv2, rv1) == 0);
      // An independent check that the clipping happened: y = max(0, bn) elementwise.
      const auto yv = y.to_vector_f64(), bv = bn.to_vector_f64();
      int64_t clipped = 0;
      for (std::size_t k = 0; k < yv.size(); ++k) {
        CHECK(yv[k] == std::max(0.0, bv[k]));
        clipped += bv[k] < 0;
      }
      CHECK(clipped > 0);
      CHECK(clipped < static_cast<int64_t>(yv.size()));

      Tensor dy = random_tensor(s, dt, 46);
      Tensor dbn(s, dt), dx_ref(s, dt), dg_ref({c}, dt), db_ref({c}, dt);
      be->relu_backward(y_ref, dy, dbn);
      be->batchnorm_backward(x, gamma, mean1, invstd1, dbn, dx_ref, dg_ref, db_ref);
      Tensor dx(s, dt), dg({c}, dt), db({c}, dt);
      be->batchnorm_relu_backward(x, y, gamma, mean2, invstd2, dy, dx, dg, db);
      CHECK(max_abs_diff(dx, dx_ref) == 0);
      CHECK(max_abs_diff(dg, dg_ref) == 0);
      CHECK(max_abs_diff(db, db_ref) == 0);

      Tensor ev(s, dt), ev_ref(s, dt);
      be->batchnorm_forward_eval(x, gamma, beta, rm1, rv1, 1e-5, bn);
      be->relu_forward(bn, ev_ref);
      be->batchnorm_relu_forward_eval(x, gamma, beta, rm1, rv1, 1e-5, ev);
      CHECK(max_abs_diff(ev, ev_ref) == 0);
    }
}

TEST_CASE("max pooling picks the first maximum and treats padding as -inf", "[ops]") {
  auto be = make_cpu_backend();
  // One 3x4 plane of negative values with a tie at (0, 1) and (1, 0).
  Tensor x = Tensor::from_vector(
      std::vector<double>{-5, -1, -3, -4, -1, -6, -7, -2, -9, -8, -0.5, -3}, {1, 1, 3, 4});
  const PoolGeom g = geom(2, 2, 2, 2, 1, 1);  // windows hang over every border
  Tensor y({1, 1, 2, 3}, F64), argmax({1, 1, 2, 3}, DType::I32);
  be->maxpool2d_forward(x, g, y, argmax);
  CHECK(y.to_vector_f64() == std::vector<double>{-5, -1, -4, -1, -0.5, -2});
  const int32_t* a = argmax.data<int32_t>();
  CHECK(std::vector<int32_t>(a, a + 6) == std::vector<int32_t>{0, 1, 3, 4, 10, 7});

  Tensor tie = Tensor::from_vector(std::vector<double>{1, 2, 2, 0}, {1, 1, 2, 2});
  Tensor ty({1, 1, 1, 1}, F64), ta({1, 1, 1, 1}, DType::I32);
  be->maxpool2d_forward(tie, geom(2, 2, 2, 2, 0, 0), ty, ta);
  CHECK(ta.data<int32_t>()[0] == 1);

  Tensor dx({1, 1, 3, 4}, F64);
  be->maxpool2d_backward(Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {1, 1, 2, 3}),
                         argmax, dx);
  CHECK(dx.to_vector_f64() == std::vector<double>{1, 2, 0, 3, 4, 0, 0, 6, 0, 0, 5, 0});
}

TEST_CASE("average pooling counts padding in the divisor", "[ops]") {
  auto be = make_cpu_backend();
  Tensor x = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  Tensor y({1, 1, 2, 2}, F32);
  be->avgpool2d_forward(x, geom(3, 3, 2, 2, 1, 1), y);
  CHECK(y.to_vector_f64() == std::vector<double>{12.0f / 9, 16.0f / 9, 24.0f / 9, 28.0f / 9});
  Tensor gx = random_tensor({2, 3, 5, 7}, F64, 18), gy({2, 3}, F64);
  be->global_avgpool_forward(gx, gy);
  const auto v = gx.to_vector_f64();
  double s = 0;
  for (int i = 35; i < 70; ++i) s += v[i];
  CHECK(std::abs(gy.to_vector_f64()[1] - s / 35) < 1e-14);
}

TEST_CASE("linear forward and backward match direct loops on every kernel set", "[ops]") {
  auto be = make_cpu_backend();
  struct Dims {
    int64_t n, in, out;
  };
  // The classifier's shape, and sizes that are not multiples of the register blocks.
  for (const Dims& s : {Dims{3, 4, 2}, Dims{64, 512, 10}, Dims{17, 33, 7}, Dims{1, 100, 17}}) {
    for (cpu::Isa isa : cpu::supported_isas()) {
      cpu::ScopedIsa kernels(isa);
      for (DType dt : {F32, F64}) {
        INFO("linear " << s.n << " x " << s.in << " -> " << s.out << " " << dtype_name(dt)
                       << ", kernels " << cpu::isa_name(isa));
        Tensor x = random_tensor({s.n, s.in}, dt, 19), w = random_tensor({s.out, s.in}, dt, 20);
        Tensor b = random_tensor({s.out}, dt, 21), y({s.n, s.out}, dt);
        Tensor dy = random_tensor({s.n, s.out}, dt, 22);
        Tensor dx({s.n, s.in}, dt), dw({s.out, s.in}, dt), db({s.out}, dt);
        be->linear_forward(x, w, &b, y);
        be->linear_backward(x, w, dy, &dx, dw, &db);
        const auto xv = x.to_vector_f64(), wv = w.to_vector_f64(), bv = b.to_vector_f64(),
                   dyv = dy.to_vector_f64();
        std::vector<double> ry(s.n * s.out), rdx(s.n * s.in, 0.0), rdw(s.out * s.in, 0.0),
            rdb(s.out, 0.0);
        for (int64_t r = 0; r < s.n; ++r)
          for (int64_t o = 0; o < s.out; ++o) {
            ry[r * s.out + o] = bv[o];
            rdb[o] += dyv[r * s.out + o];
            for (int64_t i = 0; i < s.in; ++i) {
              ry[r * s.out + o] += xv[r * s.in + i] * wv[o * s.in + i];
              rdx[r * s.in + i] += dyv[r * s.out + o] * wv[o * s.in + i];
              rdw[o * s.in + i] += dyv[r * s.out + o] * xv[r * s.in + i];
            }
          }
        CHECK(diff_to(y, ry) < tolerance(dt));
        CHECK(diff_to(dx, rdx) < tolerance(dt));
        CHECK(diff_to(dw, rdw) < tolerance(dt));
        CHECK(diff_to(db, rdb) < tolerance(dt));
      }
    }
  }
}

TEST_CASE("softmax cross-entropy matches the direct formula and is stable", "[ops]") {
  auto be = make_cpu_backend();
  for (DType dt : {F32, F64}) {
    INFO(dtype_name(dt));
    Tensor logits = random_tensor({4, 5}, dt, 22, -4, 4);
    Tensor labels = random_labels(4, 5, 23);
    Tensor probs({4, 5}, dt);
    const double loss = be->softmax_xent_forward(logits, labels, probs);
    const auto z = logits.to_vector_f64(), p = probs.to_vector_f64();
    double ref = 0;
    for (int r = 0; r < 4; ++r) {
      double s = 0;
      for (int j = 0; j < 5; ++j) s += std::exp(z[r * 5 + j]);
      for (int j = 0; j < 5; ++j) CHECK(std::abs(p[r * 5 + j] - std::exp(z[r * 5 + j]) / s) < 1e-6);
      ref += std::log(s) - z[r * 5 + labels.data<int32_t>()[r]];
    }
    CHECK(std::abs(loss - ref / 4) < (dt == F64 ? 1e-13 : 1e-6));

    Tensor big = Tensor::from_vector(std::vector<double>{1000, 1000, -1000}, {1, 3}).to(dt);
    Tensor zero = Tensor::from_vector(std::vector<int32_t>{0}, {1});
    Tensor bp({1, 3}, dt);
    CHECK(std::abs(be->softmax_xent_forward(big, zero, bp) - std::log(2.0)) < 1e-6);
    CHECK(bp.to_vector_f64()[2] == 0.0);
  }
  // Row argmaxes: 1, 0 (the first of a tie), 0.
  Tensor logits = Tensor::from_vector(std::vector<float>{0, 3, 1, 5, 2, 5, 7, 0, 0}, {3, 3});
  CHECK(be->count_correct(logits, Tensor::from_vector(std::vector<int32_t>{1, 0, 0}, {3})) == 3);
  CHECK(be->count_correct(logits, Tensor::from_vector(std::vector<int32_t>{1, 2, 1}, {3})) == 1);
}

TEST_CASE("dropout draws its mask from the counter-based generator", "[ops]") {
  auto be = make_cpu_backend();
  const double p = 0.25;
  const uint64_t seed = 99;
  Tensor x = random_tensor({4, 8, 16}, F32, 24);
  Tensor mask(x.shape(), F32), y(x.shape(), F32);
  be->dropout_forward(x, p, seed, mask, y);
  Tensor x64 = x.to(F64), mask64(x.shape(), F64), y64(x.shape(), F64);
  be->dropout_forward(x64, p, seed, mask64, y64);
  const auto m = mask.to_vector_f64(), m64 = mask64.to_vector_f64(), xv = x.to_vector_f64(),
             yv = y.to_vector_f64();
  int64_t kept = 0;
  for (std::size_t i = 0; i < m.size(); ++i) {
    const bool keep = uniform01(seed, i) >= static_cast<float>(p);
    REQUIRE(m[i] == (keep ? static_cast<float>(1 / (1 - p)) : 0.0));
    REQUIRE(m64[i] == (keep ? 1 / (1 - p) : 0.0));
    REQUIRE(yv[i] == static_cast<float>(xv[i] * m[i]));
    kept += keep;
  }
  CHECK(std::abs(kept / static_cast<double>(m.size()) - (1 - p)) < 0.05);
  be->dropout_forward(x, 0.0, seed, mask, y);
  CHECK(y.to_vector_f32() == x.to_vector_f32());
}

TEST_CASE("relu - add and channel_absmax forward", "[ops]") {
  auto be = make_cpu_backend();
  Tensor x = Tensor::from_vector(std::vector<double>{-1, 0, 2, -3, 0.5, -0.25}, {1, 2, 1, 3});
  Tensor y(x.shape(), F64);
  be->relu_forward(x, y);
  CHECK(y.to_vector_f64() == std::vector<double>{0, 0, 2, 0, 0.5, 0});
  Tensor out({1, 2}, F32);
  be->channel_absmax(x, out);  // F64 input, F32 output
  CHECK(out.to_vector_f32() == std::vector<float>{2, 3});
  Tensor s(x.shape(), F64);
  be->add(x, y, s);
  CHECK(s.to_vector_f64() == std::vector<double>{-1, 0, 4, -3, 1, -0.25});
  be->add_inplace(s, x);
  CHECK(s.to_vector_f64() == std::vector<double>{-2, 0, 6, -6, 1.5, -0.5});
}

TEST_CASE("F32 and F64 agree on the same inputs", "[ops]") {
  auto be = make_cpu_backend();
  const Shape xs{3, 4, 7, 5};
  const ConvGeom g = geom(3, 3, 2, 1, 1, 1);
  auto run = [&](DType dt) {
    std::vector<Tensor> out;
    Tensor x = random_tensor(xs, dt, 30), w = random_tensor({6, 4, 3, 3}, dt, 31);
    Tensor b = random_tensor({6}, dt, 32);
    const Shape ys{3, 6, g.out_h(7), g.out_w(5)};
    Tensor y(ys, dt), dy = random_tensor(ys, dt, 33), dx(xs, dt), dw(w.shape(), dt), db({6}, dt);
    be->conv2d_forward(x, w, &b, g, y);
    be->conv2d_backward(x, w, dy, g, &dx, dw, &db);
    out.insert(out.end(), {y, dx, dw, db});

    Tensor gamma = random_tensor({6}, dt, 34), beta = random_tensor({6}, dt, 35);
    Tensor rm({6}, dt), rv({6}, dt), mean({6}, dt), invstd({6}, dt), bn(ys, dt);
    be->batchnorm_forward_train(y, gamma, beta, rm, rv, 0.1, 1e-5, bn, mean, invstd);
    Tensor dbn(ys, dt), dgamma({6}, dt), dbeta({6}, dt);
    be->batchnorm_backward(y, gamma, mean, invstd, dy, dbn, dgamma, dbeta);
    out.insert(out.end(), {bn, rm, rv, dbn, dgamma, dbeta});

    const PoolGeom pg = geom(2, 2, 2, 2, 0, 0);
    const Shape ps{3, 6, pg.out_h(ys[2]), pg.out_w(ys[3])};
    Tensor py(ps, dt), pa(ps, DType::I32), pdx(ys, dt), pdy = random_tensor(ps, dt, 36);
    be->maxpool2d_forward(bn, pg, py, pa);
    be->maxpool2d_backward(pdy, pa, pdx);
    Tensor ay(ps, dt), adx(ys, dt);
    be->avgpool2d_forward(bn, pg, ay);
    be->avgpool2d_backward(pdy, pg, adx);
    out.insert(out.end(), {py, pdx, ay, adx});

    Tensor feat({3, 6}, dt), lw = random_tensor({5, 6}, dt, 37), lb = random_tensor({5}, dt, 38);
    be->global_avgpool_forward(bn, feat);
    Tensor logits({3, 5}, dt), probs({3, 5}, dt), dlogits({3, 5}, dt);
    be->linear_forward(feat, lw, &lb, logits);
    Tensor labels = random_labels(3, 5, 39);
    Tensor loss = Tensor::from_vector(
        std::vector<double>{be->softmax_xent_forward(logits, labels, probs)}, {1});
    be->softmax_xent_backward(probs, labels, dlogits);
    Tensor dfeat({3, 6}, dt), dlw(lw.shape(), dt), dlb({5}, dt);
    be->linear_backward(feat, lw, dlogits, &dfeat, dlw, &dlb);
    out.insert(out.end(), {feat, logits, loss, probs, dlogits, dfeat, dlw, dlb});
    return out;
  };
  const std::vector<Tensor> f32 = run(F32), f64 = run(F64);
  for (std::size_t i = 0; i < f32.size(); ++i) {
    INFO("output " << i << " shape " << shape_str(f32[i].shape()));
    CHECK(max_rel_diff(f32[i], f64[i]) < 1e-4);
  }
}

TEST_CASE("ops reject mismatched shapes and dtypes with messages naming them", "[ops]") {
  auto be = make_cpu_backend();
  Tensor x({2, 3, 5, 7}), w({4, 3, 3, 3}), bad_y({2, 4, 3, 4}), y({2, 4, 3, 5});
  REQUIRE_THROWS_AS(be->conv2d_forward(x, w, nullptr, ConvGeom{}, bad_y), std::invalid_argument);
  REQUIRE_THROWS_WITH(be->conv2d_forward(x, w, nullptr, ConvGeom{}, bad_y),
                      Contains("conv2d_forward") && Contains("[2, 4, 3, 4]") &&
                          Contains("[2, 4, 3, 5]") && Contains("x [2, 3, 5, 7]"));
  Tensor w_chan({4, 2, 3, 3});
  REQUIRE_THROWS_WITH(be->conv2d_forward(x, w_chan, nullptr, ConvGeom{}, y),
                      Contains("input channels") && Contains("[4, 2, 3, 3]"));
  Tensor w64({4, 3, 3, 3}, F64);
  REQUIRE_THROWS_WITH(be->conv2d_forward(x, w64, nullptr, ConvGeom{}, y), Contains("f64"));
  Tensor dw_bad({4, 3, 3, 2});
  REQUIRE_THROWS_WITH(be->conv2d_backward(x, w, y, ConvGeom{}, nullptr, dw_bad, nullptr),
                      Contains("conv2d_backward") && Contains("dw has shape [4, 3, 3, 2]"));
  ConvGeom huge = geom(9, 9, 1, 1, 0, 0);
  Tensor w9({4, 3, 9, 9});
  REQUIRE_THROWS_WITH(be->conv2d_forward(x, w9, nullptr, huge, y), Contains("smaller than"));

  Tensor c3({3}), c4({4}), bn_y(x.shape());
  REQUIRE_THROWS_WITH(be->batchnorm_forward_eval(x, c4, c3, c3, c3, 1e-5, bn_y),
                      Contains("batchnorm_forward_eval") && Contains("gamma has shape [4]"));
  Tensor lx({2, 5}), lw({3, 4}), ly({2, 3});
  REQUIRE_THROWS_WITH(be->linear_forward(lx, lw, nullptr, ly),
                      Contains("linear_forward") && Contains("[2, 5]") && Contains("[3, 4]"));
  Tensor a({2, 3}), b({3, 2}), s({2, 3});
  REQUIRE_THROWS_WITH(be->add(a, b, s), Contains("add") && Contains("[3, 2]"));
  Tensor pooled({2, 3, 2, 2}), idx({2, 3, 2, 3}, DType::I32);
  REQUIRE_THROWS_WITH(be->maxpool2d_forward(x, geom(2, 2, 2, 2, 0, 0), pooled, idx),
                      Contains("maxpool2d_forward") && Contains("y has shape [2, 3, 2, 2]") &&
                          Contains("expected [2, 3, 2, 3]"));
  REQUIRE_THROWS_WITH(be->avgpool2d_forward(x, geom(2, 2, 2, 2, 2, 0), pooled),
                      Contains("at most half the window"));
  Tensor absmax_bad({2, 3}, F64);
  REQUIRE_THROWS_WITH(be->channel_absmax(x, absmax_bad), Contains("expected f32"));
  Tensor mask({2, 3}), dy({2, 3});
  REQUIRE_THROWS_WITH(be->dropout_forward(a, 1.0, 0, mask, dy), Contains("outside [0, 1)"));

  Tensor logits({2, 10}), probs({2, 10});
  Tensor labels = Tensor::from_vector(std::vector<int32_t>{3, 10}, {2});
  REQUIRE_THROWS_WITH(be->softmax_xent_forward(logits, labels, probs),
                      Contains("label 10") && Contains("row 1"));
  Tensor neg = Tensor::from_vector(std::vector<int32_t>{-1, 0}, {2});
  REQUIRE_THROWS_WITH(be->count_correct(logits, neg), Contains("label -1"));
  Tensor float_labels({2});
  REQUIRE_THROWS_WITH(be->softmax_xent_backward(probs, float_labels, logits),
                      Contains("labels has dtype f32"));
}
