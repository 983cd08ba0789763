// CUDA-vs-CPU checks for every backend op, table-driven over shapes (odd sizes,
// batch 1, stride 2, padding 0/1, 1x1 and 3x3 kernels), in the spirit of ggml's
// test-backend-ops. The reference is the CPU backend run in double precision on
// the same (float-representable) inputs, except where the CPU's float path is the
// contract itself (dropout masks, the optimizer's float update rules).
//
// Every CUDA output is a view into a larger buffer whose guard regions hold a
// sentinel; the guards must be unchanged after the op (no out-of-bounds writes),
// and the view starts filled with the sentinel too, so an element the op forgets
// to write shows up as a mismatch.
//
// Tolerances, as max |cuda - cpu| over max |cpu| for the whole tensor:
//   exact FP32 path 1e-5; TF32 tensor-core path 1e-2.
// Integer results (argmax, counts) and dropout masks must match exactly.
//
// Without a CUDA device every test is reported skipped: the binary exits with 77
// (tests/main.cpp), which ctest's SKIP_RETURN_CODE counts as a skip.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "nn/layer_json.h"
#include "nn/model.h"
#include "ops_test_util.h"
#include "optim/optimizer.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "train/filter_skipping.h"
#include "train/train_step.h"

#ifdef SPARSETRAIN_WITH_CUDA
#include "cuda_backend.h"
#endif

using namespace st;

namespace {

constexpr double kExactTol = 1e-5;
constexpr double kTf32Tol = 1e-2;

bool skip_without_cuda() {
  const CudaProbe probe = probe_cuda();
  if (probe.devices > 0) return false;
  st::testing::skip_test_case(probe.problem);
  return true;
}

// Deterministic inputs in [lo, hi), distinct per seed.
Tensor host_rand(const Shape& shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(static_cast<std::size_t>(shape_numel(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = lo + (hi - lo) * uniform01(seed, i);
  return Tensor::from_vector(v, shape);
}

// Values from {0, 1, 2}: many ties, for the first-maximum-wins rules.
Tensor host_ties(const Shape& shape, uint64_t seed) {
  std::vector<float> v(static_cast<std::size_t>(shape_numel(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::floor(3.0f * uniform01(seed, i));
  return Tensor::from_vector(v, shape);
}

Tensor host_labels(int64_t n, int k, uint64_t seed) {
  std::vector<int32_t> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = std::min(k - 1, static_cast<int>(static_cast<float>(k) * uniform01(seed, i)));
  return Tensor::from_vector(v, {n});
}

Tensor f64(const Tensor& t) {
  return t.to(DType::F64);
}
Tensor gpu(const Tensor& t) {
  return t.to(Device::CUDA);
}

// A CUDA tensor in the middle of a larger buffer whose ends hold a sentinel.
class Guarded {
 public:
  static constexpr int64_t kGuard = 257;  // odd: the view is not 16-byte aligned either
  static constexpr float kSentinel = -12345.5f;
  static constexpr int32_t kSentinelI32 = -777777;

  explicit Guarded(const Shape& shape, DType dtype = DType::F32) {
    const int64_t total = shape_numel(shape) + 2 * kGuard;
    Tensor host;
    if (dtype == DType::I32)
      host = Tensor::from_vector(std::vector<int32_t>(total, kSentinelI32), {total});
    else
      host = Tensor::from_vector(std::vector<float>(total, kSentinel), {total});
    buffer_ = gpu(host);
    view_ = buffer_.view(kGuard, shape);
  }
  Tensor& t() { return view_; }
  Tensor* ptr() { return &view_; }

  void check_guards(const std::string& what) const {
    const std::vector<double> all = buffer_.to_vector_f64();
    const double sentinel = buffer_.dtype() == DType::I32 ? kSentinelI32 : kSentinel;
    const int64_t n = static_cast<int64_t>(all.size());
    int64_t bad = 0;
    for (int64_t i = 0; i < kGuard; ++i) {
      if (all[i] != sentinel) ++bad;
      if (all[n - 1 - i] != sentinel) ++bad;
    }
    INFO(what << ": guard elements overwritten");
    CHECK(bad == 0);
  }

 private:
  Tensor buffer_, view_;
};

// Normwise: max |got - ref| <= tol * max |ref| (exactly equal when ref is all 0).
void expect_close(const Tensor& got, const Tensor& ref, double tol, const std::string& what) {
  const std::vector<double> g = got.to_vector_f64(), r = ref.to_vector_f64();
  REQUIRE(g.size() == r.size());
  double scale = 0.0, worst = 0.0;
  std::size_t at = 0;
  bool finite = true;
  for (std::size_t i = 0; i < g.size(); ++i) {
    scale = std::max(scale, std::fabs(r[i]));
    if (!std::isfinite(g[i])) finite = false;
    const double err = std::fabs(g[i] - r[i]);
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  std::ostringstream msg;
  msg << what << ": max |cuda - cpu| = " << worst << " at element " << at;
  if (!g.empty()) msg << " (cuda " << g[at] << ", cpu " << r[at] << ")";
  msg << ", max |cpu| = " << scale << ", tolerance " << tol << " relative";
  INFO(msg.str());
  CHECK(finite);
  CHECK(worst <= tol * scale);
}

void expect_equal(const Tensor& got, const Tensor& ref, const std::string& what) {
  const std::vector<double> g = got.to_vector_f64(), r = ref.to_vector_f64();
  REQUIRE(g.size() == r.size());
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < g.size(); ++i)
    if (g[i] != r[i] && mismatches++ == 0) first = i;
  INFO(what << ": " << mismatches << " mismatches, first at element " << first);
  CHECK(mismatches == 0);
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector_f32(), y = b.to_vector_f32();
  return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), [](float p, float q) {
           return std::memcmp(&p, &q, sizeof(float)) == 0;
         });
}

std::unique_ptr<Backend> cuda_backend(bool tf32) {
#ifdef SPARSETRAIN_WITH_CUDA
  CudaOptions o;
  o.tf32 = tf32;
  return make_cuda_backend(o);
#else
  (void)tf32;
  return make_backend("cuda");
#endif
}

std::string geom_name(const Shape& x, int o, const ConvGeom& g) {
  std::ostringstream s;
  s << "x " << shape_str(x) << " o " << o << " k " << g.kh << "x" << g.kw << " s " << g.stride_h
    << "x" << g.stride_w << " p " << g.pad_h << "x" << g.pad_w;
  return s.str();
}

struct ConvCase {
  Shape x;
  int o;
  ConvGeom g;
  bool bias;
};

ConvGeom geom(int kh, int kw, int sh, int sw, int ph, int pw) {
  ConvGeom g;
  g.kh = kh, g.kw = kw, g.stride_h = sh, g.stride_w = sw, g.pad_h = ph, g.pad_w = pw;
  return g;
}

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {{2, 3, 7, 7}, 5, geom(3, 3, 1, 1, 1, 1), true},
      {{1, 4, 9, 6}, 3, geom(3, 3, 2, 2, 1, 1), false},     // batch 1, stride 2, odd sizes
      {{3, 8, 5, 5}, 16, geom(1, 1, 1, 1, 0, 0), true},     // 1x1
      {{2, 5, 8, 8}, 7, geom(1, 1, 2, 2, 0, 0), false},     // 1x1 stride 2
      {{1, 3, 11, 11}, 70, geom(3, 3, 2, 2, 0, 0), true},   // two row tiles of filters
      {{4, 16, 16, 16}, 32, geom(3, 3, 1, 1, 1, 1), true},  // split-K weight gradient
      {{2, 3, 5, 7}, 4, geom(3, 1, 1, 2, 1, 0), true},      // non-square kernel and stride
      {{3, 2, 13, 9}, 6, geom(5, 5, 2, 1, 2, 2), false},    // 5x5, mixed strides
  };
  return cases;
}

// Runs conv forward and backward on the CPU (double) and CUDA and compares.
void check_conv_case(Backend& dev, const ConvCase& cc, double tol, uint64_t seed) {
  auto cpu = make_cpu_backend();
  const ConvGeom& g = cc.g;
  const Shape w_shape{cc.o, cc.x[1], g.kh, g.kw};
  const Shape y_shape{cc.x[0], cc.o, g.out_h(cc.x[2]), g.out_w(cc.x[3])};
  const Tensor x = host_rand(cc.x, seed), w = host_rand(w_shape, seed + 1, -0.5f, 0.5f);
  const Tensor b = host_rand({cc.o}, seed + 2), dy = host_rand(y_shape, seed + 3);
  const std::string name = geom_name(cc.x, cc.o, g);

  Tensor y_ref(y_shape, DType::F64), dx_ref(cc.x, DType::F64), dw_ref(w_shape, DType::F64),
      db_ref({cc.o}, DType::F64);
  const Tensor x64 = f64(x), w64 = f64(w), b64 = f64(b), dy64 = f64(dy);
  cpu->conv2d_forward(x64, w64, cc.bias ? &b64 : nullptr, g, y_ref);
  cpu->conv2d_backward(x64, w64, dy64, g, &dx_ref, dw_ref, cc.bias ? &db_ref : nullptr);

  const Tensor xd = gpu(x), wd = gpu(w), bd = gpu(b), dyd = gpu(dy);
  Guarded y(y_shape), dx(cc.x), dw(w_shape), db({cc.o});
  dev.conv2d_forward(xd, wd, cc.bias ? &bd : nullptr, g, y.t());
  dev.conv2d_backward(xd, wd, dyd, g, dx.ptr(), dw.t(), cc.bias ? db.ptr() : nullptr);
  dev.synchronize();
  expect_close(y.t(), y_ref, tol, "conv2d_forward y, " + name);
  expect_close(dx.t(), dx_ref, tol, "conv2d_backward dx, " + name);
  expect_close(dw.t(), dw_ref, tol, "conv2d_backward dw, " + name);
  if (cc.bias) expect_close(db.t(), db_ref, kExactTol, "conv2d_backward db, " + name);
  y.check_guards("conv2d_forward y, " + name);
  dx.check_guards("conv2d_backward dx, " + name);
  dw.check_guards("conv2d_backward dw, " + name);
  db.check_guards("conv2d_backward db, " + name);

  // The fused ReLU: relu of the reference (split K and TF32 included, since the
  // ReLU is applied where the result is stored).
  Tensor yr_ref(y_shape, DType::F64);
  cpu->relu_forward(y_ref, yr_ref);
  Guarded yr(y_shape);
  dev.conv2d_relu_forward(xd, wd, cc.bias ? &bd : nullptr, g, yr.t());
  dev.synchronize();
  expect_close(yr.t(), yr_ref, tol, "conv2d_relu_forward y, " + name);
  yr.check_guards("conv2d_relu_forward y, " + name);

  // Without dx (first layer): dw must not change.
  Guarded dw2(w_shape);
  dev.conv2d_backward(xd, wd, dyd, g, nullptr, dw2.t(), nullptr);
  expect_close(dw2.t(), dw_ref, tol, "conv2d_backward dw without dx, " + name);
  dw2.check_guards("conv2d_backward dw without dx, " + name);
}

}  // namespace

TEST_CASE("cuda conv2d forward and backward match the CPU (exact FP32)", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);
  uint64_t seed = 100;
  for (const ConvCase& cc : conv_cases()) check_conv_case(*dev, cc, kExactTol, seed += 10);
}

TEST_CASE("cuda conv2d TF32 tensor-core path matches the CPU within TF32 precision", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(true);
  uint64_t seed = 200;
  for (const ConvCase& cc : conv_cases()) check_conv_case(*dev, cc, kTf32Tol, seed += 10);
}

// Normwise relative error max |got - ref| / max |ref|.
double normwise_error(const Tensor& got, const Tensor& ref) {
  const std::vector<double> g = got.to_vector_f64(), r = ref.to_vector_f64();
  double scale = 0.0, worst = 0.0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    scale = std::max(scale, std::fabs(r[i]));
    worst = std::max(worst, std::fabs(g[i] - r[i]));
  }
  return scale > 0 ? worst / scale : worst;
}

TEST_CASE("cuda conv2d forward with split K matches the CPU", "[cuda]") {
  if (skip_without_cuda()) return;
  // One output tile (64 filters x 16 positions) against K = 256 * 3 * 3 = 2304:
  // the forward splits K on every GPU (fewer tiles than two per SM, and K holds
  // 18 slices of 8 * BK), and the reduction kernel then adds the bias.
  const std::vector<ConvCase> cases = {
      {{1, 256, 4, 4}, 64, geom(3, 3, 1, 1, 1, 1), true},
      {{1, 256, 4, 4}, 64, geom(3, 3, 1, 1, 1, 1), false},
      {{2, 300, 3, 5}, 37, geom(3, 3, 2, 1, 1, 0), true},  // ragged tiles and chunks
  };
  for (bool tf32 : {false, true}) {
    auto dev = cuda_backend(tf32);
    for (std::size_t i = 0; i < cases.size(); ++i)
      check_conv_case(*dev, cases[i], tf32 ? kTf32Tol : kExactTol, 900 + 10 * i);
  }
}

TEST_CASE("cuda TF32 option really runs conv and linear on TF32 tensor cores", "[cuda]") {
  if (skip_without_cuda()) return;
  // Inputs with full 23-bit mantissas: TF32 keeps 10 bits, so its products are off
  // by about 2^-11 each, far above FP32's rounding. A TF32 backend whose results
  // are as exact as FP32 fell back to FP32 silently (an old GPU path, cuBLAS
  // choosing a SIMT kernel, NVIDIA_TF32_OVERRIDE=0 in the environment).
  constexpr double kFp32Bound = 1e-5, kTf32Floor = 2e-5;
  auto cpu = make_cpu_backend();
  const Shape xs{4, 64, 12, 12}, ws{64, 64, 3, 3};
  const ConvGeom g = geom(3, 3, 1, 1, 1, 1);
  const Tensor x = host_rand(xs, 71), w = host_rand(ws, 72);
  const Shape ys{4, 64, 12, 12};
  Tensor y_ref(ys, DType::F64);
  cpu->conv2d_forward(f64(x), f64(w), nullptr, g, y_ref);
  const Tensor lx = host_rand({256, 1024}, 73), lw = host_rand({256, 1024}, 74);
  Tensor ly_ref({256, 256}, DType::F64);
  cpu->linear_forward(f64(lx), f64(lw), nullptr, ly_ref);

  double conv_err[2] = {0, 0}, linear_err[2] = {0, 0};
  for (int tf32 = 0; tf32 < 2; ++tf32) {
    auto dev = cuda_backend(tf32 == 1);
    Tensor y(ys, DType::F32, Device::CUDA), ly({256, 256}, DType::F32, Device::CUDA);
    dev->conv2d_forward(gpu(x), gpu(w), nullptr, g, y);
    dev->linear_forward(gpu(lx), gpu(lw), nullptr, ly);
    dev->synchronize();
    conv_err[tf32] = normwise_error(y, y_ref);
    linear_err[tf32] = normwise_error(ly, ly_ref);
  }
  INFO("conv error: fp32 " << conv_err[0] << ", tf32 " << conv_err[1] << "; linear error: fp32 "
                           << linear_err[0] << ", tf32 " << linear_err[1]);
  CHECK(conv_err[0] < kFp32Bound);
  CHECK(linear_err[0] < kFp32Bound);
  CHECK(conv_err[1] > kTf32Floor);
  CHECK(linear_err[1] > kTf32Floor);
  CHECK(conv_err[1] < kTf32Tol);
  CHECK(linear_err[1] < kTf32Tol);
}

TEST_CASE("cuda conv2d results are bitwise reproducible", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);
  const ConvCase& cc = conv_cases()[5];  // split-K weight gradient
  const Shape w_shape{cc.o, cc.x[1], cc.g.kh, cc.g.kw};
  const Shape y_shape{cc.x[0], cc.o, cc.g.out_h(cc.x[2]), cc.g.out_w(cc.x[3])};
  const Tensor x = gpu(host_rand(cc.x, 1)), w = gpu(host_rand(w_shape, 2));
  const Tensor dy = gpu(host_rand(y_shape, 3));
  Tensor dw1(w_shape, DType::F32, Device::CUDA), dw2(w_shape, DType::F32, Device::CUDA);
  Tensor db1({cc.o}, DType::F32, Device::CUDA), db2({cc.o}, DType::F32, Device::CUDA);
  dev->conv2d_backward(x, w, dy, cc.g, nullptr, dw1, &db1);
  dev->conv2d_backward(x, w, dy, cc.g, nullptr, dw2, &db2);
  CHECK(bitwise_equal(dw1, dw2));
  CHECK(bitwise_equal(db1, db2));
}

namespace {

// Batch-norm operands for x of shape xs, on the host: x, dy, gamma, beta and the running
// statistics to start from.
struct BnInputs {
  Tensor x, dy, gamma, beta, running_mean, running_var;
};
BnInputs bn_inputs(const Shape& xs, uint64_t seed) {
  const int64_t c = xs[1];
  return {host_rand(xs, seed, -2.0f, 3.0f),
          host_rand(xs, seed + 1),
          host_rand({c}, seed + 2, 0.5f, 1.5f),
          host_rand({c}, seed + 3),
          host_rand({c}, seed + 4),
          host_rand({c}, seed + 5, 0.5f, 2.0f)};
}

}  // namespace

TEST_CASE("cuda batchnorm train - eval and backward match the CPU", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);
  auto cpu = make_cpu_backend();
  const std::vector<Shape> shapes = {{2, 3, 5, 5},  {1, 4, 3, 3}, {8, 16, 4, 4},
                                     {4, 70, 1, 1}, {5, 7},       {3, 2, 17, 9}};
  uint64_t seed = 300;
  for (const Shape& xs : shapes) {
    seed += 10;
    const int64_t c = xs[1];
    const std::string name = "x " + shape_str(xs);
    const auto [x, dy, gamma, beta, rm0, rv0] = bn_inputs(xs, seed);
    const double momentum = 0.1, eps = 1e-5;

    Tensor rm_ref = f64(rm0), rv_ref = f64(rv0), y_ref(xs, DType::F64);
    Tensor sm_ref({c}, DType::F64), si_ref({c}, DType::F64);
    Tensor dx_ref(xs, DType::F64), dg_ref({c}, DType::F64), dbeta_ref({c}, DType::F64);
    Tensor ye_ref(xs, DType::F64);
    const Tensor x64 = f64(x), g64 = f64(gamma), b64 = f64(beta);
    cpu->batchnorm_forward_train(x64, g64, b64, rm_ref, rv_ref, momentum, eps, y_ref, sm_ref,
                                 si_ref);
    cpu->batchnorm_backward(x64, g64, sm_ref, si_ref, f64(dy), dx_ref, dg_ref, dbeta_ref);
    cpu->batchnorm_forward_eval(x64, g64, b64, rm_ref, rv_ref, eps, ye_ref);

    const Tensor xd = gpu(x), gd = gpu(gamma), bd = gpu(beta), dyd = gpu(dy);
    Guarded rm({c}), rv({c}), y(xs), sm({c}), si({c}), dx(xs), dg({c}), dbeta({c}), ye(xs);
    rm.t().copy_from(gpu(rm0));
    rv.t().copy_from(gpu(rv0));
    dev->batchnorm_forward_train(xd, gd, bd, rm.t(), rv.t(), momentum, eps, y.t(), sm.t(), si.t());
    dev->batchnorm_backward(xd, gd, sm.t(), si.t(), dyd, dx.t(), dg.t(), dbeta.t());
    dev->batchnorm_forward_eval(xd, gd, bd, rm.t(), rv.t(), eps, ye.t());
    dev->synchronize();
    expect_close(y.t(), y_ref, kExactTol, "batchnorm_forward_train y, " + name);
    expect_close(sm.t(), sm_ref, kExactTol, "batchnorm save_mean, " + name);
    expect_close(si.t(), si_ref, kExactTol, "batchnorm save_invstd, " + name);
    expect_close(rm.t(), rm_ref, kExactTol, "batchnorm running_mean, " + name);
    expect_close(rv.t(), rv_ref, kExactTol, "batchnorm running_var, " + name);
    expect_close(dx.t(), dx_ref, kExactTol, "batchnorm_backward dx, " + name);
    expect_close(dg.t(), dg_ref, kExactTol, "batchnorm_backward dgamma, " + name);
    expect_close(dbeta.t(), dbeta_ref, kExactTol, "batchnorm_backward dbeta, " + name);
    expect_close(ye.t(), ye_ref, kExactTol, "batchnorm_forward_eval y, " + name);
    for (Guarded* gt : {&rm, &rv, &y, &sm, &si, &dx, &dg, &dbeta, &ye})
      gt->check_guards("batchnorm, " + name);
  }
}

TEST_CASE("cuda fused batchnorm+relu matches the CPU and the two ops bit for bit", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);
  auto cpu = make_cpu_backend();
  const std::vector<Shape> shapes = {{2, 3, 5, 5}, {8, 16, 4, 4}, {5, 7}, {3, 2, 17, 9}};
  uint64_t seed = 900;
  for (const Shape& xs : shapes) {
    seed += 10;
    const int64_t c = xs[1];
    const std::string name = "x " + shape_str(xs);
    const auto [x, dy, gamma, beta, rm0, rv0] = bn_inputs(xs, seed);
    const double momentum = 0.1, eps = 1e-5;

    // The reference: the CPU's fused op in F64 (itself checked against finite differences).
    Tensor rm_ref = f64(rm0), rv_ref = f64(rv0), y_ref(xs, DType::F64);
    Tensor sm_ref({c}, DType::F64), si_ref({c}, DType::F64);
    Tensor dx_ref(xs, DType::F64), dg_ref({c}, DType::F64), dbeta_ref({c}, DType::F64);
    Tensor ye_ref(xs, DType::F64);
    const Tensor x64 = f64(x), g64 = f64(gamma), b64 = f64(beta);
    cpu->batchnorm_relu_forward_train(x64, g64, b64, rm_ref, rv_ref, momentum, eps, y_ref, sm_ref,
                                      si_ref);
    cpu->batchnorm_relu_backward(x64, y_ref, g64, sm_ref, si_ref, f64(dy), dx_ref, dg_ref,
                                 dbeta_ref);
    cpu->batchnorm_relu_forward_eval(x64, g64, b64, rm_ref, rv_ref, eps, ye_ref);

    const Tensor xd = gpu(x), gd = gpu(gamma), bd = gpu(beta), dyd = gpu(dy);
    Guarded rm({c}), rv({c}), y(xs), sm({c}), si({c}), dx(xs), dg({c}), dbeta({c}), ye(xs);
    rm.t().copy_from(gpu(rm0));
    rv.t().copy_from(gpu(rv0));
    dev->batchnorm_relu_forward_train(xd, gd, bd, rm.t(), rv.t(), momentum, eps, y.t(), sm.t(),
                                      si.t());
    dev->batchnorm_relu_backward(xd, y.t(), gd, sm.t(), si.t(), dyd, dx.t(), dg.t(), dbeta.t());
    dev->batchnorm_relu_forward_eval(xd, gd, bd, rm.t(), rv.t(), eps, ye.t());

    // The two ops on the device, from the same starting running statistics.
    Tensor rm2 = gpu(rm0), rv2 = gpu(rv0), bn(xs, DType::F32, Device::CUDA);
    Tensor y2(xs, DType::F32, Device::CUDA), dbn(xs, DType::F32, Device::CUDA);
    Tensor sm2({c}, DType::F32, Device::CUDA), si2({c}, DType::F32, Device::CUDA);
    Tensor dx2(xs, DType::F32, Device::CUDA), dg2({c}, DType::F32, Device::CUDA);
    Tensor dbeta2({c}, DType::F32, Device::CUDA), ye2(xs, DType::F32, Device::CUDA);
    dev->batchnorm_forward_train(xd, gd, bd, rm2, rv2, momentum, eps, bn, sm2, si2);
    dev->relu_forward(bn, y2);
    dev->relu_backward(y2, dyd, dbn);
    dev->batchnorm_backward(xd, gd, sm2, si2, dbn, dx2, dg2, dbeta2);
    dev->batchnorm_forward_eval(xd, gd, bd, rm2, rv2, eps, bn);
    dev->relu_forward(bn, ye2);
    dev->synchronize();

    expect_close(y.t(), y_ref, kExactTol, "batchnorm_relu_forward_train y, " + name);
    expect_close(rm.t(), rm_ref, kExactTol, "batchnorm_relu running_mean, " + name);
    expect_close(rv.t(), rv_ref, kExactTol, "batchnorm_relu running_var, " + name);
    expect_close(dx.t(), dx_ref, kExactTol, "batchnorm_relu_backward dx, " + name);
    expect_close(dg.t(), dg_ref, kExactTol, "batchnorm_relu_backward dgamma, " + name);
    expect_close(dbeta.t(), dbeta_ref, kExactTol, "batchnorm_relu_backward dbeta, " + name);
    expect_close(ye.t(), ye_ref, kExactTol, "batchnorm_relu_forward_eval y, " + name);
    CHECK(bitwise_equal(y.t(), y2));
    CHECK(bitwise_equal(dx.t(), dx2));
    CHECK(bitwise_equal(dg.t(), dg2));
    CHECK(bitwise_equal(dbeta.t(), dbeta2));
    CHECK(bitwise_equal(ye.t(), ye2));
    for (Guarded* gt : {&rm, &rv, &y, &sm, &si, &dx, &dg, &dbeta, &ye})
      gt->check_guards("batchnorm_relu, " + name);
  }
}

TEST_CASE("cuda relu - add - add_inplace and dropout match the CPU", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);
  auto cpu = make_cpu_backend();
  const std::vector<Shape> shapes = {{2, 3, 5, 7}, {1}, {1000003}};
  uint64_t seed = 400;
  for (const Shape& s : shapes) {
    seed += 10;
    const std::string name = "shape " + shape_str(s);
    const Tensor a = host_rand(s, seed), b = host_rand(s, seed + 1), dy = host_rand(s, seed + 2);

    Tensor relu_ref(s), drelu_ref(s), add_ref(s);
    cpu->relu_forward(a, relu_ref);
    cpu->relu_backward(relu_ref, dy, drelu_ref);
    cpu->add(a, b, add_ref);
    const Tensor ad = gpu(a), bd = gpu(b), dyd = gpu(dy);
    Guarded relu(s), drelu(s), sum(s), acc(s);
    dev->relu_forward(ad, relu.t());
    dev->relu_backward(relu.t(), dyd, drelu.t());
    dev->add(ad, bd, sum.t());
    acc.t().copy_from(ad);
    dev->add_inplace(acc.t(), bd);
    expect_equal(relu.t(), relu_ref, "relu_forward, " + name);
    expect_equal(drelu.t(), drelu_ref, "relu_backward, " + name);
    expect_equal(sum.t(), add_ref, "add, " + name);
    expect_equal(acc.t(), add_ref, "add_inplace, " + name);
    for (Guarded* gt : {&relu, &drelu, &sum, &acc}) gt->check_guards("elementwise, " + name);

    for (double p : {0.0, 0.3, 0.5, 0.9}) {
      const std::string dname = name + ", p " + std::to_string(p);
      const uint64_t dseed = 0xD00D + seed;
      Tensor mask_ref(s), y_ref(s), dx_ref(s);
      cpu->dropout_forward(a, p, dseed, mask_ref, y_ref);
      cpu->dropout_backward(dy, mask_ref, dx_ref);
      Guarded mask(s), y(s), dx(s);
      dev->dropout_forward(ad, p, dseed, mask.t(), y.t());
      dev->dropout_backward(dyd, mask.t(), dx.t());
      expect_equal(mask.t(), mask_ref, "dropout mask, " + dname);
      expect_close(y.t(), y_ref, 1e-7, "dropout_forward y, " + dname);
      expect_close(dx.t(), dx_ref, 1e-7, "dropout_backward dx, " + dname);
      for (Guarded* gt : {&mask, &y, &dx}) gt->check_guards("dropout, " + dname);
    }
  }
}

TEST_CASE("cuda pooling forward and backward match the CPU", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);
  auto cpu = make_cpu_backend();
  struct PoolCase {
    Shape x;
    PoolGeom g;
    bool ties;
  };
  const std::vector<PoolCase> cases = {
      {{2, 3, 8, 8}, geom(2, 2, 2, 2, 0, 0), false},
      {{2, 4, 9, 9}, geom(3, 3, 2, 2, 1, 1), false},  // overlapping windows
      {{1, 2, 5, 7}, geom(3, 3, 1, 1, 1, 1), false},  // batch 1, stride 1
      {{3, 2, 7, 5}, geom(3, 3, 1, 1, 1, 1), true},   // ties: first maximum wins
      {{2, 3, 6, 11}, geom(2, 3, 2, 1, 1, 1), true},
      {{1, 1, 40, 40}, geom(3, 3, 1, 1, 0, 0), true},  // more outputs per plane than a warp
  };
  uint64_t seed = 500;
  for (const PoolCase& pc : cases) {
    seed += 10;
    const std::string name = geom_name(pc.x, static_cast<int>(pc.x[1]), pc.g);
    const Shape ys{pc.x[0], pc.x[1], pc.g.out_h(pc.x[2]), pc.g.out_w(pc.x[3])};
    const Tensor x = pc.ties ? host_ties(pc.x, seed) : host_rand(pc.x, seed);
    const Tensor dy = host_rand(ys, seed + 1);
    const Tensor x64 = f64(x), dy64 = f64(dy);

    Tensor my_ref(ys, DType::F64), am_ref(ys, DType::I32), mdx_ref(pc.x, DType::F64);
    Tensor ay_ref(ys, DType::F64), adx_ref(pc.x, DType::F64);
    cpu->maxpool2d_forward(x64, pc.g, my_ref, am_ref);
    cpu->maxpool2d_backward(dy64, am_ref, mdx_ref);
    cpu->avgpool2d_forward(x64, pc.g, ay_ref);
    cpu->avgpool2d_backward(dy64, pc.g, adx_ref);

    const Tensor xd = gpu(x), dyd = gpu(dy);
    Guarded my(ys), am(ys, DType::I32), mdx(pc.x), ay(ys), adx(pc.x);
    dev->maxpool2d_forward(xd, pc.g, my.t(), am.t());
    dev->maxpool2d_backward(dyd, am.t(), mdx.t());
    dev->avgpool2d_forward(xd, pc.g, ay.t());
    dev->avgpool2d_backward(dyd, pc.g, adx.t());
    expect_equal(my.t(), my_ref, "maxpool2d_forward y, " + name);
    expect_equal(am.t(), am_ref, "maxpool2d_forward argmax, " + name);
    expect_close(mdx.t(), mdx_ref, kExactTol, "maxpool2d_backward dx, " + name);
    expect_close(ay.t(), ay_ref, kExactTol, "avgpool2d_forward y, " + name);
    expect_close(adx.t(), adx_ref, kExactTol, "avgpool2d_backward dx, " + name);
    for (Guarded* gt : {&my, &am, &mdx, &ay, &adx}) gt->check_guards("pooling, " + name);
  }

  for (const Shape& xs :
       std::vector<Shape>{{2, 3, 5, 5}, {1, 8, 1, 1}, {3, 4, 7, 3}, {2, 2, 40, 40}}) {
    seed += 10;
    const std::string name = "global avgpool x " + shape_str(xs);
    const Shape ys{xs[0], xs[1]};
    const Tensor x = host_rand(xs, seed), dy = host_rand(ys, seed + 1);
    Tensor y_ref(ys, DType::F64), dx_ref(xs, DType::F64);
    cpu->global_avgpool_forward(f64(x), y_ref);
    cpu->global_avgpool_backward(f64(dy), dx_ref);
    Guarded y(ys), dx(xs);
    dev->global_avgpool_forward(gpu(x), y.t());
    dev->global_avgpool_backward(gpu(dy), dx.t());
    expect_close(y.t(), y_ref, kExactTol, name + " forward");
    expect_close(dx.t(), dx_ref, kExactTol, name + " backward");
    y.check_guards(name);
    dx.check_guards(name);
  }
}

TEST_CASE("cuda linear forward and backward (cuBLAS) match the CPU", "[cuda]") {
  if (skip_without_cuda()) return;
  auto cpu = make_cpu_backend();
  struct LinearCase {
    int64_t n, in, out;
    bool bias;
  };
  const std::vector<LinearCase> cases = {
      {1, 5, 3, true}, {7, 33, 10, false}, {64, 300, 100, true}, {3, 1, 1, true}};
  for (bool tf32 : {false, true}) {
    auto dev = cuda_backend(tf32);
    const double tol = tf32 ? kTf32Tol : kExactTol;
    uint64_t seed = tf32 ? 650 : 600;
    for (const LinearCase& lc : cases) {
      seed += 10;
      const std::string name = "linear n " + std::to_string(lc.n) + " in " + std::to_string(lc.in) +
                               " out " + std::to_string(lc.out) + (tf32 ? " (tf32)" : " (fp32)");
      const Tensor x = host_rand({lc.n, lc.in}, seed), w = host_rand({lc.out, lc.in}, seed + 1);
      const Tensor b = host_rand({lc.out}, seed + 2), dy = host_rand({lc.n, lc.out}, seed + 3);
      Tensor y_ref({lc.n, lc.out}, DType::F64), dx_ref({lc.n, lc.in}, DType::F64);
      Tensor dw_ref({lc.out, lc.in}, DType::F64), db_ref({lc.out}, DType::F64);
      const Tensor b64 = f64(b);
      cpu->linear_forward(f64(x), f64(w), lc.bias ? &b64 : nullptr, y_ref);
      cpu->linear_backward(f64(x), f64(w), f64(dy), &dx_ref, dw_ref, &db_ref);

      const Tensor xd = gpu(x), wd = gpu(w), bd = gpu(b), dyd = gpu(dy);
      Guarded y({lc.n, lc.out}), dx({lc.n, lc.in}), dw({lc.out, lc.in}), db({lc.out});
      dev->linear_forward(xd, wd, lc.bias ? &bd : nullptr, y.t());
      dev->linear_backward(xd, wd, dyd, dx.ptr(), dw.t(), db.ptr());
      expect_close(y.t(), y_ref, tol, name + " y");
      expect_close(dx.t(), dx_ref, tol, name + " dx");
      expect_close(dw.t(), dw_ref, tol, name + " dw");
      expect_close(db.t(), db_ref, kExactTol, name + " db");
      for (Guarded* gt : {&y, &dx, &dw, &db}) gt->check_guards(name);
    }
  }
}

TEST_CASE("cuda softmax cross-entropy and count_correct match the CPU", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);
  auto cpu = make_cpu_backend();
  const std::vector<std::pair<int64_t, int>> shapes = {
      {1, 10}, {7, 3}, {64, 100}, {33, 1000}, {300, 1}};
  uint64_t seed = 700;
  for (const auto& [n, k] : shapes) {
    seed += 10;
    const std::string name = "logits [" + std::to_string(n) + ", " + std::to_string(k) + "]";
    const Tensor z = host_rand({n, k}, seed, -4.0f, 4.0f);
    const Tensor labels = host_labels(n, k, seed + 1);
    Tensor p_ref({n, k}, DType::F64), dz_ref({n, k}, DType::F64);
    const double loss_ref = cpu->softmax_xent_forward(f64(z), labels, p_ref);
    cpu->softmax_xent_backward(p_ref, labels, dz_ref);
    const int64_t correct_ref = cpu->count_correct(f64(z), labels);

    const Tensor zd = gpu(z), ld = gpu(labels);
    Guarded p({n, k}), dz({n, k});
    const double loss = dev->softmax_xent_forward(zd, ld, p.t());
    dev->softmax_xent_backward(p.t(), ld, dz.t());
    const int64_t correct = dev->count_correct(zd, ld);
    INFO(name << ": loss cuda " << loss << ", cpu " << loss_ref);
    CHECK(std::fabs(loss - loss_ref) <= kExactTol * std::max(1.0, std::fabs(loss_ref)));
    CHECK(correct == correct_ref);
    expect_close(p.t(), p_ref, kExactTol, "softmax probs, " + name);
    expect_close(dz.t(), dz_ref, kExactTol, "softmax_xent_backward, " + name);
    p.check_guards(name);
    dz.check_guards(name);

    // Rows built so that the label is the (unique) maximum: all of them are correct.
    std::vector<float> zs = z.to_vector_f32();
    const std::vector<float> lv = labels.to_vector_f32();
    for (int64_t r = 0; r < n; ++r) zs[r * k + static_cast<int64_t>(lv[r])] = 10.0f;
    CHECK(dev->count_correct(gpu(Tensor::from_vector(zs, {n, k})), ld) == n);
  }

  // Ties: the first maximum is the prediction, as std::max_element.
  const Tensor tied = Tensor::from_vector(std::vector<float>{1, 3, 3, 0, 2, 2, 2, 2}, {2, 4});
  CHECK(dev->count_correct(gpu(tied), gpu(Tensor::from_vector(std::vector<int32_t>{1, 0}, {2}))) ==
        2);
  CHECK(dev->count_correct(gpu(tied), gpu(Tensor::from_vector(std::vector<int32_t>{2, 1}, {2}))) ==
        0);
}

TEST_CASE("cuda channel_absmax matches the CPU", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);
  auto cpu = make_cpu_backend();
  uint64_t seed = 800;
  for (const Shape& s : std::vector<Shape>{{2, 3, 5, 5}, {1, 1, 1, 1}, {4, 70, 9, 9}, {6, 5}}) {
    seed += 10;
    const Tensor h = host_rand(s, seed, -3.0f, 2.0f);
    Tensor ref({s[0], s[1]});
    cpu->channel_absmax(h, ref);
    Guarded out({s[0], s[1]});
    dev->channel_absmax(gpu(h), out.t());
    expect_equal(out.t(), ref, "channel_absmax h " + shape_str(s));
    out.check_guards("channel_absmax h " + shape_str(s));
  }
}

TEST_CASE("cuda optimizer_step matches the CPU for every rule and regularization", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);
  auto cpu = make_cpu_backend();
  struct RuleCase {
    const char* name;
    OptimHyper h;
  };
  auto hyper = [](UpdateRule rule) {
    OptimHyper h;
    h.rule = rule;
    h.lr = 0.01;
    return h;
  };
  std::vector<RuleCase> rules;
  rules.push_back({"sgd", hyper(UpdateRule::SGD)});
  {
    OptimHyper h = hyper(UpdateRule::SGD);
    h.momentum = 0.9, h.dampening = 0.1;
    rules.push_back({"sgd momentum", h});
    h.dampening = 0.0, h.nesterov = true;
    rules.push_back({"sgd nesterov", h});
  }
  rules.push_back({"adam", hyper(UpdateRule::Adam)});
  {
    OptimHyper h = hyper(UpdateRule::Adam);
    h.amsgrad = true;
    rules.push_back({"adam amsgrad", h});
  }
  {
    OptimHyper h = hyper(UpdateRule::AdaGrad);
    h.lr_decay = 0.01;
    rules.push_back({"adagrad", h});
  }
  rules.push_back({"rmsprop", hyper(UpdateRule::RMSProp)});
  {
    OptimHyper h = hyper(UpdateRule::RMSProp);
    h.centered = true, h.momentum = 0.5;
    rules.push_back({"rmsprop centered momentum", h});
  }
  rules.push_back({"adadelta", hyper(UpdateRule::AdaDelta)});
  rules.push_back({"adamax", hyper(UpdateRule::AdaMax)});

  const int64_t n = 1031;
  // Three segments (one exempt, one empty) tiling the buffer.
  const std::vector<UpdateSegment> segments = {
      {0, 500, 5e-3f}, {500, 0, 1e-2f}, {500, 31, 0.0f}, {531, 500, 1e-1f}};
  uint64_t seed = 900;
  for (const RuleCase& rc : rules) {
    for (RegKind reg : {RegKind::None, RegKind::L2, RegKind::Decoupled}) {
      seed += 10;
      const std::string name =
          std::string(rc.name) + ", reg " + std::to_string(static_cast<int>(reg));
      const int slots = optimizer_state_count(rc.h);
      Tensor p_cpu = host_rand({n}, seed);
      std::vector<Tensor> s_cpu, s_dev;
      Guarded p_dev({n});
      p_dev.t().copy_from(gpu(p_cpu));
      for (int j = 0; j < slots; ++j) {
        s_cpu.emplace_back(Shape{n});
        s_dev.push_back(Tensor({n}, DType::F32, Device::CUDA));
      }
      for (int64_t step = 1; step <= 3; ++step) {
        const Tensor g = host_rand({n}, seed + 100 + step);
        OptimStep s;
        s.hyper = rc.h;
        s.reg = reg;
        s.lr = rc.h.lr / static_cast<double>(step);  // a schedule
        s.decay_lr = rc.h.lr;
        s.step = step;
        cpu->optimizer_step(s, p_cpu, g, s_cpu, segments);
        dev->optimizer_step(s, p_dev.t(), gpu(g), s_dev, segments);
      }
      expect_close(p_dev.t(), p_cpu, kExactTol, "optimizer params, " + name);
      for (int j = 0; j < slots; ++j)
        expect_close(s_dev[j], s_cpu[j], kExactTol,
                     "optimizer state " + std::to_string(j) + ", " + name);
      p_dev.check_guards("optimizer params, " + name);
    }
  }

  // A segment list that does not tile the buffer is refused.
  OptimStep s;
  s.hyper = hyper(UpdateRule::SGD);
  Tensor p({n}, DType::F32, Device::CUDA), g({n}, DType::F32, Device::CUDA);
  std::vector<Tensor> none;
  const std::vector<UpdateSegment> short_of_the_end = {{0, n - 1, 0.0f}};
  CHECK_THROWS_AS(dev->optimizer_step(s, p, g, none, short_of_the_end), std::invalid_argument);
}

TEST_CASE("cuda ops refuse tensors of the wrong dtype - device or shape", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);
  CHECK(dev->device() == Device::CUDA);
  CHECK(dev->name() == "cuda");
  const Tensor x64({2, 3}, DType::F64, Device::CUDA);
  Tensor y({2, 3}, DType::F32, Device::CUDA);
  CHECK_THROWS_AS(dev->relu_forward(x64, y), std::invalid_argument);
  const Tensor host({2, 3});
  CHECK_THROWS_AS(dev->relu_forward(host, y), std::invalid_argument);
  Tensor wrong({3, 2}, DType::F32, Device::CUDA);
  CHECK_THROWS_AS(dev->relu_forward(y, wrong), std::invalid_argument);
  Tensor probs({2, 3}, DType::F32, Device::CUDA);
  const Tensor bad_labels = gpu(Tensor::from_vector(std::vector<int32_t>{0, 3}, {2}));
  CHECK_THROWS_WITH(dev->softmax_xent_forward(y, bad_labels, probs),
                    Catch::Contains("label 3 at row 1"));
  CHECK_THROWS_WITH(dev->count_correct(y, bad_labels), Catch::Contains("label 3 at row 1"));
}

TEST_CASE("cuda upload_batch copies images and labels in stream order", "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);
  auto cpu = make_cpu_backend();
  const Shape s{4, 3, 8, 8};
  Tensor images = host_rand(s, 1), labels = host_labels(4, 10, 2);
  Tensor x(s, DType::F32, Device::CUDA), y({4}, DType::I32, Device::CUDA);
  Tensor out(s, DType::F32, Device::CUDA);
  // One pair of device tensors reused every step, as the trainer does: each upload
  // must wait for the step queued before it, and the step after it for the copy.
  // The host tensors are refilled right after each call.
  std::vector<Tensor> ref_out, ref_labels, got_out, got_labels;
  for (int step = 0; step < 5; ++step) {
    images.copy_from(host_rand(s, 10 + step));
    labels.copy_from(host_labels(4, 10, 20 + step));
    Tensor ref(s);
    cpu->relu_forward(images, ref);
    ref_out.push_back(ref);
    ref_labels.push_back(labels.to(Device::CPU));
    dev->upload_batch(images, labels, x, y);
    images.copy_from(host_rand(s, 99));  // the staging copy is the host's own
    dev->relu_forward(x, out);
    dev->synchronize();
    got_out.push_back(out.to(Device::CPU));
    got_labels.push_back(y.to(Device::CPU));
  }
  for (int step = 0; step < 5; ++step) {
    expect_equal(got_out[step], ref_out[step], "relu of uploaded batch " + std::to_string(step));
    expect_equal(got_labels[step], ref_labels[step], "labels of batch " + std::to_string(step));
  }

  // Queued without waiting in between: every step reads its own batch.
  Tensor acc(s, DType::F32, Device::CUDA), acc_ref(s);
  for (int step = 0; step < 4; ++step) {
    images.copy_from(host_rand(s, 40 + step));
    cpu->add_inplace(acc_ref, images);
    dev->upload_batch(images, labels, x, y);
    dev->add_inplace(acc, x);
  }
  dev->synchronize();
  expect_close(acc, acc_ref, kExactTol, "sum of four batches uploaded back to back");

  // Host tensors are the source, device tensors the destination.
  CHECK_THROWS_AS(dev->upload_batch(x, labels, x, y), std::invalid_argument);
  CHECK_THROWS_AS(dev->upload_batch(images, labels, out, labels), std::invalid_argument);
}

namespace {

// Trains the same network from the same start on `be` through the training run's own pieces:
// train_step (the batch goes up with upload_batch), Adam + L2, then a FilterSkipper with forced
// skips training the compacted network. Returns everything the CPU run must agree on.
struct TrainedOn {
  std::vector<double> losses;
  Tensor params, buffers, relu_maxima;  // on the CPU
  int64_t skipped = 0;
};

TrainedOn train_on(Backend& be) {
  const nlohmann::json layers = nlohmann::json::parse(R"([
    { "kind": "conv", "name": "conv1", "out": 6, "kernel": 3, "pad": 1 },
    { "kind": "bn", "name": "bn1" }, { "kind": "relu", "name": "relu1" },
    { "kind": "maxpool", "kernel": 2, "stride": 2 },
    { "kind": "conv", "name": "conv2", "out": 8, "kernel": 3, "pad": 1 },
    { "kind": "bn", "name": "bn2" }, { "kind": "relu", "name": "relu2" },
    { "kind": "gap" },
    { "kind": "linear", "name": "fc", "out": "classes" }
  ])");
  Model full(layers_from_json(layers, "model.layers"), InputShape{3, 8, 8}, 4, be);
  full.init_parameters(7);
  OptimHyper h;
  h.rule = UpdateRule::Adam;
  h.lr = 1e-2;
  Optimizer opt(h, RegKind::L2, 1e-3, full);
  FilterSkipper skipper(
      full, opt,
      [h](const Model& m) { return std::make_unique<Optimizer>(h, RegKind::L2, 1e-3, m); }, 1,
      1e-12);
  StepState state(be, StepChecks{});
  TrainedOn out;
  for (int step = 0; step < 6; ++step) {
    if (step == 3) skipper.force_skip({{0, 4}, {1, 2, 7}});
    const Tensor images = host_rand({8, 3, 8, 8}, 700 + static_cast<uint64_t>(step));
    const Tensor labels = st::testing::random_labels(8, 4, 800 + static_cast<uint64_t>(step));
    const StepResult r = train_step(state, skipper.model(), skipper.optimizer(),
                                    {images, labels, 1e-2, 1e-2, 1, step + 1});
    out.losses.push_back(r.loss);
  }
  skipper.sync_full();
  out.skipped = skipper.skipped_total();
  out.params = full.params().to(Device::CPU);
  out.buffers = full.buffers().to(Device::CPU);
  // Per-channel maxima of the ReLUs on an eval forward: what the dead-filter criterion reads.
  const Tensor x = host_rand({8, 3, 8, 8}, 900);
  full.forward(be.device() == Device::CPU ? x : x.to(be.device()), false);
  const Tensor& h2 = full.activation(full.layer_index("relu2"));
  Tensor absmax({h2.dim(0), h2.dim(1)}, DType::F32, be.device());
  be.channel_absmax(h2, absmax);
  out.relu_maxima = absmax.to(Device::CPU);
  return out;
}

}  // namespace

TEST_CASE("cuda training through Model - Optimizer and FilterSkipper equals the CPU run",
          "[cuda]") {
  if (skip_without_cuda()) return;
  auto dev = cuda_backend(false);  // exact FP32
  auto cpu = make_cpu_backend();
  const TrainedOn want = train_on(*cpu), got = train_on(*dev);
  REQUIRE(got.losses.size() == want.losses.size());
  for (std::size_t i = 0; i < want.losses.size(); ++i) {
    INFO("step " << i + 1 << ": cuda " << got.losses[i] << ", cpu " << want.losses[i]);
    CHECK(std::fabs(got.losses[i] - want.losses[i]) <= 1e-4 * std::fabs(want.losses[i]));
  }
  CHECK(got.skipped == want.skipped);
  CHECK(want.skipped == 3);
  expect_close(got.params, want.params, 1e-4, "parameters after 6 steps");
  expect_close(got.buffers, want.buffers, 1e-4, "BN buffers after 6 steps");
  expect_close(got.relu_maxima, want.relu_maxima, 1e-4, "relu2 channel maxima");
}
