// Plain descriptions of one optimizer step, shared by the CPU and CUDA backends.
#pragma once

#include <cstdint>
#include <string>

namespace st {

// The update rules. AdamW is the Adam rule with decoupled decay as its default
// regularization; it needs no rule of its own.
enum class UpdateRule { SGD, Adam, AdaGrad, RMSProp, AdaDelta, AdaMax };

// How the regularizer enters the step:
//  L2:        g <- g + lambda * theta before the rule (it passes through Adam's normalization);
//  Decoupled: theta <- theta * (1 - lr * lambda) before the rule, outside it (as AdamW).
enum class RegKind { None, L2, Decoupled };

struct OptimHyper {
  UpdateRule rule = UpdateRule::Adam;
  double lr = 1e-3;
  // SGD
  double momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
  // Adam, AdaMax
  double beta1 = 0.9, beta2 = 0.999;
  bool amsgrad = false;
  // Adam, AdaGrad, RMSProp, AdaDelta, AdaMax
  double eps = 1e-8;
  // AdaGrad
  double lr_decay = 0.0, initial_accumulator = 0.0;
  // RMSProp (also uses momentum)
  double alpha = 0.99;
  bool centered = false;
  // AdaDelta
  double rho = 0.9;
};

// A contiguous run of the flat parameter buffer and the regularization strength
// that applies to it (0 where the parameter group is exempt).
struct UpdateSegment {
  int64_t offset = 0;
  int64_t length = 0;
  float lambda = 0.0f;
};

struct OptimStep {
  OptimHyper hyper;
  RegKind reg = RegKind::None;
  double lr = 1e-3;        // this step's learning rate (after the schedule)
  double decay_lr = 1e-3;  // the lr that multiplies lambda for decoupled decay
  int64_t step = 1;        // 1-based count of steps taken, this one included
};

// Parameter groups, for choosing where regularization applies.
enum class ParamGroup { ConvWeight, ConvBias, LinearWeight, LinearBias, BNWeight, BNBias };
// "conv_weight", "conv_bias", "linear_weight", "linear_bias", "bn_weight", "bn_bias".
const char* param_group_name(ParamGroup g);

// How many flat state buffers (each the size of the parameters) a rule keeps.
int optimizer_state_count(const OptimHyper& h);

}  // namespace st
