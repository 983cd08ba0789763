#include "optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "backend/cpu/cpu_backend.h"

namespace st {
namespace {

void require(bool ok, const std::string& field, double value, const std::string& rule) {
  if (!ok)
    throw std::invalid_argument("optimizer: invalid " + field + " = " + std::to_string(value) +
                                " (" + rule + ")");
}

// A fresh buffer of `numel` elements filled with `value`, on `device`.
Tensor filled(int64_t numel, DType dtype, Device device, double value) {
  Tensor host({numel}, dtype, Device::CPU);
  if (value != 0.0) {
    if (dtype == DType::F32) std::fill_n(host.data<float>(), numel, static_cast<float>(value));
    if (dtype == DType::F64) std::fill_n(host.data<double>(), numel, value);
  }
  return device == Device::CPU ? host : host.to(device);
}

void check_segments_tile(const std::vector<UpdateSegment>& segments, int64_t numel) {
  int64_t next = 0;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].offset != next || segments[i].length < 0 || !(segments[i].lambda >= 0.0f))
      throw std::invalid_argument("optimizer: segment " + std::to_string(i) + " (offset " +
                                  std::to_string(segments[i].offset) + ", length " +
                                  std::to_string(segments[i].length) + ", lambda " +
                                  std::to_string(segments[i].lambda) +
                                  ") does not continue the tiling at element " +
                                  std::to_string(next) + " with lambda >= 0");
    next += segments[i].length;
  }
  if (next != numel)
    throw std::invalid_argument("optimizer: segments cover " + std::to_string(next) +
                                " elements, the buffer has " + std::to_string(numel));
}

}  // namespace

int optimizer_state_count(const OptimHyper& h) {
  switch (h.rule) {
    case UpdateRule::SGD:
      return h.momentum != 0.0 ? 1 : 0;
    case UpdateRule::Adam:
      return h.amsgrad ? 3 : 2;
    case UpdateRule::AdaGrad:
      return 1;
    case UpdateRule::RMSProp:
      return 1 + (h.centered ? 1 : 0) + (h.momentum > 0.0 ? 1 : 0);
    case UpdateRule::AdaDelta:
      return 2;
    case UpdateRule::AdaMax:
      return 2;
  }
  return 0;
}

std::vector<std::string> optimizer_state_names(const OptimHyper& h) {
  switch (h.rule) {
    case UpdateRule::SGD:
      if (h.momentum != 0.0) return {"momentum_buffer"};
      return {};
    case UpdateRule::Adam:
      if (h.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
      return {"exp_avg", "exp_avg_sq"};
    case UpdateRule::AdaGrad:
      return {"sum"};
    case UpdateRule::RMSProp: {
      std::vector<std::string> names = {"square_avg"};
      if (h.centered) names.push_back("grad_avg");
      if (h.momentum > 0.0) names.push_back("momentum_buffer");
      return names;
    }
    case UpdateRule::AdaDelta:
      return {"square_avg", "acc_delta"};
    case UpdateRule::AdaMax:
      return {"exp_avg", "exp_inf"};
  }
  return {};
}

void validate_hyper(const OptimHyper& h) {
  require(h.lr >= 0.0, "lr", h.lr, "must be >= 0");
  require(h.momentum >= 0.0, "momentum", h.momentum, "must be >= 0");
  require(h.eps >= 0.0, "eps", h.eps, "must be >= 0");
  require(h.beta1 >= 0.0 && h.beta1 < 1.0, "beta1", h.beta1, "must be in [0, 1)");
  require(h.beta2 >= 0.0 && h.beta2 < 1.0, "beta2", h.beta2, "must be in [0, 1)");
  require(h.lr_decay >= 0.0, "lr_decay", h.lr_decay, "must be >= 0");
  require(h.initial_accumulator >= 0.0, "initial_accumulator", h.initial_accumulator,
          "must be >= 0");
  require(h.alpha >= 0.0, "alpha", h.alpha, "must be >= 0");
  require(h.rho >= 0.0 && h.rho <= 1.0, "rho", h.rho, "must be in [0, 1]");
  if (h.rule == UpdateRule::SGD && h.nesterov)
    require(h.momentum > 0.0 && h.dampening == 0.0, "dampening", h.dampening,
            "nesterov needs momentum > 0 and dampening 0");
}

std::set<ParamGroup> all_param_groups() {
  return {ParamGroup::ConvWeight, ParamGroup::ConvBias, ParamGroup::LinearWeight,
          ParamGroup::LinearBias, ParamGroup::BNWeight, ParamGroup::BNBias};
}

std::vector<UpdateSegment> build_update_segments(const std::vector<ParamView>& views, int64_t numel,
                                                 RegKind reg, double lambda,
                                                 const std::set<ParamGroup>& reg_groups) {
  if (!(lambda >= 0.0) || !std::isfinite(lambda))
    throw std::invalid_argument("optimizer: regularization lambda must be finite and >= 0, got " +
                                std::to_string(lambda));
  std::vector<const ParamView*> sorted;
  for (const ParamView& v : views) sorted.push_back(&v);
  std::sort(sorted.begin(), sorted.end(),
            [](const ParamView* a, const ParamView* b) { return a->offset < b->offset; });
  std::vector<UpdateSegment> segments;
  int64_t next = 0;
  for (const ParamView* v : sorted) {
    if (v->offset != next)
      throw std::invalid_argument("optimizer: parameter '" + v->name + "' starts at element " +
                                  std::to_string(v->offset) + ", expected " + std::to_string(next) +
                                  " (views must tile the buffer)");
    const int64_t length = shape_numel(v->shape);
    const bool regularized = reg != RegKind::None && reg_groups.count(v->group) > 0;
    const float l = regularized ? static_cast<float>(lambda) : 0.0f;
    if (!segments.empty() && segments.back().lambda == l) {
      segments.back().length += length;
    } else {
      segments.push_back({next, length, l});
    }
    next += length;
  }
  if (next != numel)
    throw std::invalid_argument("optimizer: parameter views cover " + std::to_string(next) +
                                " elements, the buffer has " + std::to_string(numel));
  return segments;
}

Optimizer::Optimizer(const OptimHyper& hyper, RegKind reg, double lambda,
                     std::set<ParamGroup> reg_groups, const Model& model)
    : Optimizer(hyper, reg,
                build_update_segments(model.param_views(), model.params().numel(), reg, lambda,
                                      reg_groups),
                model.params().numel(), model.params().dtype(), model.params().device()) {}

Optimizer::Optimizer(const OptimHyper& hyper, RegKind reg, std::vector<UpdateSegment> segments,
                     int64_t numel, DType dtype, Device device)
    : hyper_(hyper), reg_(reg), segments_(std::move(segments)), numel_(numel) {
  validate_hyper(hyper_);
  if (dtype != DType::F32 && dtype != DType::F64)
    throw std::invalid_argument(std::string("optimizer: parameters must be f32 or f64, got ") +
                                dtype_name(dtype));
  check_segments_tile(segments_, numel_);
  allocate_state(numel, dtype, device);
}

void Optimizer::allocate_state(int64_t numel, DType dtype, Device device) {
  const std::vector<std::string> names = optimizer_state_names(hyper_);
  state_.clear();
  for (std::size_t j = 0; j < names.size(); ++j) {
    // torch.optim.Adagrad starts its sum at initial_accumulator_value; all else at 0.
    const bool adagrad_sum = hyper_.rule == UpdateRule::AdaGrad && j == 0;
    state_.push_back(filled(numel, dtype, device, adagrad_sum ? hyper_.initial_accumulator : 0.0));
  }
}

double Optimizer::lambda() const {
  float most = 0.0f;
  for (const UpdateSegment& seg : segments_) most = std::max(most, seg.lambda);
  return most;
}

void Optimizer::set_steps(int64_t steps) {
  if (steps < 0)
    throw std::invalid_argument("optimizer: step count must be >= 0, got " + std::to_string(steps));
  steps_ = steps;
}

OptimStep Optimizer::next_step(double lr, double decay_lr) const {
  if (!(lr >= 0.0) || !std::isfinite(lr))
    throw std::invalid_argument("optimizer: learning rate must be finite and >= 0, got " +
                                std::to_string(lr));
  OptimStep s;
  s.hyper = hyper_;
  s.hyper.lr = lr;
  s.reg = reg_;
  s.lr = lr;
  s.decay_lr = decay_lr;
  s.step = steps_ + 1;
  return s;
}

void Optimizer::step(Model& model, double lr, double decay_lr) {
  step(model.params(), model.grads(), lr, decay_lr, &model.backend());
}

void Optimizer::step(Tensor& params, const Tensor& grads, double lr, double decay_lr,
                     Backend* backend) {
  if (params.numel() != numel_)
    throw std::invalid_argument("optimizer: built for " + std::to_string(numel_) +
                                " parameters, stepped with " + std::to_string(params.numel()));
  const OptimStep s = next_step(lr, decay_lr);
  if (backend) {
    backend->optimizer_step(s, params, grads, state_, segments_);
  } else {
    cpu_optimizer_step(s, params, grads, state_, segments_);
  }
  ++steps_;
}

}  // namespace st
