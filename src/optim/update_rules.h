// Per-element optimizer updates with PyTorch 1.13's exact semantics (the
// single-tensor code paths of torch/optim/*.py). Shared verbatim by the CPU loop
// and the CUDA kernel: the host turns an OptimStep into RuleScalars once per step,
// then every element goes through apply_update().
//
// State slots (each a flat buffer shaped like the parameters), in this order:
//   SGD:      momentum_buffer (only when momentum != 0)
//   Adam:     exp_avg, exp_avg_sq, max_exp_avg_sq (only with amsgrad)
//   AdaGrad:  sum (starts at initial_accumulator)
//   RMSProp:  square_avg, grad_avg (only when centered), momentum_buffer (only when momentum > 0)
//   AdaDelta: square_avg, acc_delta
//   AdaMax:   exp_avg, exp_inf
#pragma once

#include <math.h>

#include <cmath>

#include "optim/optim_types.h"
#include "tensor/hd.h"

namespace st {

// Overloads that resolve the same way in host code and in CUDA device code.
ST_HD inline float rule_sqrt(float x) {
  return ::sqrtf(x);
}
ST_HD inline double rule_sqrt(double x) {
  return ::sqrt(x);
}
ST_HD inline float rule_abs(float x) {
  return ::fabsf(x);
}
ST_HD inline double rule_abs(double x) {
  return ::fabs(x);
}

// Scalars of one step, computed on the host in double precision.
struct RuleScalars {
  UpdateRule rule = UpdateRule::SGD;
  RegKind reg = RegKind::None;
  double lr = 0.0;
  double decay_lr = 0.0;
  double momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
  bool first_step = true;  // SGD: the momentum buffer starts as the gradient
  double beta1 = 0.9, beta2 = 0.999;
  bool amsgrad = false;
  double eps = 1e-8;
  double step_size = 0.0;              // Adam, AdaMax: lr / (1 - beta1^step); AdaGrad: decayed lr
  double bias_correction2_sqrt = 1.0;  // Adam: sqrt(1 - beta2^step)
  double alpha = 0.99;
  bool centered = false;
  double rho = 0.9;
};

inline RuleScalars make_rule_scalars(const OptimStep& s) {
  const OptimHyper& h = s.hyper;
  RuleScalars k;
  k.rule = h.rule;
  k.reg = s.reg;
  k.lr = s.lr;
  k.decay_lr = s.decay_lr;
  k.momentum = h.momentum;
  k.dampening = h.dampening;
  k.nesterov = h.nesterov;
  k.first_step = s.step <= 1;
  k.beta1 = h.beta1;
  k.beta2 = h.beta2;
  k.amsgrad = h.amsgrad;
  k.eps = h.eps;
  k.alpha = h.alpha;
  k.centered = h.centered;
  k.rho = h.rho;
  const double step = static_cast<double>(s.step);
  switch (h.rule) {
    case UpdateRule::Adam:
      k.step_size = s.lr / (1.0 - std::pow(h.beta1, step));
      k.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(h.beta2, step));
      break;
    case UpdateRule::AdaMax:
      k.step_size = s.lr / (1.0 - std::pow(h.beta1, step));
      break;
    case UpdateRule::AdaGrad:
      k.step_size = s.lr / (1.0 + (step - 1.0) * h.lr_decay);
      break;
    default:
      break;
  }
  return k;
}

// The gradient after L2 regularization (lambda is this element's strength).
template <typename T>
ST_HD inline T regularized_grad(const RuleScalars& k, T lambda, T p, T g) {
  return k.reg == RegKind::L2 ? g + lambda * p : g;
}

// The factor decoupled decay multiplies the parameter by, before the rule.
ST_HD inline double decoupled_factor(const RuleScalars& k, double lambda) {
  return k.reg == RegKind::Decoupled ? 1.0 - k.decay_lr * lambda : 1.0;
}

template <typename T>
ST_HD inline void sgd_update(const RuleScalars& k, T& p, T g, T& buf) {
  T d = g;
  if (k.momentum != 0.0) {
    if (k.first_step) {
      buf = g;
    } else {
      buf = buf * T(k.momentum) + g * T(1.0 - k.dampening);
    }
    d = k.nesterov ? g + buf * T(k.momentum) : buf;
  }
  p -= T(k.lr) * d;
}

template <typename T>
ST_HD inline void adam_update(const RuleScalars& k, T& p, T g, T& exp_avg, T& exp_avg_sq,
                              T& max_exp_avg_sq) {
  exp_avg = exp_avg * T(k.beta1) + g * T(1.0 - k.beta1);
  exp_avg_sq = exp_avg_sq * T(k.beta2) + g * g * T(1.0 - k.beta2);
  T second = exp_avg_sq;
  if (k.amsgrad) {
    max_exp_avg_sq = max_exp_avg_sq > exp_avg_sq ? max_exp_avg_sq : exp_avg_sq;
    second = max_exp_avg_sq;
  }
  const T denom = rule_sqrt(second) / T(k.bias_correction2_sqrt) + T(k.eps);
  p -= T(k.step_size) * (exp_avg / denom);
}

template <typename T>
ST_HD inline void adagrad_update(const RuleScalars& k, T& p, T g, T& sum) {
  sum += g * g;
  const T std_dev = rule_sqrt(sum) + T(k.eps);
  p -= T(k.step_size) * (g / std_dev);
}

template <typename T>
ST_HD inline void rmsprop_update(const RuleScalars& k, T& p, T g, T& square_avg, T& grad_avg,
                                 T& buf) {
  square_avg = square_avg * T(k.alpha) + g * g * T(1.0 - k.alpha);
  T avg;
  if (k.centered) {
    grad_avg = grad_avg * T(k.alpha) + g * T(1.0 - k.alpha);
    avg = rule_sqrt(square_avg - grad_avg * grad_avg);
  } else {
    avg = rule_sqrt(square_avg);
  }
  avg += T(k.eps);
  if (k.momentum > 0.0) {
    buf = buf * T(k.momentum) + g / avg;
    p -= T(k.lr) * buf;
  } else {
    p -= T(k.lr) * (g / avg);
  }
}

template <typename T>
ST_HD inline void adadelta_update(const RuleScalars& k, T& p, T g, T& square_avg, T& acc_delta) {
  square_avg = square_avg * T(k.rho) + g * g * T(1.0 - k.rho);
  const T std_dev = rule_sqrt(square_avg + T(k.eps));
  const T delta = rule_sqrt(acc_delta + T(k.eps)) / std_dev * g;
  acc_delta = acc_delta * T(k.rho) + delta * delta * T(1.0 - k.rho);
  p -= T(k.lr) * delta;
}

template <typename T>
ST_HD inline void adamax_update(const RuleScalars& k, T& p, T g, T& exp_avg, T& exp_inf) {
  exp_avg = exp_avg * T(k.beta1) + g * T(1.0 - k.beta1);
  const T decayed = exp_inf * T(k.beta2);
  const T bound = rule_abs(g) + T(k.eps);
  exp_inf = decayed > bound ? decayed : bound;
  p -= T(k.step_size) * (exp_avg / exp_inf);
}

// One element: regularization, then the rule. `l2_lambda` is the segment's
// lambda; `decay_factor` is decoupled_factor() of the segment (1 when not
// decoupled). s0..s2 are the element's state slots in the order listed at the top;
// slots the rule does not use may be dummies.
template <typename T>
ST_HD inline void apply_update(const RuleScalars& k, T l2_lambda, T decay_factor, T& p, T grad,
                               T& s0, T& s1, T& s2) {
  if (k.reg == RegKind::Decoupled) p *= decay_factor;
  const T g = regularized_grad(k, l2_lambda, p, grad);
  switch (k.rule) {
    case UpdateRule::SGD:
      sgd_update(k, p, g, s0);
      break;
    case UpdateRule::Adam:
      adam_update(k, p, g, s0, s1, s2);
      break;
    case UpdateRule::AdaGrad:
      adagrad_update(k, p, g, s0);
      break;
    case UpdateRule::RMSProp:
      rmsprop_update(k, p, g, s0, s1, k.centered ? s2 : s1);
      break;
    case UpdateRule::AdaDelta:
      adadelta_update(k, p, g, s0, s1);
      break;
    case UpdateRule::AdaMax:
      adamax_update(k, p, g, s0, s1);
      break;
  }
}

}  // namespace st
