// CpuBackend: dispatches each op (its arguments checked by Backend) on the
// element type to the templated kernels in cpu_kernels.h. It checks only what
// needs the values of a tensor: label ranges and argmax indices.
#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "backend/cpu/cpu_kernels.h"
#include "backend/op_checks.h"

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

// Per-channel layout of a [N, C] or [N, C, H, W] tensor (Backend checked the rank).
cpu::ChannelDims channel_dims(const Tensor& t) {
  return {t.dim(0), t.dim(1), t.ndim() == 4 ? t.dim(2) * t.dim(3) : 1};
}

// Labels must index a class; Backend checked their dtype and shape.
void check_label_values(const char* op, const Tensor& scores, const Tensor& labels) {
  const int64_t n = scores.dim(0), k = scores.dim(1);
  const int32_t* l = labels.data<int32_t>();
  for (int64_t r = 0; r < n; ++r)
    if (l[r] < 0 || l[r] >= k) {
      OpCheck ck(op);
      ck.arg("scores", scores).arg("labels", labels);
      ck.fail("label " + std::to_string(l[r]) + " at row " + std::to_string(r) +
              " is out of range [0, " + std::to_string(k) + ")");
    }
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
  bool supports(DType dtype) const override { return dtype == DType::F32 || dtype == DType::F64; }

 protected:
  ST_BACKEND_OVERRIDES
};

namespace {

// Both convolution forwards; `relu` fuses the ReLU that follows.
void conv_forward(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvGeom& g,
                  Tensor& y, bool relu) {
  const cpu::WindowDims d = window_dims(x, w.dim(0), g);
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::conv2d_forward<T>(x.data<T>(), w.data<T>(), data_or_null<T>(bias), d, y.data<T>(), relu);
  });
}

}  // namespace

void CpuBackend::do_conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* bias,
                                   const ConvGeom& g, Tensor& y) {
  conv_forward(x, w, bias, g, y, false);
}

void CpuBackend::do_conv2d_relu_forward(const Tensor& x, const Tensor& w, const Tensor* bias,
                                        const ConvGeom& g, Tensor& y) {
  conv_forward(x, w, bias, g, y, true);
}

void CpuBackend::do_conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy,
                                    const ConvGeom& g, Tensor* dx, Tensor& dw, Tensor* db) {
  const cpu::WindowDims d = window_dims(x, w.dim(0), g);
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::conv2d_backward<T>(x.data<T>(), w.data<T>(), dy.data<T>(), d, data_or_null<T>(dx),
                            dw.data<T>(), data_or_null<T>(db));
  });
}

namespace {

// BN on raw buffers, plain or with the ReLU fused in (kRelu; y_relu is then the ReLU's output).
template <bool kRelu>
void bn_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                      Tensor& running_mean, Tensor& running_var, double momentum, double eps,
                      Tensor& y, Tensor& save_mean, Tensor& save_invstd) {
  const cpu::ChannelDims d = channel_dims(x);
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::batchnorm_forward_train<kRelu, T>(
        x.data<T>(), gamma.data<T>(), beta.data<T>(), running_mean.data<T>(), running_var.data<T>(),
        momentum, eps, d, y.data<T>(), save_mean.data<T>(), save_invstd.data<T>());
  });
}

template <bool kRelu>
void bn_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                     const Tensor& running_mean, const Tensor& running_var, double eps, Tensor& y) {
  const cpu::ChannelDims d = channel_dims(x);
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::batchnorm_forward_eval<kRelu, T>(x.data<T>(), gamma.data<T>(), beta.data<T>(),
                                          running_mean.data<T>(), running_var.data<T>(), eps, d,
                                          y.data<T>());
  });
}

template <bool kRelu>
void bn_backward(const Tensor& x, const Tensor* y_relu, const Tensor& gamma,
                 const Tensor& save_mean, const Tensor& save_invstd, const Tensor& dy, Tensor& dx,
                 Tensor& dgamma, Tensor& dbeta) {
  const cpu::ChannelDims d = channel_dims(x);
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::batchnorm_backward<kRelu, T>(x.data<T>(), data_or_null<T>(y_relu), gamma.data<T>(),
                                      save_mean.data<T>(), save_invstd.data<T>(), dy.data<T>(), d,
                                      dx.data<T>(), dgamma.data<T>(), dbeta.data<T>());
  });
}

}  // namespace

void CpuBackend::do_batchnorm_forward_train(const Tensor& x, const Tensor& gamma,
                                            const Tensor& beta, Tensor& running_mean,
                                            Tensor& running_var, double momentum, double eps,
                                            Tensor& y, Tensor& save_mean, Tensor& save_invstd) {
  bn_forward_train<false>(x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean,
                          save_invstd);
}

void CpuBackend::do_batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                           const Tensor& running_mean, const Tensor& running_var,
                                           double eps, Tensor& y) {
  bn_forward_eval<false>(x, gamma, beta, running_mean, running_var, eps, y);
}

void CpuBackend::do_batchnorm_backward(const Tensor& x, const Tensor& gamma,
                                       const Tensor& save_mean, const Tensor& save_invstd,
                                       const Tensor& dy, Tensor& dx, Tensor& dgamma,
                                       Tensor& dbeta) {
  bn_backward<false>(x, nullptr, gamma, save_mean, save_invstd, dy, dx, dgamma, dbeta);
}

void CpuBackend::do_batchnorm_relu_forward_train(const Tensor& x, const Tensor& gamma,
                                                 const Tensor& beta, Tensor& running_mean,
                                                 Tensor& running_var, double momentum, double eps,
                                                 Tensor& y, Tensor& save_mean,
                                                 Tensor& save_invstd) {
  bn_forward_train<true>(x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean,
                         save_invstd);
}

void CpuBackend::do_batchnorm_relu_forward_eval(const Tensor& x, const Tensor& gamma,
                                                const Tensor& beta, const Tensor& running_mean,
                                                const Tensor& running_var, double eps, Tensor& y) {
  bn_forward_eval<true>(x, gamma, beta, running_mean, running_var, eps, y);
}

void CpuBackend::do_batchnorm_relu_backward(const Tensor& x, const Tensor& y, const Tensor& gamma,
                                            const Tensor& save_mean, const Tensor& save_invstd,
                                            const Tensor& dy, Tensor& dx, Tensor& dgamma,
                                            Tensor& dbeta) {
  bn_backward<true>(x, &y, gamma, save_mean, save_invstd, dy, dx, dgamma, dbeta);
}

void CpuBackend::do_relu_forward(const Tensor& x, Tensor& y) {
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::relu_forward<T>(x.data<T>(), x.numel(), y.data<T>());
  });
}

void CpuBackend::do_relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  dispatch_float(y, [&](auto tag) {
    using T = decltype(tag);
    cpu::relu_backward<T>(y.data<T>(), dy.data<T>(), y.numel(), dx.data<T>());
  });
}

void CpuBackend::do_maxpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y,
                                      Tensor& argmax) {
  const cpu::WindowDims d = window_dims(x, x.dim(1), g);
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::maxpool2d_forward<T>(x.data<T>(), d, y.data<T>(), argmax.data<int32_t>());
  });
}

void CpuBackend::do_maxpool2d_backward(const Tensor& dy, const Tensor& argmax, Tensor& dx) {
  const int64_t in_plane = dx.dim(2) * dx.dim(3);
  const int32_t* idx = argmax.data<int32_t>();
  const int64_t bad = first_outside(idx, argmax.numel(), in_plane);
  if (bad >= 0) {
    OpCheck ck("maxpool2d_backward");
    ck.arg("dy", dy).arg("argmax", argmax).arg("dx", dx);
    ck.fail("argmax index " + std::to_string(idx[bad]) + " at " + std::to_string(bad) +
            " is outside the input plane of " + std::to_string(in_plane));
  }
  cpu::WindowDims d;
  d.n = dx.dim(0), d.c = dx.dim(1), d.h = dx.dim(2), d.w = dx.dim(3);
  d.oh = dy.dim(2), d.ow = dy.dim(3);
  dispatch_float(dy, [&](auto tag) {
    using T = decltype(tag);
    cpu::maxpool2d_backward<T>(dy.data<T>(), idx, d, dx.data<T>());
  });
}

void CpuBackend::do_avgpool2d_forward(const Tensor& x, const PoolGeom& g, Tensor& y) {
  const cpu::WindowDims d = window_dims(x, x.dim(1), g);
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::avgpool2d_forward<T>(x.data<T>(), d, y.data<T>());
  });
}

void CpuBackend::do_avgpool2d_backward(const Tensor& dy, const PoolGeom& g, Tensor& dx) {
  const cpu::WindowDims d = window_dims(dx, dx.dim(1), g);
  dispatch_float(dx, [&](auto tag) {
    using T = decltype(tag);
    cpu::avgpool2d_backward<T>(dy.data<T>(), d, dx.data<T>());
  });
}

void CpuBackend::do_global_avgpool_forward(const Tensor& x, Tensor& y) {
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::global_avgpool_forward<T>(x.data<T>(), x.dim(0) * x.dim(1), x.dim(2) * x.dim(3),
                                   y.data<T>());
  });
}

void CpuBackend::do_global_avgpool_backward(const Tensor& dy, Tensor& dx) {
  dispatch_float(dy, [&](auto tag) {
    using T = decltype(tag);
    cpu::global_avgpool_backward<T>(dy.data<T>(), dx.dim(0) * dx.dim(1), dx.dim(2) * dx.dim(3),
                                    dx.data<T>());
  });
}

void CpuBackend::do_linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias,
                                   Tensor& y) {
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::linear_forward<T>(x.data<T>(), w.data<T>(), data_or_null<T>(bias), x.dim(0), x.dim(1),
                           w.dim(0), y.data<T>());
  });
}

void CpuBackend::do_linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx,
                                    Tensor& dw, Tensor* db) {
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::linear_backward<T>(x.data<T>(), w.data<T>(), dy.data<T>(), x.dim(0), x.dim(1), w.dim(0),
                            data_or_null<T>(dx), dw.data<T>(), data_or_null<T>(db));
  });
}

double CpuBackend::do_softmax_xent_forward(const Tensor& logits, const Tensor& labels,
                                           Tensor& probs) {
  check_label_values("softmax_xent_forward", logits, labels);
  double loss = 0;
  dispatch_float(logits, [&](auto tag) {
    using T = decltype(tag);
    loss = cpu::softmax_xent_forward<T>(logits.data<T>(), labels.data<int32_t>(), logits.dim(0),
                                        logits.dim(1), probs.data<T>());
  });
  return loss;
}

void CpuBackend::do_softmax_xent_backward(const Tensor& probs, const Tensor& labels,
                                          Tensor& dlogits) {
  check_label_values("softmax_xent_backward", probs, labels);
  dispatch_float(probs, [&](auto tag) {
    using T = decltype(tag);
    cpu::softmax_xent_backward<T>(probs.data<T>(), labels.data<int32_t>(), probs.dim(0),
                                  probs.dim(1), dlogits.data<T>());
  });
}

int64_t CpuBackend::do_count_correct(const Tensor& logits, const Tensor& labels) {
  check_label_values("count_correct", logits, labels);
  int64_t correct = 0;
  dispatch_float(logits, [&](auto tag) {
    using T = decltype(tag);
    correct = cpu::count_correct<T>(logits.data<T>(), labels.data<int32_t>(), logits.dim(0),
                                    logits.dim(1));
  });
  return correct;
}

void CpuBackend::do_add(const Tensor& a, const Tensor& b, Tensor& y) {
  dispatch_float(a, [&](auto tag) {
    using T = decltype(tag);
    cpu::add<T>(a.data<T>(), b.data<T>(), a.numel(), y.data<T>());
  });
}

void CpuBackend::do_add_inplace(Tensor& y, const Tensor& x) {
  dispatch_float(y, [&](auto tag) {
    using T = decltype(tag);
    cpu::add_inplace<T>(y.data<T>(), x.data<T>(), y.numel());
  });
}

void CpuBackend::do_dropout_forward(const Tensor& x, double p, uint64_t seed, Tensor& mask,
                                    Tensor& y) {
  dispatch_float(x, [&](auto tag) {
    using T = decltype(tag);
    cpu::dropout_forward<T>(x.data<T>(), x.numel(), p, seed, mask.data<T>(), y.data<T>());
  });
}

void CpuBackend::do_dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx) {
  dispatch_float(dy, [&](auto tag) {
    using T = decltype(tag);
    cpu::multiply<T>(dy.data<T>(), mask.data<T>(), dy.numel(), dx.data<T>());
  });
}

void CpuBackend::do_channel_absmax(const Tensor& h, Tensor& out) {
  const cpu::ChannelDims d = channel_dims(h);
  dispatch_float(h, [&](auto tag) {
    using T = decltype(tag);
    cpu::channel_absmax<T>(h.data<T>(), d.n * d.c, d.plane, out.data<float>());
  });
}

void CpuBackend::do_optimizer_step(const OptimStep& s, Tensor& params, const Tensor& grads,
                                   std::vector<Tensor>& state,
                                   const std::vector<UpdateSegment>& segments) {
  cpu_optimizer_step(s, params, grads, state, segments);
}

// The batch is already in host memory: a copy into the model's input tensors.
void CpuBackend::do_upload_batch(const Tensor& images, const Tensor& labels, Tensor& x, Tensor& y) {
  if (x.raw() != images.raw()) x.copy_from(images);
  if (y.raw() != labels.raw()) y.copy_from(labels);
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace st
