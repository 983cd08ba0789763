// CpuBackend: validates each op's arguments, then dispatches on the element
// type to the templated kernels in cpu_kernels.h.
#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/op_checks.h"

namespace st {
namespace {

// Calls f(T{}) with T the C++ type of a floating dtype (already validated).
template <typename F>
void dispatch_float(const Tensor& t, F&& f) {
  if (t.dtype() == DType::F32)
    f(float{});
  else
    f(double{});
}

template <typename T>
T* data_or_null(const Tensor* t) {
  return t ? t->data<T>() : nullptr;
}

cpu::WindowDims window_dims(const Tensor& x, int64_t out_channels, const ConvGeom& g) {
  cpu::WindowDims d;
  d.n = x.dim(0), d.c = x.dim(1), d.h = x.dim(2), d.w = x.dim(3);
  d.o = out_channels;
  d.oh = g.out_h(d.h), d.ow = g.out_w(d.w);
  d.g = g;
  return d;
}

// Per-channel layout of a [N, C] or [N, C, H, W] tensor.
cpu::ChannelDims channel_dims(const OpCheck& ck, const char* name, const Tensor& t) {
  if (t.ndim() != 2 && t.ndim() != 4)
    ck.fail(std::string(name) + " must be [N, C] or [N, C, H, W], got " + shape_str(t.shape()));
  return {t.dim(0), t.dim(1), t.ndim() == 4 ? t.dim(2) * t.dim(3) : 1};
}

void check_labels(const OpCheck& ck, const Tensor& labels, int64_t n, int64_t k) {
  ck.dtype("labels", labels, DType::I32);
  ck.shape("labels", labels, {n});
  const int32_t* l = labels.data<int32_t>();
  for (int64_t r = 0; r < n; ++r)
    if (l[r] < 0 || l[r] >= k)
      ck.fail("label " + std::to_string(l[r]) + " at row " + std::to_string(r) +
              " is out of range [0, " + std::to_string(k) + ")");
}

// The position of the first index outside [0, limit), or -1. A vectorized
// screen comes first (signed compares, which SSE2 has; min/max of int32 it
// lacks): the check runs on every max-pool backward.
int64_t first_outside(const int32_t* idx, int64_t n, int64_t limit) {
  const int32_t lim =
      static_cast<int32_t>(std::min<int64_t>(limit, std::numeric_limits<int32_t>::max()));
  int32_t any = 0;
#pragma omp simd reduction(| : any)
  for (int64_t i = 0; i < n; ++i) any |= static_cast<int32_t>((idx[i] < 0) | (idx[i] >= lim));
  if (!any) return -1;
  for (int64_t i = 0; i < n; ++i)
    if (idx[i] < 0 || idx[i] >= limit) return i;
  return -1;
}

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
  std::string name() const override { return "cpu"; }

  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvGeom& g,
                      Tensor& y) override {
    OpCheck ck("conv2d_forward");
    ck.arg("x", x).arg("w", w).arg("bias", bias).arg("y", y);
    check_conv_operands(ck, x, w, bias, g);
    const cpu::WindowDims d = window_dims(x, w.dim(0), g);
    ck.shape("y", y, {d.n, d.o, d.oh, d.ow});
    ck.same_dtype("y", y, x);
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::conv2d_forward<T>(x.data<T>(), w.data<T>(), data_or_null<T>(bias), d, y.data<T>());
    });
  }

  void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const ConvGeom& g,
                       Tensor* dx, Tensor& dw, Tensor* db) override {
    OpCheck ck("conv2d_backward");
    ck.arg("x", x).arg("w", w).arg("dy", dy).arg("dx", dx).arg("dw", dw).arg("db", db);
    check_conv_operands(ck, x, w, db, g);
    const cpu::WindowDims d = window_dims(x, w.dim(0), g);
    ck.shape("dy", dy, {d.n, d.o, d.oh, d.ow});
    ck.same_dtype("dy", dy, x);
    if (dx) {
      ck.shape("dx", *dx, x.shape());
      ck.same_dtype("dx", *dx, x);
    }
    ck.shape("dw", dw, w.shape());
    ck.same_dtype("dw", dw, x);
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::conv2d_backward<T>(x.data<T>(), w.data<T>(), dy.data<T>(), d, data_or_null<T>(dx),
                              dw.data<T>(), data_or_null<T>(db));
    });
  }

  void batchnorm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                               Tensor& running_mean, Tensor& running_var, double momentum,
                               double eps, Tensor& y, Tensor& save_mean,
                               Tensor& save_invstd) override {
    OpCheck ck("batchnorm_forward_train");
    ck.arg("x", x).arg("gamma", gamma).arg("beta", beta).arg("running_mean", running_mean);
    ck.arg("running_var", running_var).arg("y", y).arg("save_mean", save_mean);
    ck.arg("save_invstd", save_invstd);
    const cpu::ChannelDims d = check_batchnorm_operands(ck, x, gamma, beta, eps);
    check_channel_vectors(ck, x,
                          {{"running_mean", &running_mean},
                           {"running_var", &running_var},
                           {"save_mean", &save_mean},
                           {"save_invstd", &save_invstd}});
    if (!(momentum >= 0 && momentum <= 1))
      ck.fail("momentum " + std::to_string(momentum) + " is outside [0, 1]");
    if (d.n * d.plane < 2)
      ck.fail("training needs more than one value per channel, got " +
              std::to_string(d.n * d.plane));
    ck.shape("y", y, x.shape());
    ck.same_dtype("y", y, x);
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::batchnorm_forward_train<T>(x.data<T>(), gamma.data<T>(), beta.data<T>(),
                                      running_mean.data<T>(), running_var.data<T>(), momentum, eps,
                                      d, y.data<T>(), save_mean.data<T>(), save_invstd.data<T>());
    });
  }

  void batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              const Tensor& running_mean, const Tensor& running_var, double eps,
                              Tensor& y) override {
    OpCheck ck("batchnorm_forward_eval");
    ck.arg("x", x).arg("gamma", gamma).arg("beta", beta).arg("running_mean", running_mean);
    ck.arg("running_var", running_var).arg("y", y);
    const cpu::ChannelDims d = check_batchnorm_operands(ck, x, gamma, beta, eps);
    check_channel_vectors(ck, x, {{"running_mean", &running_mean}, {"running_var", &running_var}});
    ck.shape("y", y, x.shape());
    ck.same_dtype("y", y, x);
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::batchnorm_forward_eval<T>(x.data<T>(), gamma.data<T>(), beta.data<T>(),
                                     running_mean.data<T>(), running_var.data<T>(), eps, d,
                                     y.data<T>());
    });
  }

  void batchnorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                          const Tensor& save_invstd, const Tensor& dy, Tensor& dx, Tensor& dgamma,
                          Tensor& dbeta) override {
    OpCheck ck("batchnorm_backward");
    ck.arg("x", x).arg("gamma", gamma).arg("save_mean", save_mean).arg("save_invstd", save_invstd);
    ck.arg("dy", dy).arg("dx", dx).arg("dgamma", dgamma).arg("dbeta", dbeta);
    ck.on_device(Device::CPU);
    ck.floating("x", x);
    const cpu::ChannelDims d = channel_dims(ck, "x", x);
    check_channel_vectors(ck, x,
                          {{"gamma", &gamma},
                           {"save_mean", &save_mean},
                           {"save_invstd", &save_invstd},
                           {"dgamma", &dgamma},
                           {"dbeta", &dbeta}});
    check_like(ck, x, {{"dy", &dy}, {"dx", &dx}});
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::batchnorm_backward<T>(x.data<T>(), gamma.data<T>(), save_mean.data<T>(),
                                 save_invstd.data<T>(), dy.data<T>(), d, dx.data<T>(),
                                 dgamma.data<T>(), dbeta.data<T>());
    });
  }

  void relu_forward(const Tensor& x, Tensor& y) override {
    OpCheck ck("relu_forward");
    ck.arg("x", x).arg("y", y);
    check_elementwise(ck, x, {{"y", &y}});
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::relu_forward<T>(x.data<T>(), x.numel(), y.data<T>());
    });
  }

  void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) override {
    OpCheck ck("relu_backward");
    ck.arg("y", y).arg("dy", dy).arg("dx", dx);
    check_elementwise(ck, y, {{"dy", &dy}, {"dx", &dx}});
    dispatch_float(y, [&](auto tag) {
      using T = decltype(tag);
      cpu::relu_backward<T>(y.data<T>(), dy.data<T>(), y.numel(), dx.data<T>());
    });
  }

  void maxpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y, Tensor& argmax) override {
    OpCheck ck("maxpool2d_forward");
    ck.arg("x", x).arg("y", y).arg("argmax", argmax);
    check_pool_input(ck, x, g);
    if (x.dim(2) * x.dim(3) > std::numeric_limits<int32_t>::max())
      ck.fail("the input plane is too large for int32 argmax indices");
    const cpu::WindowDims d = window_dims(x, x.dim(1), g);
    const Shape out{d.n, d.c, d.oh, d.ow};
    ck.shape("y", y, out);
    ck.same_dtype("y", y, x);
    ck.shape("argmax", argmax, out);
    ck.dtype("argmax", argmax, DType::I32);
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::maxpool2d_forward<T>(x.data<T>(), d, y.data<T>(), argmax.data<int32_t>());
    });
  }

  void maxpool2d_backward(const Tensor& dy, const Tensor& argmax, Tensor& dx) override {
    OpCheck ck("maxpool2d_backward");
    ck.arg("dy", dy).arg("argmax", argmax).arg("dx", dx);
    ck.on_device(Device::CPU);
    ck.floating("dy", dy);
    ck.rank("dy", dy, 4);
    ck.rank("dx", dx, 4);
    ck.same_dtype("dx", dx, dy);
    ck.shape("argmax", argmax, dy.shape());
    ck.dtype("argmax", argmax, DType::I32);
    if (dx.dim(0) != dy.dim(0) || dx.dim(1) != dy.dim(1))
      ck.fail("dx and dy differ in batch or channels");
    const int64_t in_plane = dx.dim(2) * dx.dim(3);
    const int32_t* idx = argmax.data<int32_t>();
    const int64_t bad = first_outside(idx, argmax.numel(), in_plane);
    if (bad >= 0)
      ck.fail("argmax index " + std::to_string(idx[bad]) + " at " + std::to_string(bad) +
              " is outside the input plane of " + std::to_string(in_plane));
    cpu::WindowDims d;
    d.n = dx.dim(0), d.c = dx.dim(1), d.h = dx.dim(2), d.w = dx.dim(3);
    d.oh = dy.dim(2), d.ow = dy.dim(3);
    dispatch_float(dy, [&](auto tag) {
      using T = decltype(tag);
      cpu::maxpool2d_backward<T>(dy.data<T>(), idx, d, dx.data<T>());
    });
  }

  void avgpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y) override {
    OpCheck ck("avgpool2d_forward");
    ck.arg("x", x).arg("y", y);
    check_pool_input(ck, x, g);
    const cpu::WindowDims d = window_dims(x, x.dim(1), g);
    ck.shape("y", y, {d.n, d.c, d.oh, d.ow});
    ck.same_dtype("y", y, x);
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::avgpool2d_forward<T>(x.data<T>(), d, y.data<T>());
    });
  }

  void avgpool2d_backward(const Tensor& dy, const PoolGeom& g, Tensor& dx) override {
    OpCheck ck("avgpool2d_backward");
    ck.arg("dy", dy).arg("dx", dx);
    check_pool_input(ck, dx, g);
    const cpu::WindowDims d = window_dims(dx, dx.dim(1), g);
    ck.shape("dy", dy, {d.n, d.c, d.oh, d.ow});
    ck.same_dtype("dy", dy, dx);
    dispatch_float(dx, [&](auto tag) {
      using T = decltype(tag);
      cpu::avgpool2d_backward<T>(dy.data<T>(), d, dx.data<T>());
    });
  }

  void global_avgpool_forward(const Tensor& x, Tensor& y) override {
    OpCheck ck("global_avgpool_forward");
    ck.arg("x", x).arg("y", y);
    ck.on_device(Device::CPU);
    ck.floating("x", x);
    ck.rank("x", x, 4);
    ck.shape("y", y, {x.dim(0), x.dim(1)});
    ck.same_dtype("y", y, x);
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::global_avgpool_forward<T>(x.data<T>(), x.dim(0) * x.dim(1), x.dim(2) * x.dim(3),
                                     y.data<T>());
    });
  }

  void global_avgpool_backward(const Tensor& dy, Tensor& dx) override {
    OpCheck ck("global_avgpool_backward");
    ck.arg("dy", dy).arg("dx", dx);
    ck.on_device(Device::CPU);
    ck.floating("dy", dy);
    ck.rank("dx", dx, 4);
    ck.shape("dy", dy, {dx.dim(0), dx.dim(1)});
    ck.same_dtype("dx", dx, dy);
    dispatch_float(dy, [&](auto tag) {
      using T = decltype(tag);
      cpu::global_avgpool_backward<T>(dy.data<T>(), dx.dim(0) * dx.dim(1), dx.dim(2) * dx.dim(3),
                                      dx.data<T>());
    });
  }

  void linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override {
    OpCheck ck("linear_forward");
    ck.arg("x", x).arg("w", w).arg("bias", bias).arg("y", y);
    check_linear_operands(ck, x, w, bias);
    ck.shape("y", y, {x.dim(0), w.dim(0)});
    ck.same_dtype("y", y, x);
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::linear_forward<T>(x.data<T>(), w.data<T>(), data_or_null<T>(bias), x.dim(0), x.dim(1),
                             w.dim(0), y.data<T>());
    });
  }

  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                       Tensor* db) override {
    OpCheck ck("linear_backward");
    ck.arg("x", x).arg("w", w).arg("dy", dy).arg("dx", dx).arg("dw", dw).arg("db", db);
    check_linear_operands(ck, x, w, db);
    ck.shape("dy", dy, {x.dim(0), w.dim(0)});
    ck.same_dtype("dy", dy, x);
    if (dx) {
      ck.shape("dx", *dx, x.shape());
      ck.same_dtype("dx", *dx, x);
    }
    ck.shape("dw", dw, w.shape());
    ck.same_dtype("dw", dw, x);
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::linear_backward<T>(x.data<T>(), w.data<T>(), dy.data<T>(), x.dim(0), x.dim(1), w.dim(0),
                              data_or_null<T>(dx), dw.data<T>(), data_or_null<T>(db));
    });
  }

  double softmax_xent_forward(const Tensor& logits, const Tensor& labels, Tensor& probs) override {
    OpCheck ck("softmax_xent_forward");
    ck.arg("logits", logits).arg("labels", labels).arg("probs", probs);
    check_logits(ck, "logits", logits);
    check_labels(ck, labels, logits.dim(0), logits.dim(1));
    ck.shape("probs", probs, logits.shape());
    ck.same_dtype("probs", probs, logits);
    double loss = 0;
    dispatch_float(logits, [&](auto tag) {
      using T = decltype(tag);
      loss = cpu::softmax_xent_forward<T>(logits.data<T>(), labels.data<int32_t>(), logits.dim(0),
                                          logits.dim(1), probs.data<T>());
    });
    return loss;
  }

  void softmax_xent_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits) override {
    OpCheck ck("softmax_xent_backward");
    ck.arg("probs", probs).arg("labels", labels).arg("dlogits", dlogits);
    check_logits(ck, "probs", probs);
    check_labels(ck, labels, probs.dim(0), probs.dim(1));
    ck.shape("dlogits", dlogits, probs.shape());
    ck.same_dtype("dlogits", dlogits, probs);
    dispatch_float(probs, [&](auto tag) {
      using T = decltype(tag);
      cpu::softmax_xent_backward<T>(probs.data<T>(), labels.data<int32_t>(), probs.dim(0),
                                    probs.dim(1), dlogits.data<T>());
    });
  }

  int64_t count_correct(const Tensor& logits, const Tensor& labels) override {
    OpCheck ck("count_correct");
    ck.arg("logits", logits).arg("labels", labels);
    check_logits(ck, "logits", logits);
    check_labels(ck, labels, logits.dim(0), logits.dim(1));
    int64_t correct = 0;
    dispatch_float(logits, [&](auto tag) {
      using T = decltype(tag);
      correct = cpu::count_correct<T>(logits.data<T>(), labels.data<int32_t>(), logits.dim(0),
                                      logits.dim(1));
    });
    return correct;
  }

  void add(const Tensor& a, const Tensor& b, Tensor& y) override {
    OpCheck ck("add");
    ck.arg("a", a).arg("b", b).arg("y", y);
    check_elementwise(ck, a, {{"b", &b}, {"y", &y}});
    dispatch_float(a, [&](auto tag) {
      using T = decltype(tag);
      cpu::add<T>(a.data<T>(), b.data<T>(), a.numel(), y.data<T>());
    });
  }

  void add_inplace(Tensor& y, const Tensor& x) override {
    OpCheck ck("add_inplace");
    ck.arg("y", y).arg("x", x);
    check_elementwise(ck, y, {{"x", &x}});
    dispatch_float(y, [&](auto tag) {
      using T = decltype(tag);
      cpu::add_inplace<T>(y.data<T>(), x.data<T>(), y.numel());
    });
  }

  void dropout_forward(const Tensor& x, double p, uint64_t seed, Tensor& mask, Tensor& y) override {
    OpCheck ck("dropout_forward");
    ck.arg("x", x).arg("mask", mask).arg("y", y);
    check_elementwise(ck, x, {{"mask", &mask}, {"y", &y}});
    if (!(p >= 0 && p < 1)) ck.fail("drop probability " + std::to_string(p) + " is outside [0, 1)");
    dispatch_float(x, [&](auto tag) {
      using T = decltype(tag);
      cpu::dropout_forward<T>(x.data<T>(), x.numel(), p, seed, mask.data<T>(), y.data<T>());
    });
  }

  void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx) override {
    OpCheck ck("dropout_backward");
    ck.arg("dy", dy).arg("mask", mask).arg("dx", dx);
    check_elementwise(ck, dy, {{"mask", &mask}, {"dx", &dx}});
    dispatch_float(dy, [&](auto tag) {
      using T = decltype(tag);
      cpu::multiply<T>(dy.data<T>(), mask.data<T>(), dy.numel(), dx.data<T>());
    });
  }

  void channel_absmax(const Tensor& h, Tensor& out) override {
    OpCheck ck("channel_absmax");
    ck.arg("h", h).arg("out", out);
    ck.on_device(Device::CPU);
    ck.floating("h", h);
    const cpu::ChannelDims d = channel_dims(ck, "h", h);
    ck.shape("out", out, {d.n, d.c});
    ck.dtype("out", out, DType::F32);
    dispatch_float(h, [&](auto tag) {
      using T = decltype(tag);
      cpu::channel_absmax<T>(h.data<T>(), d.n * d.c, d.plane, out.data<float>());
    });
  }

  void optimizer_step(const OptimStep& s, Tensor& params, const Tensor& grads,
                      std::vector<Tensor>& state,
                      const std::vector<UpdateSegment>& segments) override {
    cpu_optimizer_step(s, params, grads, state, segments);
  }

 private:
  using Named = std::vector<std::pair<const char*, const Tensor*>>;

  static void check_conv_operands(const OpCheck& ck, const Tensor& x, const Tensor& w,
                                  const Tensor* bias, const ConvGeom& g) {
    ck.on_device(Device::CPU);
    ck.floating("x", x);
    ck.rank("x", x, 4);
    ck.rank("w", w, 4);
    ck.same_dtype("w", w, x);
    if (w.dim(1) != x.dim(1))
      ck.fail("w expects " + std::to_string(w.dim(1)) + " input channels, x has " +
              std::to_string(x.dim(1)));
    if (w.dim(2) != g.kh || w.dim(3) != g.kw)
      ck.fail("w's kernel " + std::to_string(w.dim(2)) + "x" + std::to_string(w.dim(3)) +
              " differs from the geometry's " + std::to_string(g.kh) + "x" + std::to_string(g.kw));
    ck.geometry(g, x.dim(2), x.dim(3));
    if (bias) {
      ck.shape("bias", *bias, {w.dim(0)});
      ck.same_dtype("bias", *bias, x);
    }
  }

  static cpu::ChannelDims check_batchnorm_operands(const OpCheck& ck, const Tensor& x,
                                                   const Tensor& gamma, const Tensor& beta,
                                                   double eps) {
    ck.on_device(Device::CPU);
    ck.floating("x", x);
    const cpu::ChannelDims d = channel_dims(ck, "x", x);
    check_channel_vectors(ck, x, {{"gamma", &gamma}, {"beta", &beta}});
    if (!(eps > 0)) ck.fail("eps " + std::to_string(eps) + " must be positive");
    return d;
  }

  // Each named tensor is a [C] vector of x's dtype.
  static void check_channel_vectors(const OpCheck& ck, const Tensor& x, const Named& vectors) {
    for (const auto& [name, t] : vectors) {
      ck.shape(name, *t, {x.dim(1)});
      ck.same_dtype(name, *t, x);
    }
  }

  // Each named tensor has ref's shape and dtype.
  static void check_like(const OpCheck& ck, const Tensor& ref, const Named& others) {
    for (const auto& [name, t] : others) {
      ck.shape(name, *t, ref.shape());
      ck.same_dtype(name, *t, ref);
    }
  }

  static void check_elementwise(const OpCheck& ck, const Tensor& ref, const Named& others) {
    ck.on_device(Device::CPU);
    ck.floating("input", ref);
    check_like(ck, ref, others);
  }

  static void check_pool_input(const OpCheck& ck, const Tensor& x, const PoolGeom& g) {
    ck.on_device(Device::CPU);
    ck.floating("x", x);
    ck.rank("x", x, 4);
    ck.pool_geometry(g, x.dim(2), x.dim(3));
  }

  static void check_linear_operands(const OpCheck& ck, const Tensor& x, const Tensor& w,
                                    const Tensor* bias) {
    ck.on_device(Device::CPU);
    ck.floating("x", x);
    ck.rank("x", x, 2);
    ck.rank("w", w, 2);
    ck.same_dtype("w", w, x);
    if (w.dim(1) != x.dim(1))
      ck.fail("w expects " + std::to_string(w.dim(1)) + " input features, x has " +
              std::to_string(x.dim(1)));
    if (bias) {
      ck.shape("bias", *bias, {w.dim(0)});
      ck.same_dtype("bias", *bias, x);
    }
  }

  static void check_logits(const OpCheck& ck, const char* name, const Tensor& t) {
    ck.on_device(Device::CPU);
    ck.floating(name, t);
    ck.rank(name, t, 2);
    if (t.dim(1) < 1) ck.fail(std::string(name) + " needs at least one class");
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace st
