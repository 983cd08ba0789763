// The CPU backend's fast paths against direct double-precision loops, on every
// GEMM kernel set this CPU supports:
// Winograd F(2x2, 3x3) convolution in both layouts (odd sizes, every padding
// it takes, batches that split into uneven image groups), grouped im2col lowering, the 2x2
// max-pool path (ties, NaN, -inf; backward against the scatter), and batch norm on planes long
// enough for the vectorized reductions, with a mean far from zero.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_winograd.h"
#include "backend/cpu/gemm/gemm.h"
#include "ops_test_util.h"

using namespace st;
using namespace st::testing;

namespace {

struct ConvRef {
  std::vector<double> y, dx, dw, db;
};

ConvRef direct_conv(const Tensor& xt, const Tensor& wt, const Tensor& bt, const Tensor& dyt,
                    const ConvGeom& g) {
  const int64_t n = xt.dim(0), c = xt.dim(1), h = xt.dim(2), w = xt.dim(3), o = wt.dim(0);
  const int64_t oh = g.out_h(h), ow = g.out_w(w);
  const auto x = xt.to_vector_f64(), wv = wt.to_vector_f64(), b = bt.to_vector_f64(),
             dy = dyt.to_vector_f64();
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

// Largest |a - b| relative to the largest |b| (at least 1): the scale of a
// sum of many products, where float rounding is relative to the whole sum.
double scaled_diff(const Tensor& a, const std::vector<double>& b) {
  const std::vector<double> v = a.to_vector_f64();
  REQUIRE(v.size() == b.size());
  double scale = 1, m = 0;
  for (double e : b) scale = std::max(scale, std::abs(e));
  for (std::size_t i = 0; i < v.size(); ++i) m = std::max(m, std::abs(v[i] - b[i]));
  return m / scale;
}

struct Case {
  Shape x;
  int64_t o;
  ConvGeom g;
  const char* path;
};

// Channels >= 16 with a 3x3 stride-1 kernel take the Winograd path; the rest
// take im2col, grouped when an image's plane is small.
const Case kCases[] = {
    {{2, 16, 8, 8}, 16, geom(3, 3, 1, 1, 1, 1), "winograd"},
    {{3, 17, 7, 5}, 19, geom(3, 3, 1, 1, 1, 1), "winograd, odd sizes"},
    {{2, 16, 6, 7}, 16, geom(3, 3, 1, 1, 0, 0), "winograd, no padding"},
    {{2, 16, 5, 4}, 24, geom(3, 3, 1, 1, 2, 2), "winograd, padding 2"},
    {{2, 16, 6, 5}, 16, geom(3, 3, 1, 1, 1, 0), "winograd, padding 1x0"},
    {{9, 20, 4, 4}, 32, geom(3, 3, 1, 1, 1, 1), "winograd, image groups"},
    {{5, 16, 1, 1}, 16, geom(3, 3, 1, 1, 1, 1), "winograd, 1x1 plane"},
    {{10, 33, 4, 4}, 42, geom(3, 3, 1, 1, 1, 1), "winograd, channels not a multiple of 4"},
    {{9, 4, 4, 4}, 8, geom(3, 3, 1, 1, 1, 1), "im2col, image groups"},
    {{7, 3, 6, 6}, 5, geom(3, 3, 2, 2, 1, 1), "im2col, strided groups"},
    {{11, 5, 3, 4}, 6, geom(2, 3, 1, 2, 1, 0), "im2col, uneven kernel"},
    {{6, 16, 3, 3}, 8, geom(1, 1, 1, 1, 0, 0), "pointwise"},
    // im2col copies a row of a unit-stride kernel as one span when the output is as
    // wide as the input, and packs small weight matrices once (at most 64 filters,
    // 256 unrolled rows); the general copies and GEMM take the rest.
    {{3, 4, 7, 6}, 6, geom(5, 5, 1, 1, 2, 2), "im2col spans, 5x5 padding 2"},
    {{2, 5, 6, 7}, 7, geom(3, 3, 1, 1, 0, 1), "im2col spans, padding 0x1"},
    {{3, 4, 1, 1}, 5, geom(3, 3, 1, 1, 1, 1), "im2col spans, 1x1 plane"},
    {{4, 30, 7, 7}, 9, geom(3, 3, 2, 2, 1, 1), "im2col, 270 unrolled rows (unpacked)"},
    {{3, 5, 6, 6}, 70, geom(3, 3, 1, 1, 1, 1), "im2col, 70 filters (unpacked)"},
    // Thin layers (what skipping dead filters leaves): channel counts around
    // the GEMM register blocks' widths (8, 16, 32) and not multiples of them.
    {{5, 17, 9, 7}, 9, geom(3, 3, 1, 1, 1, 1), "im2col, 9 filters"},
    {{4, 16, 8, 8}, 17, geom(3, 3, 1, 1, 1, 1), "winograd, 16 -> 17"},
    {{3, 33, 6, 6}, 16, geom(3, 3, 1, 1, 1, 1), "winograd, 33 -> 16"},
    {{2, 8, 12, 12}, 33, geom(3, 3, 1, 1, 1, 1), "im2col, 8 -> 33"},
    // Fewer than 16 channels on one side, 9 to 17 on both, planes of 14x14 and up.
    {{3, 9, 16, 16}, 12, geom(3, 3, 1, 1, 1, 1), "thin winograd, 9 -> 12"},
    {{2, 13, 17, 19}, 17, geom(3, 3, 1, 1, 1, 1), "thin winograd, odd plane"},
    {{2, 17, 18, 16}, 5, geom(3, 3, 1, 1, 0, 1), "thin winograd, 17 -> 5, padding 0x1"},
    {{5, 9, 16, 17}, 17, geom(3, 3, 1, 1, 2, 2), "thin winograd, 9 -> 17, padding 2"},
    // Thin, but sent to im2col by the dispatch rule (8 in, or more than 17 on a side).
    {{3, 8, 16, 16}, 12, geom(3, 3, 1, 1, 1, 1), "im2col, 8 -> 12"},
    {{2, 40, 18, 16}, 5, geom(3, 3, 1, 1, 0, 1), "im2col, 40 -> 5, padding 0x1"},
};

}  // namespace

cpu::WindowDims dims_of(const Case& k) {
  cpu::WindowDims d;
  d.n = k.x[0], d.c = k.x[1], d.h = k.x[2], d.w = k.x[3], d.o = k.o, d.g = k.g;
  d.oh = k.g.out_h(d.h), d.ow = k.g.out_w(d.w);
  return d;
}

// Each case's label names the path the backend's dispatch rules send it to.
TEST_CASE("conv2d test cases take the paths they are labelled with", "[ops][fastpath]") {
  for (const Case& k : kCases) {
    INFO(k.path);
    const std::string path = k.path;
    const cpu::WindowDims d = dims_of(k);
    const bool thin = cpu::thin_winograd_applies(d);
    CHECK(thin == (path.rfind("thin winograd", 0) == 0));
    CHECK((!thin && cpu::winograd_applies(d)) == (path.rfind("winograd", 0) == 0));
  }
}

TEST_CASE("conv2d fast paths match direct loops", "[ops][fastpath]") {
  auto be = make_cpu_backend();
  const int saved = cpu_threads();
  for (cpu::Isa isa : cpu::supported_isas()) {
    cpu::ScopedIsa kernels(isa);
    for (int threads : {1, 2, 3}) {
      set_cpu_threads(threads);
      // F64 runs on OpenBLAS whatever the kernel set: once is enough.
      for (DType dt : {DType::F32, DType::F64}) {
        if (dt == DType::F64 && isa != cpu::best_isa()) continue;
        const double tol = dt == DType::F64 ? 1e-12 : 1e-5;
        for (const Case& k : kCases) {
          INFO(k.path << ": x " << shape_str(k.x) << " o " << k.o << " " << geom_str(k.g) << " "
                      << dtype_name(dt) << ", " << threads << " threads, kernels "
                      << cpu::isa_name(isa));
          Tensor x = random_tensor(k.x, dt, 21);
          Tensor w = random_tensor({k.o, k.x[1], k.g.kh, k.g.kw}, dt, 22);
          Tensor b = random_tensor({k.o}, dt, 23);
          const Shape ys{k.x[0], k.o, k.g.out_h(k.x[2]), k.g.out_w(k.x[3])};
          Tensor y(ys, dt), dy = random_tensor(ys, dt, 24);
          Tensor dx(x.shape(), dt), dw(w.shape(), dt), db(b.shape(), dt);
          const ConvRef ref = direct_conv(x, w, b, dy, k.g);

          be->conv2d_forward(x, w, &b, k.g, y);
          be->conv2d_backward(x, w, dy, k.g, &dx, dw, &db);
          CHECK(scaled_diff(y, ref.y) < tol);
          CHECK(scaled_diff(dx, ref.dx) < tol);
          CHECK(scaled_diff(dw, ref.dw) < tol);
          CHECK(scaled_diff(db, ref.db) < tol);

          // The fused ReLU on the same path: relu of that output, bit for bit,
          // into an output that starts from garbage.
          Tensor yr = random_tensor(ys, dt, 27, -2e3, 2e3), y_relu(ys, dt);
          be->conv2d_relu_forward(x, w, &b, k.g, yr);
          be->relu_forward(y, y_relu);
          CHECK(max_abs_diff(yr, y_relu) == 0);

          // No bias, no dx; outputs start from garbage to catch unwritten elements.
          Tensor y2 = random_tensor(ys, dt, 25, 1e3, 2e3), dw2 = random_tensor(w.shape(), dt, 26);
          be->conv2d_forward(x, w, nullptr, k.g, y2);
          be->conv2d_backward(x, w, dy, k.g, nullptr, dw2, nullptr);
          std::vector<double> y_nobias = ref.y;
          const int64_t plane = ys[2] * ys[3];
          const auto bv = b.to_vector_f64();
          for (std::size_t i = 0; i < y_nobias.size(); ++i) y_nobias[i] -= bv[(i / plane) % k.o];
          CHECK(scaled_diff(y2, y_nobias) < tol);
          CHECK(scaled_diff(dw2, ref.dw) < tol);
          Tensor yr2 = random_tensor(ys, dt, 28, -2e3, 2e3);
          be->conv2d_relu_forward(x, w, nullptr, k.g, yr2);
          be->relu_forward(y2, y_relu);
          CHECK(max_abs_diff(yr2, y_relu) == 0);
        }
      }
    }
  }
  set_cpu_threads(saved);
}

// The thin-layer Winograd kernels called directly, on shapes the backend's
// rule sends elsewhere too: one channel, planes of one pixel, every padding,
// 64 channels (many slot blocks per image), planes not a multiple of the tile.
TEST_CASE("thin-layer Winograd matches direct loops on any shape", "[ops][fastpath]") {
  const int saved = cpu_threads();
  const Case cases[] = {
      {{3, 1, 5, 4}, 1, geom(3, 3, 1, 1, 1, 1), "1 -> 1"},
      {{2, 3, 1, 1}, 4, geom(3, 3, 1, 1, 1, 1), "1x1 plane"},
      {{2, 5, 2, 3}, 3, geom(3, 3, 1, 1, 2, 2), "padding 2"},
      {{2, 16, 6, 7}, 16, geom(3, 3, 1, 1, 0, 0), "no padding"},
      {{3, 17, 7, 5}, 19, geom(3, 3, 1, 1, 1, 0), "padding 1x0"},
      {{2, 7, 9, 4}, 6, geom(3, 3, 1, 1, 0, 2), "padding 0x2"},
      {{3, 64, 33, 31}, 64, geom(3, 3, 1, 1, 1, 1), "64 -> 64, many blocks"},
      {{5, 8, 32, 32}, 16, geom(3, 3, 1, 1, 1, 1), "8 -> 16 @32x32"},
  };
  for (cpu::Isa isa : cpu::supported_isas()) {
    cpu::ScopedIsa kernels(isa);
    for (int threads : {1, 2, 3}) {
      set_cpu_threads(threads);
      for (const Case& k : cases) {
        INFO(k.path << ": x " << shape_str(k.x) << " o " << k.o << " " << geom_str(k.g) << ", "
                    << threads << " threads, kernels " << cpu::isa_name(isa));
        const Shape ys{k.x[0], k.o, k.g.out_h(k.x[2]), k.g.out_w(k.x[3])};
        Tensor x = random_tensor(k.x, DType::F32, 41),
               w = random_tensor({k.o, k.x[1], 3, 3}, DType::F32, 42);
        Tensor b = random_tensor({k.o}, DType::F32, 43), dy = random_tensor(ys, DType::F32, 44);
        // Outputs start from garbage, to catch elements left unwritten.
        Tensor y = random_tensor(ys, DType::F32, 45, 1e3, 2e3);
        Tensor dx = random_tensor(x.shape(), DType::F32, 46, 1e3, 2e3);
        Tensor dw = random_tensor(w.shape(), DType::F32, 47, 1e3, 2e3);
        Tensor db = random_tensor(b.shape(), DType::F32, 48, 1e3, 2e3);
        const ConvRef ref = direct_conv(x, w, b, dy, k.g);
        const cpu::WindowDims d = dims_of(k);
        cpu::thin_winograd_forward(x.data<float>(), w.data<float>(), b.data<float>(), d, false,
                                   y.data<float>());
        cpu::thin_winograd_backward(x.data<float>(), w.data<float>(), dy.data<float>(), d,
                                    dx.data<float>(), dw.data<float>(), db.data<float>());
        CHECK(scaled_diff(y, ref.y) < 1e-5);
        CHECK(scaled_diff(dx, ref.dx) < 1e-5);
        CHECK(scaled_diff(dw, ref.dw) < 1e-5);
        CHECK(scaled_diff(db, ref.db) < 1e-5);
      }
    }
  }
  set_cpu_threads(saved);
}

TEST_CASE("convolutions are bitwise reproducible for a thread count and kernel set",
          "[ops][fastpath]") {
  auto be = make_cpu_backend();
  const int saved = cpu_threads();
  // Winograd, and im2col with a thin layer.
  for (const Case& k : {Case{{13, 16, 6, 6}, 24, geom(3, 3, 1, 1, 1, 1), "winograd"},
                        Case{{13, 8, 9, 9}, 12, geom(3, 3, 1, 1, 1, 1), "im2col"},
                        Case{{13, 9, 16, 16}, 12, geom(3, 3, 1, 1, 1, 1), "thin winograd"}}) {
    Tensor x = random_tensor(k.x, DType::F32, 31);
    Tensor w = random_tensor({k.o, k.x[1], 3, 3}, DType::F32, 32);
    const Shape ys{k.x[0], k.o, k.x[2], k.x[3]};
    Tensor dy = random_tensor(ys, DType::F32, 33);
    for (cpu::Isa isa : cpu::supported_isas()) {
      cpu::ScopedIsa kernels(isa);
      for (int threads : {1, 2, 3}) {
        INFO(k.path << ", kernels " << cpu::isa_name(isa) << ", " << threads << " threads");
        set_cpu_threads(threads);
        std::vector<float> first[3];
        for (int run = 0; run < 2; ++run) {
          Tensor y(ys, DType::F32), dx(x.shape(), DType::F32), dw(w.shape(), DType::F32);
          be->conv2d_forward(x, w, nullptr, k.g, y);
          be->conv2d_backward(x, w, dy, k.g, &dx, dw, nullptr);
          const std::vector<float> out[3] = {y.to_vector_f32(), dx.to_vector_f32(),
                                             dw.to_vector_f32()};
          for (int i = 0; i < 3; ++i) {
            if (run == 0) first[i] = out[i];
            CHECK(out[i] == first[i]);
          }
        }
      }
    }
  }
  set_cpu_threads(saved);
}

namespace {

// Max pooling written out: -inf padding, first maximum wins, NaN propagates.
void direct_maxpool(const std::vector<double>& x, int64_t planes, int64_t h, int64_t w,
                    const PoolGeom& g, std::vector<double>& y, std::vector<int32_t>& arg) {
  const int64_t oh = g.out_h(h), ow = g.out_w(w);
  y.assign(planes * oh * ow, 0);
  arg.assign(planes * oh * ow, 0);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t p = 0; p < oh; ++p)
      for (int64_t q = 0; q < ow; ++q) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t at = -1;
        for (int i = 0; i < g.kh; ++i)
          for (int j = 0; j < g.kw; ++j) {
            const int64_t r = p * g.stride_h - g.pad_h + i, c = q * g.stride_w - g.pad_w + j;
            if (r < 0 || r >= h || c < 0 || c >= w) continue;
            const double v = x[pl * h * w + r * w + c];
            if (at < 0) at = r * w + c;  // the first in-bounds element, if nothing beats -inf
            if (v > best || std::isnan(v)) best = v, at = r * w + c;
          }
        y[pl * oh * ow + p * ow + q] = best;
        arg[pl * oh * ow + p * ow + q] = static_cast<int32_t>(at);
      }
}

}  // namespace

TEST_CASE("2x2 max pooling matches direct loops with ties - NaN and -inf", "[ops][fastpath]") {
  auto be = make_cpu_backend();
  for (DType dt : {DType::F32, DType::F64}) {
    INFO(dtype_name(dt));
    const int64_t n = 3, c = 5, h = 7, w = 9;  // odd sizes: the last row and column are dropped
    // Values on a coarse grid, so that windows often hold ties.
    std::vector<double> xv = random_tensor({n, c, h, w}, DType::F64, 41, -3, 3).to_vector_f64();
    for (double& v : xv) v = std::round(v);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    xv[10] = nan, xv[11] = nan, xv[30] = -inf, xv[31] = -inf, xv[39] = -inf, xv[40] = -inf,
    xv[100] = inf;
    Tensor x = Tensor::from_vector(xv, {n, c, h, w});
    if (dt == DType::F32) x = x.to(DType::F32);
    const PoolGeom g = geom(2, 2, 2, 2, 0, 0);
    Tensor y({n, c, 3, 4}, dt), arg({n, c, 3, 4}, DType::I32);
    be->maxpool2d_forward(x, g, y, arg);
    std::vector<double> ry;
    std::vector<int32_t> ra;
    direct_maxpool(xv, n * c, h, w, g, ry, ra);
    const std::vector<double> yv = y.to_vector_f64();
    const int32_t* a = arg.data<int32_t>();
    for (std::size_t i = 0; i < ry.size(); ++i) {
      INFO("output " << i);
      CHECK(a[i] == ra[i]);
      if (std::isnan(ry[i]))
        CHECK(std::isnan(yv[i]));
      else
        CHECK(yv[i] == ry[i]);
    }
  }
}

namespace {

// dx of max pooling by definition, in T arithmetic: zero, then each output's
// gradient added at its argmax in output order.
template <typename T>
std::vector<double> scatter_grad(const std::vector<double>& dy, const std::vector<int32_t>& arg,
                                 int64_t planes, int64_t out_plane, int64_t in_plane) {
  std::vector<T> dx(planes * in_plane, T(0));
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t i = 0; i < out_plane; ++i)
      dx[pl * in_plane + arg[pl * out_plane + i]] += static_cast<T>(dy[pl * out_plane + i]);
  return std::vector<double>(dx.begin(), dx.end());
}

struct PoolCase {
  int64_t h, w;
  PoolGeom g;
  const char* what;
};

}  // namespace

// The single-pass 2x2 backward (every dx element written once) must equal the
// scatter bit for bit, -0 gradients included; windows that overlap or whose
// argmax leaves the 2x2 block must fall back to the scatter.
TEST_CASE("max-pool backward matches the scatter of gradients to the argmax", "[ops][fastpath]") {
  const PoolCase cases[] = {
      {8, 8, geom(2, 2, 2, 2, 0, 0), "2x2 stride 2"},
      {7, 9, geom(2, 2, 2, 2, 0, 0), "2x2 stride 2, odd sizes"},
      {8, 8, geom(3, 3, 2, 2, 1, 1), "3x3 stride 2 pad 1 (overlapping)"},
      {9, 9, geom(3, 3, 2, 2, 0, 0), "3x3 stride 2 (argmax may leave the block)"},
      {6, 7, geom(2, 2, 1, 1, 0, 0), "2x2 stride 1"},
  };
  auto be = make_cpu_backend();
  const int64_t n = 3, c = 4;
  for (const PoolCase& pc : cases)
    for (DType dt : {DType::F32, DType::F64}) {
      INFO(pc.what << ", " << dtype_name(dt));
      std::vector<double> xv =
          random_tensor({n, c, pc.h, pc.w}, DType::F64, 71, -2, 2).to_vector_f64();
      for (double& v : xv) v = std::round(v);  // ties
      const int64_t oh = pc.g.out_h(pc.h), ow = pc.g.out_w(pc.w);
      std::vector<double> ry;
      std::vector<int32_t> ra;
      direct_maxpool(xv, n * c, pc.h, pc.w, pc.g, ry, ra);
      std::vector<double> dyv = random_tensor({n, c, oh, ow}, DType::F64, 72).to_vector_f64();
      for (std::size_t i = 0; i < dyv.size(); i += 5) dyv[i] = -0.0;
      Tensor dy = Tensor::from_vector(dyv, {n, c, oh, ow}).to(dt);
      Tensor arg({n, c, oh, ow}, DType::I32);
      std::copy(ra.begin(), ra.end(), arg.data<int32_t>());
      Tensor dx({n, c, pc.h, pc.w}, dt);
      // Stale values must not survive: the fast path writes every element.
      dx.copy_from(random_tensor(dx.shape(), dt, 73, 1, 2));
      be->maxpool2d_backward(dy, arg, dx);
      const std::vector<double> want =
          dt == DType::F32 ? scatter_grad<float>(dyv, ra, n * c, oh * ow, pc.h * pc.w)
                           : scatter_grad<double>(dyv, ra, n * c, oh * ow, pc.h * pc.w);
      const std::vector<double> got = dx.to_vector_f64();
      REQUIRE(got.size() == want.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        INFO("element " << i);
        CHECK(got[i] == want[i]);
        CHECK(std::signbit(got[i]) == std::signbit(want[i]));
      }
    }
}

TEST_CASE("max-pool backward rejects an argmax outside the input plane", "[ops][fastpath]") {
  auto be = make_cpu_backend();
  Tensor dy({1, 2, 2, 2}, DType::F32), arg({1, 2, 2, 2}, DType::I32), dx({1, 2, 4, 4}, DType::F32);
  arg.data<int32_t>()[6] = 16;
  CHECK_THROWS_WITH(be->maxpool2d_backward(dy, arg, dx),
                    Catch::Contains("argmax index 16 at 6 is outside the input plane of 16"));
  arg.data<int32_t>()[6] = 0;
  arg.data<int32_t>()[3] = -1;
  CHECK_THROWS_WITH(be->maxpool2d_backward(dy, arg, dx), Catch::Contains("argmax index -1 at 3"));
}

TEST_CASE("batchnorm fast loops match the closed forms far from zero", "[ops][fastpath]") {
  auto be = make_cpu_backend();
  const int saved = cpu_threads();
  // Odd planes: vector loops plus remainders. The larger case is split
  // across threads by channel ranges that do not divide evenly.
  struct Size {
    int64_t n, c, hw;
  };
  for (const Size& sz : {Size{4, 3, 37}, Size{6, 7, 1601}})
    for (int threads : {1, 2, 3})
      for (DType dt : {DType::F32, DType::F64}) {
        set_cpu_threads(threads);
        INFO(dtype_name(dt) << ", " << threads << " threads, plane " << sz.hw);
        const int64_t n = sz.n, c = sz.c, hw = sz.hw;
        // A mean of ~100 against a spread of ~1: float cancellation would show.
        Tensor x = random_tensor({n, c, 1, hw}, dt, 51, 99, 101);
        Tensor gamma = random_tensor({c}, dt, 52, 0.5, 2), beta = random_tensor({c}, dt, 53);
        Tensor rm({c}, dt), rv({c}, dt), y(x.shape(), dt), mean({c}, dt), invstd({c}, dt);
        Tensor dy = random_tensor(x.shape(), dt, 54), dx(x.shape(), dt), dg({c}, dt),
               dbeta({c}, dt);
        be->batchnorm_forward_train(x, gamma, beta, rm, rv, 0.1, 1e-5, y, mean, invstd);
        be->batchnorm_backward(x, gamma, mean, invstd, dy, dx, dg, dbeta);
        const auto xv = x.to_vector_f64(), yv = y.to_vector_f64(), g = gamma.to_vector_f64(),
                   bv = beta.to_vector_f64(), dyv = dy.to_vector_f64(), dxv = dx.to_vector_f64();
        const double tol = dt == DType::F64 ? 1e-10 : 2e-4;
        const double m_count = static_cast<double>(n * hw);
        double err_y = 0, err_dx = 0;
        for (int64_t ch = 0; ch < c; ++ch) {
          double s = 0, s2 = 0;
          for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < hw; ++j) s += xv[(i * c + ch) * hw + j];
          const double mu = s / m_count;
          for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < hw; ++j) s2 += std::pow(xv[(i * c + ch) * hw + j] - mu, 2);
          const double is = 1 / std::sqrt(s2 / m_count + 1e-5);
          double sdy = 0, sdyx = 0;
          for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < hw; ++j) {
              const int64_t k = (i * c + ch) * hw + j;
              sdy += dyv[k];
              sdyx += dyv[k] * (xv[k] - mu) * is;
            }
          CHECK(std::abs(dbeta.to_vector_f64()[ch] - sdy) < tol * 10);
          CHECK(std::abs(dg.to_vector_f64()[ch] - sdyx) < tol * 10);
          for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < hw; ++j) {
              const int64_t k = (i * c + ch) * hw + j;
              const double xhat = (xv[k] - mu) * is;
              const double want = g[ch] * is / m_count * (m_count * dyv[k] - sdy - xhat * sdyx);
              err_y = std::max(err_y, std::abs(yv[k] - (xhat * g[ch] + bv[ch])));
              err_dx = std::max(err_dx, std::abs(dxv[k] - want));
            }
        }
        CHECK(err_y < tol);
        CHECK(err_dx < tol);
      }
  set_cpu_threads(saved);
}

TEST_CASE("relu backward passes the gradient where the output is positive", "[ops][fastpath]") {
  auto be = make_cpu_backend();
  Tensor y = random_tensor({3, 7, 5, 3}, DType::F32, 61);
  Tensor dy = random_tensor(y.shape(), DType::F32, 62), dx(y.shape(), DType::F32);
  be->relu_backward(y, dy, dx);
  const auto yv = y.to_vector_f64(), dyv = dy.to_vector_f64(), dxv = dx.to_vector_f64();
  for (std::size_t i = 0; i < yv.size(); ++i) CHECK(dxv[i] == (yv[i] > 0 ? dyv[i] : 0.0));
}
