#include "train/train_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

namespace st {

using nlohmann::json;

namespace {

// NaN and infinities as JSON strings (JSON has no such numbers), finite values as numbers.
json loss_json(double loss) {
  if (std::isfinite(loss)) return loss;
  return std::isnan(loss) ? "nan" : (loss > 0 ? "inf" : "-inf");
}

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string where_text(const StepInput& in) {
  return "epoch " + std::to_string(in.epoch) + ", batch " + std::to_string(in.batch);
}

bool has_nonfinite(const Tensor& t) {
  return t.defined() && first_nonfinite(t) >= 0;
}

// Where a non-finite loss comes from: a parameter, the input, or the first layer whose output
// is not finite (in the order the forward computes them).
json locate_nonfinite_forward(const Model& net, const Tensor& images) {
  const std::string param = first_nonfinite_parameter(net, false);
  if (!param.empty())
    return {{"parameter", param}, {"text", "parameter '" + param + "' holds non-finite values"}};
  if (has_nonfinite(images))
    return {{"layer", "input"}, {"text", "the input batch holds non-finite values"}};
  for (int i = 0; i < static_cast<int>(net.specs().size()); ++i) {
    if (!has_nonfinite(net.activation(i))) continue;
    const std::string& name = net.specs()[i].name;
    return {{"layer", name},
            {"text", "layer '" + name + "' is the first whose output is not finite"}};
  }
  return {{"layer", "loss"}, {"text", "every layer's output is finite; the loss overflowed"}};
}

[[noreturn]] void diverged(const StepInput& in, const std::string& reason, double loss,
                           const json& place, const std::string& what, const std::string& hint) {
  json details = {{"epoch", in.epoch}, {"batch", in.batch}, {"reason", reason}};
  details["loss"] = loss_json(loss);
  for (auto it = place.begin(); it != place.end(); ++it)
    if (it.key() != "text") details[it.key()] = it.value();
  std::string message = "training diverged at " + where_text(in) + ": " + what;
  if (place.contains("text")) message += "; " + place["text"].get<std::string>();
  message += hint;
  details["message"] = message;
  throw TrainingDiverged(message, details);
}

}  // namespace

StepChecks step_checks(const TrainingConfig& config, int64_t classes, Device device) {
  StepChecks c;
  c.on_nonfinite = config.on_nonfinite;
  const DivergenceConfig& d = config.divergence;
  if (d.factor > 0) {
    c.max_loss = d.factor * std::log(static_cast<double>(std::max<int64_t>(classes, 2)));
    c.max_loss_rule = "training.divergence.factor " + number_text(d.factor) + " x ln(" +
                      std::to_string(classes) + " classes)";
  }
  if (d.max_loss > 0 && d.max_loss < c.max_loss) {
    c.max_loss = d.max_loss;
    c.max_loss_rule = "training.divergence.max_loss";
  }
  c.check_gradients = device == Device::CPU || config.on_nonfinite == NonFinitePolicy::SkipBatch;
  return c;
}

int64_t first_nonfinite(const Tensor& t) {
  if (t.device() == Device::CPU && t.dtype() == DType::F32) {
    const float* p = t.data<float>();
    const int64_t n = t.numel();
    // Exponent bits all set: NaN or infinity. The OR over a chunk has no early exit, so it
    // vectorizes; the exact index is looked up only in a chunk that has one.
    constexpr int64_t kChunk = 4096;
    for (int64_t start = 0; start < n; start += kChunk) {
      const int64_t end = std::min(n, start + kChunk);
      uint32_t bad = 0;
      for (int64_t i = start; i < end; ++i) {
        uint32_t bits;
        std::memcpy(&bits, p + i, sizeof bits);
        bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
      }
      if (bad)
        for (int64_t i = start; i < end; ++i)
          if (!std::isfinite(p[i])) return i;
    }
    return -1;
  }
  const std::vector<double> v = t.to_vector_f64();
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) return static_cast<int64_t>(i);
  return -1;
}

std::string first_nonfinite_parameter(const Model& model, bool gradients) {
  Model& m = const_cast<Model&>(model);  // grads() has no const overload; nothing is written
  const Tensor& flat = gradients ? m.grads() : m.params();
  const Tensor host = flat.device() == Device::CPU ? flat : flat.to(Device::CPU);
  const int64_t at = first_nonfinite(host);
  if (at < 0) return "";
  for (const ParamView& v : model.param_views())
    if (at >= v.offset && at < v.offset + shape_numel(v.shape)) return v.name;
  return "(flat buffer element " + std::to_string(at) + ")";
}

StepState::StepState(Backend& backend, StepChecks checks)
    : backend_(backend), checks_(std::move(checks)) {}

StepState::DeviceBatch StepState::device_batch(const Tensor& images, const Tensor& labels) {
  const Device dev = backend_.device();
  if (dev != Device::CPU && images.device() == Device::CPU && labels.device() == Device::CPU) {
    // A host batch bound for a device: one asynchronous upload of both (pinned staging on CUDA)
    // into buffers reused across steps, so the step neither allocates nor waits for the copy.
    if (images_.shape() != images.shape()) images_ = Tensor(images.shape(), DType::F32, dev);
    if (labels_.shape() != labels.shape()) labels_ = Tensor(labels.shape(), DType::I32, dev);
    backend_.upload_batch(images, labels, images_, labels_);
    return {images_, labels_};
  }
  // On the CPU the model copies its input anyway; a batch already on the device stays there.
  if (labels.device() == dev) return {images, labels};
  if (labels_.shape() != labels.shape()) labels_ = Tensor(labels.shape(), labels.dtype(), dev);
  labels_.copy_from(labels);
  return {images, labels_};
}

StepResult train_step(StepState& state, Model& net, Optimizer& opt, const StepInput& in,
                      const std::function<void(const Model&)>& after_forward) {
  Backend& be = state.backend_;
  const StepChecks& checks = state.checks_;
  const bool skip_bad = checks.on_nonfinite == NonFinitePolicy::SkipBatch;
  // A skipped batch must not leave its BN running statistics behind either.
  if (skip_bad) {
    if (state.saved_buffers_.shape() != net.buffers().shape())
      state.saved_buffers_ = Tensor(net.buffers().shape(), net.buffers().dtype(), be.device());
    state.saved_buffers_.copy_from(net.buffers());
  }
  StepResult r;
  r.images = in.images.dim(0);
  const auto skip = [&](std::string reason) {
    net.buffers().copy_from(state.saved_buffers_);
    r.skipped = true;
    r.skip_reason = std::move(reason);
    return r;
  };

  const StepState::DeviceBatch batch = state.device_batch(in.images, in.labels);
  const Tensor& labels = batch.labels;
  const Tensor& logits = net.forward(batch.images, /*train=*/true);
  if (state.probs_.shape() != logits.shape()) {
    state.probs_ = Tensor(logits.shape(), logits.dtype(), logits.device());
    state.dlogits_ = Tensor(logits.shape(), logits.dtype(), logits.device());
  }
  r.loss = be.softmax_xent_forward(logits, labels, state.probs_);
  if (!std::isfinite(r.loss)) {
    if (skip_bad) return skip("non-finite loss at " + where_text(in));
    diverged(in, "nonfinite_loss", r.loss, locate_nonfinite_forward(net, in.images),
             "the loss is " + number_text(r.loss), " (try a lower optimizer.lr)");
  }
  if (r.loss > checks.max_loss)
    diverged(in, "loss_above_bound", r.loss, json::object(),
             "the loss " + number_text(r.loss) + " exceeds " + number_text(checks.max_loss) + " (" +
                 checks.max_loss_rule + ")",
             "; try a lower optimizer.lr, or relax training.divergence");
  r.correct = be.count_correct(logits, labels);
  if (after_forward) after_forward(net);
  be.softmax_xent_backward(state.probs_, labels, state.dlogits_);
  net.backward(state.dlogits_);
  if (checks.check_gradients) {
    const std::string param = first_nonfinite_parameter(net, true);
    if (!param.empty()) {
      if (skip_bad) return skip("non-finite gradient of '" + param + "' at " + where_text(in));
      diverged(in, "nonfinite_gradient", r.loss, {{"parameter", param}},
               "the gradient of parameter '" + param + "' is not finite (the loss is " +
                   number_text(r.loss) + ")",
               " (try a lower optimizer.lr)");
    }
  }
  opt.step(net, in.lr, in.decay_lr);
  return r;
}

}  // namespace st
