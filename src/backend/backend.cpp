// The op contract: each public op checks its arguments here, once for every
// backend, then calls the device's do_<op>.
#include "backend/backend.h"

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/denormals.h"
#include "backend/op_checks.h"
#include "optim/optim_types.h"

#ifdef SPARSETRAIN_WITH_CUDA
#include "cuda_backend.h"
#endif

namespace st {
namespace {

using Named = std::vector<std::pair<const char*, const Tensor*>>;

// A [N, C] or [N, C, H, W] tensor.
void check_channels_layout(const OpCheck& ck, const char* name, const Tensor& t) {
  if (t.ndim() != 2 && t.ndim() != 4)
    ck.fail(std::string(name) + " must be [N, C] or [N, C, H, W], got " + shape_str(t.shape()));
}

// Each named tensor is a [C] vector of x's dtype.
void check_channel_vectors(const OpCheck& ck, const Tensor& x, const Named& vectors) {
  for (const auto& [name, t] : vectors) {
    ck.shape(name, *t, {x.dim(1)});
    ck.same_dtype(name, *t, x);
  }
}

// Each named tensor has ref's shape and dtype.
void check_like(const OpCheck& ck, const Tensor& ref, const Named& others) {
  for (const auto& [name, t] : others) {
    ck.shape(name, *t, ref.shape());
    ck.same_dtype(name, *t, ref);
  }
}

void check_elementwise(const OpCheck& ck, const Tensor& ref, const Named& others) {
  ck.on_device();
  ck.floating("input", ref);
  check_like(ck, ref, others);
}

void check_conv_operands(const OpCheck& ck, const Tensor& x, const Tensor& w, const Tensor* bias,
                         const ConvGeom& g) {
  ck.on_device();
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

Shape conv_out_shape(const Tensor& x, int64_t channels, const ConvGeom& g) {
  return {x.dim(0), channels, g.out_h(x.dim(2)), g.out_w(x.dim(3))};
}

void check_batchnorm_operands(const OpCheck& ck, const Tensor& x, const Tensor& gamma,
                              const Tensor& beta, double eps) {
  ck.on_device();
  ck.floating("x", x);
  check_channels_layout(ck, "x", x);
  check_channel_vectors(ck, x, {{"gamma", &gamma}, {"beta", &beta}});
  if (!(eps > 0)) ck.fail("eps " + std::to_string(eps) + " must be positive");
}

void check_pool_input(const OpCheck& ck, const Tensor& x, const PoolGeom& g) {
  ck.on_device();
  ck.floating("x", x);
  ck.rank("x", x, 4);
  ck.pool_geometry(g, x.dim(2), x.dim(3));
}

void check_linear_operands(const OpCheck& ck, const Tensor& x, const Tensor& w,
                           const Tensor* bias) {
  ck.on_device();
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

// Logits or probabilities [N, K] with labels I32 [N]. The label values are the
// device's to check (it reads them where they live).
void check_classes(const OpCheck& ck, const char* name, const Tensor& t, const Tensor& labels) {
  ck.on_device();
  ck.floating(name, t);
  ck.rank(name, t, 2);
  if (t.dim(1) < 1) ck.fail(std::string(name) + " needs at least one class");
  ck.dtype("labels", labels, DType::I32);
  ck.shape("labels", labels, {t.dim(0)});
}

}  // namespace

// One check function per op, named check_<op>, taking the backend and the op's
// arguments; the public entries below are generated from ST_BACKEND_OPS.

static void check_conv_forward(const char* op, const Backend& b, const Tensor& x, const Tensor& w,
                               const Tensor* bias, const ConvGeom& g, const Tensor& y) {
  OpCheck ck(b, op);
  ck.arg("x", x).arg("w", w).arg("bias", bias).arg("y", y);
  check_conv_operands(ck, x, w, bias, g);
  ck.shape("y", y, conv_out_shape(x, w.dim(0), g));
  ck.same_dtype("y", y, x);
}

static void check_conv2d_forward(const Backend& b, const Tensor& x, const Tensor& w,
                                 const Tensor* bias, const ConvGeom& g, const Tensor& y) {
  check_conv_forward("conv2d_forward", b, x, w, bias, g, y);
}

static void check_conv2d_relu_forward(const Backend& b, const Tensor& x, const Tensor& w,
                                      const Tensor* bias, const ConvGeom& g, const Tensor& y) {
  check_conv_forward("conv2d_relu_forward", b, x, w, bias, g, y);
}

static void check_conv2d_backward(const Backend& b, const Tensor& x, const Tensor& w,
                                  const Tensor& dy, const ConvGeom& g, const Tensor* dx,
                                  const Tensor& dw, const Tensor* db) {
  OpCheck ck(b, "conv2d_backward");
  ck.arg("x", x).arg("w", w).arg("dy", dy).arg("dx", dx).arg("dw", dw).arg("db", db);
  check_conv_operands(ck, x, w, db, g);
  ck.shape("dy", dy, conv_out_shape(x, w.dim(0), g));
  ck.same_dtype("dy", dy, x);
  if (dx) {
    ck.shape("dx", *dx, x.shape());
    ck.same_dtype("dx", *dx, x);
  }
  ck.shape("dw", dw, w.shape());
  ck.same_dtype("dw", dw, x);
}

// The BN checks, shared by each op and its ReLU-fused twin (`op` names the one called).
static void check_bn_forward_train(const char* op, const Backend& b, const Tensor& x,
                                   const Tensor& gamma, const Tensor& beta,
                                   const Tensor& running_mean, const Tensor& running_var,
                                   double momentum, double eps, const Tensor& y,
                                   const Tensor& save_mean, const Tensor& save_invstd) {
  OpCheck ck(b, op);
  ck.arg("x", x).arg("gamma", gamma).arg("beta", beta).arg("running_mean", running_mean);
  ck.arg("running_var", running_var).arg("y", y).arg("save_mean", save_mean);
  ck.arg("save_invstd", save_invstd);
  check_batchnorm_operands(ck, x, gamma, beta, eps);
  check_channel_vectors(ck, x,
                        {{"running_mean", &running_mean},
                         {"running_var", &running_var},
                         {"save_mean", &save_mean},
                         {"save_invstd", &save_invstd}});
  if (!(momentum >= 0 && momentum <= 1))
    ck.fail("momentum " + std::to_string(momentum) + " is outside [0, 1]");
  const int64_t per_channel = x.dim(0) * (x.ndim() == 4 ? x.dim(2) * x.dim(3) : 1);
  if (per_channel < 2)
    ck.fail("training needs more than one value per channel, got " + std::to_string(per_channel));
  ck.shape("y", y, x.shape());
  ck.same_dtype("y", y, x);
}

static void check_bn_forward_eval(const char* op, const Backend& b, const Tensor& x,
                                  const Tensor& gamma, const Tensor& beta,
                                  const Tensor& running_mean, const Tensor& running_var, double eps,
                                  const Tensor& y) {
  OpCheck ck(b, op);
  ck.arg("x", x).arg("gamma", gamma).arg("beta", beta).arg("running_mean", running_mean);
  ck.arg("running_var", running_var).arg("y", y);
  check_batchnorm_operands(ck, x, gamma, beta, eps);
  check_channel_vectors(ck, x, {{"running_mean", &running_mean}, {"running_var", &running_var}});
  ck.shape("y", y, x.shape());
  ck.same_dtype("y", y, x);
}

// y: the fused ReLU's output, null for plain BN.
static void check_bn_backward(const char* op, const Backend& b, const Tensor& x, const Tensor* y,
                              const Tensor& gamma, const Tensor& save_mean,
                              const Tensor& save_invstd, const Tensor& dy, const Tensor& dx,
                              const Tensor& dgamma, const Tensor& dbeta) {
  OpCheck ck(b, op);
  ck.arg("x", x);
  if (y) ck.arg("y", *y);
  ck.arg("gamma", gamma).arg("save_mean", save_mean).arg("save_invstd", save_invstd);
  ck.arg("dy", dy).arg("dx", dx).arg("dgamma", dgamma).arg("dbeta", dbeta);
  ck.on_device();
  ck.floating("x", x);
  check_channels_layout(ck, "x", x);
  check_channel_vectors(ck, x,
                        {{"gamma", &gamma},
                         {"save_mean", &save_mean},
                         {"save_invstd", &save_invstd},
                         {"dgamma", &dgamma},
                         {"dbeta", &dbeta}});
  check_like(ck, x, {{"dy", &dy}, {"dx", &dx}});
  if (y) check_like(ck, x, {{"y", y}});
  if (x.dim(0) == 0) ck.fail("the batch is empty");
}

static void check_batchnorm_forward_train(const Backend& b, const Tensor& x, const Tensor& gamma,
                                          const Tensor& beta, const Tensor& running_mean,
                                          const Tensor& running_var, double momentum, double eps,
                                          const Tensor& y, const Tensor& save_mean,
                                          const Tensor& save_invstd) {
  check_bn_forward_train("batchnorm_forward_train", b, x, gamma, beta, running_mean, running_var,
                         momentum, eps, y, save_mean, save_invstd);
}

static void check_batchnorm_relu_forward_train(const Backend& b, const Tensor& x,
                                               const Tensor& gamma, const Tensor& beta,
                                               const Tensor& running_mean,
                                               const Tensor& running_var, double momentum,
                                               double eps, const Tensor& y, const Tensor& save_mean,
                                               const Tensor& save_invstd) {
  check_bn_forward_train("batchnorm_relu_forward_train", b, x, gamma, beta, running_mean,
                         running_var, momentum, eps, y, save_mean, save_invstd);
}

static void check_batchnorm_forward_eval(const Backend& b, const Tensor& x, const Tensor& gamma,
                                         const Tensor& beta, const Tensor& running_mean,
                                         const Tensor& running_var, double eps, const Tensor& y) {
  check_bn_forward_eval("batchnorm_forward_eval", b, x, gamma, beta, running_mean, running_var, eps,
                        y);
}

static void check_batchnorm_relu_forward_eval(const Backend& b, const Tensor& x,
                                              const Tensor& gamma, const Tensor& beta,
                                              const Tensor& running_mean, const Tensor& running_var,
                                              double eps, const Tensor& y) {
  check_bn_forward_eval("batchnorm_relu_forward_eval", b, x, gamma, beta, running_mean, running_var,
                        eps, y);
}

static void check_batchnorm_backward(const Backend& b, const Tensor& x, const Tensor& gamma,
                                     const Tensor& save_mean, const Tensor& save_invstd,
                                     const Tensor& dy, const Tensor& dx, const Tensor& dgamma,
                                     const Tensor& dbeta) {
  check_bn_backward("batchnorm_backward", b, x, nullptr, gamma, save_mean, save_invstd, dy, dx,
                    dgamma, dbeta);
}

static void check_batchnorm_relu_backward(const Backend& b, const Tensor& x, const Tensor& y,
                                          const Tensor& gamma, const Tensor& save_mean,
                                          const Tensor& save_invstd, const Tensor& dy,
                                          const Tensor& dx, const Tensor& dgamma,
                                          const Tensor& dbeta) {
  check_bn_backward("batchnorm_relu_backward", b, x, &y, gamma, save_mean, save_invstd, dy, dx,
                    dgamma, dbeta);
}

static void check_relu_forward(const Backend& b, const Tensor& x, const Tensor& y) {
  OpCheck ck(b, "relu_forward");
  ck.arg("x", x).arg("y", y);
  check_elementwise(ck, x, {{"y", &y}});
}

static void check_relu_backward(const Backend& b, const Tensor& y, const Tensor& dy,
                                const Tensor& dx) {
  OpCheck ck(b, "relu_backward");
  ck.arg("y", y).arg("dy", dy).arg("dx", dx);
  check_elementwise(ck, y, {{"dy", &dy}, {"dx", &dx}});
}

static void check_maxpool2d_forward(const Backend& b, const Tensor& x, const PoolGeom& g,
                                    const Tensor& y, const Tensor& argmax) {
  OpCheck ck(b, "maxpool2d_forward");
  ck.arg("x", x).arg("y", y).arg("argmax", argmax);
  check_pool_input(ck, x, g);
  if (x.dim(2) * x.dim(3) > std::numeric_limits<int32_t>::max())
    ck.fail("the input plane is too large for int32 argmax indices");
  const Shape out = conv_out_shape(x, x.dim(1), g);
  ck.shape("y", y, out);
  ck.same_dtype("y", y, x);
  ck.shape("argmax", argmax, out);
  ck.dtype("argmax", argmax, DType::I32);
}

static void check_maxpool2d_backward(const Backend& b, const Tensor& dy, const Tensor& argmax,
                                     const Tensor& dx) {
  OpCheck ck(b, "maxpool2d_backward");
  ck.arg("dy", dy).arg("argmax", argmax).arg("dx", dx);
  ck.on_device();
  ck.floating("dy", dy);
  ck.rank("dy", dy, 4);
  ck.rank("dx", dx, 4);
  ck.same_dtype("dx", dx, dy);
  ck.shape("argmax", argmax, dy.shape());
  ck.dtype("argmax", argmax, DType::I32);
  if (dx.dim(0) != dy.dim(0) || dx.dim(1) != dy.dim(1))
    ck.fail("dx and dy differ in batch or channels");
  if (dx.dim(2) * dx.dim(3) > std::numeric_limits<int32_t>::max())
    ck.fail("the input plane is too large for int32 argmax indices");
}

static void check_avgpool2d_forward(const Backend& b, const Tensor& x, const PoolGeom& g,
                                    const Tensor& y) {
  OpCheck ck(b, "avgpool2d_forward");
  ck.arg("x", x).arg("y", y);
  check_pool_input(ck, x, g);
  ck.shape("y", y, conv_out_shape(x, x.dim(1), g));
  ck.same_dtype("y", y, x);
}

static void check_avgpool2d_backward(const Backend& b, const Tensor& dy, const PoolGeom& g,
                                     const Tensor& dx) {
  OpCheck ck(b, "avgpool2d_backward");
  ck.arg("dy", dy).arg("dx", dx);
  check_pool_input(ck, dx, g);
  ck.shape("dy", dy, conv_out_shape(dx, dx.dim(1), g));
  ck.same_dtype("dy", dy, dx);
}

static void check_global_avgpool_forward(const Backend& b, const Tensor& x, const Tensor& y) {
  OpCheck ck(b, "global_avgpool_forward");
  ck.arg("x", x).arg("y", y);
  ck.on_device();
  ck.floating("x", x);
  ck.rank("x", x, 4);
  ck.shape("y", y, {x.dim(0), x.dim(1)});
  ck.same_dtype("y", y, x);
}

static void check_global_avgpool_backward(const Backend& b, const Tensor& dy, const Tensor& dx) {
  OpCheck ck(b, "global_avgpool_backward");
  ck.arg("dy", dy).arg("dx", dx);
  ck.on_device();
  ck.floating("dy", dy);
  ck.rank("dx", dx, 4);
  ck.shape("dy", dy, {dx.dim(0), dx.dim(1)});
  ck.same_dtype("dx", dx, dy);
}

static void check_linear_forward(const Backend& b, const Tensor& x, const Tensor& w,
                                 const Tensor* bias, const Tensor& y) {
  OpCheck ck(b, "linear_forward");
  ck.arg("x", x).arg("w", w).arg("bias", bias).arg("y", y);
  check_linear_operands(ck, x, w, bias);
  ck.shape("y", y, {x.dim(0), w.dim(0)});
  ck.same_dtype("y", y, x);
}

static void check_linear_backward(const Backend& b, const Tensor& x, const Tensor& w,
                                  const Tensor& dy, const Tensor* dx, const Tensor& dw,
                                  const Tensor* db) {
  OpCheck ck(b, "linear_backward");
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
}

static void check_softmax_xent_forward(const Backend& b, const Tensor& logits, const Tensor& labels,
                                       const Tensor& probs) {
  OpCheck ck(b, "softmax_xent_forward");
  ck.arg("logits", logits).arg("labels", labels).arg("probs", probs);
  check_classes(ck, "logits", logits, labels);
  ck.shape("probs", probs, logits.shape());
  ck.same_dtype("probs", probs, logits);
}

static void check_softmax_xent_backward(const Backend& b, const Tensor& probs, const Tensor& labels,
                                        const Tensor& dlogits) {
  OpCheck ck(b, "softmax_xent_backward");
  ck.arg("probs", probs).arg("labels", labels).arg("dlogits", dlogits);
  check_classes(ck, "probs", probs, labels);
  ck.shape("dlogits", dlogits, probs.shape());
  ck.same_dtype("dlogits", dlogits, probs);
}

static void check_count_correct(const Backend& b, const Tensor& logits, const Tensor& labels) {
  OpCheck ck(b, "count_correct");
  ck.arg("logits", logits).arg("labels", labels);
  check_classes(ck, "logits", logits, labels);
}

static void check_add(const Backend& b, const Tensor& a, const Tensor& bb, const Tensor& y) {
  OpCheck ck(b, "add");
  ck.arg("a", a).arg("b", bb).arg("y", y);
  check_elementwise(ck, a, {{"b", &bb}, {"y", &y}});
}

static void check_add_inplace(const Backend& b, const Tensor& y, const Tensor& x) {
  OpCheck ck(b, "add_inplace");
  ck.arg("y", y).arg("x", x);
  check_elementwise(ck, y, {{"x", &x}});
}

static void check_dropout_forward(const Backend& b, const Tensor& x, double p, uint64_t,
                                  const Tensor& mask, const Tensor& y) {
  OpCheck ck(b, "dropout_forward");
  ck.arg("x", x).arg("mask", mask).arg("y", y);
  check_elementwise(ck, x, {{"mask", &mask}, {"y", &y}});
  if (!(p >= 0 && p < 1)) ck.fail("drop probability " + std::to_string(p) + " is outside [0, 1)");
}

static void check_dropout_backward(const Backend& b, const Tensor& dy, const Tensor& mask,
                                   const Tensor& dx) {
  OpCheck ck(b, "dropout_backward");
  ck.arg("dy", dy).arg("mask", mask).arg("dx", dx);
  check_elementwise(ck, dy, {{"mask", &mask}, {"dx", &dx}});
}

static void check_channel_absmax(const Backend& b, const Tensor& h, const Tensor& out) {
  OpCheck ck(b, "channel_absmax");
  ck.arg("h", h).arg("out", out);
  ck.on_device();
  ck.floating("h", h);
  check_channels_layout(ck, "h", h);
  ck.shape("out", out, {h.dim(0), h.dim(1)});
  ck.dtype("out", out, DType::F32);
}

static void check_optimizer_step(const Backend& b, const OptimStep& s, const Tensor& params,
                                 const Tensor& grads, const std::vector<Tensor>& state,
                                 const std::vector<UpdateSegment>& segments) {
  OpCheck ck(b, "optimizer_step");
  ck.arg("params", params).arg("grads", grads);
  for (const Tensor& t : state) ck.arg("state", t);
  ck.on_device();
  ck.floating("params", params);
  ck.same_dtype("grads", grads, params);
  if (grads.numel() != params.numel())
    ck.fail("grads hold " + std::to_string(grads.numel()) + " elements, params " +
            std::to_string(params.numel()));
  const int expected = optimizer_state_count(s.hyper);
  if (static_cast<int>(state.size()) != expected)
    ck.fail("the rule keeps " + std::to_string(expected) + " state buffers, got " +
            std::to_string(state.size()));
  for (std::size_t j = 0; j < state.size(); ++j) {
    ck.same_dtype("state", state[j], params);
    if (state[j].numel() != params.numel())
      ck.fail("state buffer " + std::to_string(j) + " holds " + std::to_string(state[j].numel()) +
              " elements, params " + std::to_string(params.numel()));
  }
  if (s.step < 1) ck.fail("step must count from 1, got " + std::to_string(s.step));
  // The segments tile [0, numel) in order, so every element is updated exactly once.
  int64_t next = 0;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const UpdateSegment& seg = segments[i];
    if (seg.offset != next || seg.length < 0)
      ck.fail("segment " + std::to_string(i) + " covers [" + std::to_string(seg.offset) + ", " +
              std::to_string(seg.offset + seg.length) + ") but should start at " +
              std::to_string(next));
    next += seg.length;
  }
  if (next != params.numel())
    ck.fail("segments cover " + std::to_string(next) + " elements, the parameters have " +
            std::to_string(params.numel()));
}

static void check_upload_batch(const Backend& b, const Tensor& images, const Tensor& labels,
                               const Tensor& x, const Tensor& y) {
  OpCheck ck(b, "upload_batch");
  ck.arg("images", images).arg("labels", labels).arg("x", x).arg("y", y);
  for (const auto& [name, t] : Named{{"images", &images}, {"labels", &labels}}) {
    if (!t->defined()) ck.fail(std::string(name) + " is not allocated");
    if (t->device() != Device::CPU)
      ck.fail(std::string(name) + " is on " + device_name(t->device()) + ", expected cpu");
  }
  for (const auto& [name, t] : Named{{"x", &x}, {"y", &y}}) {
    if (!t->defined()) ck.fail(std::string(name) + " is not allocated");
    if (t->device() != b.device())
      ck.fail(std::string(name) + " is on " + device_name(t->device()) + ", expected " +
              device_name(b.device()));
  }
  ck.dtype("images", images, DType::F32);
  ck.floating("x", x);
  ck.rank("images", images, 4);
  ck.shape("x", x, images.shape());
  ck.dtype("labels", labels, DType::I32);
  ck.shape("labels", labels, {images.dim(0)});
  ck.dtype("y", y, DType::I32);
  ck.shape("y", y, labels.shape());
}

#define ST_BACKEND_DEFINE_PUBLIC(R, name, params, args, key) \
  R Backend::name params {                                   \
    check_##name(*this, ST_BACKEND_EXPAND args);             \
    return do_##name args;                                   \
  }
ST_BACKEND_OPS(ST_BACKEND_DEFINE_PUBLIC)
#undef ST_BACKEND_DEFINE_PUBLIC

CudaProbe probe_cuda() {
#ifdef SPARSETRAIN_WITH_CUDA
  return cuda_probe();
#else
  return {0, "this build has no CUDA backend (configure with -DSPARSETRAIN_CUDA=ON and nvcc)"};
#endif
}

bool cuda_device_available() {
  return probe_cuda().devices > 0;
}

std::unique_ptr<Backend> make_backend(const std::string& device) {
  // The host threads also run the data loader and the statistics.
  flush_denormals_to_zero();
  if (device == "cpu") return make_cpu_backend();
  if (device == "cuda" || device == "auto") {
    const CudaProbe probe = probe_cuda();
    if (probe.devices > 0) {
#ifdef SPARSETRAIN_WITH_CUDA
      return make_cuda_backend();
#endif
    }
    if (device == "auto") return make_cpu_backend();
    throw DeviceError("--device cuda: " + probe.problem + "; use --device cpu");
  }
  throw DeviceError("--device '" + device + "': unknown device (expected cpu, cuda or auto)");
}

}  // namespace st
