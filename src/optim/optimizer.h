// The optimizer: hyper-parameters, regularization, the step counter and the flat
// state buffers (allocated on the parameters' device), driving one backend
// update per step over the model's flat parameter buffer.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "nn/model.h"
#include "optim/optim_types.h"
#include "tensor/tensor.h"

namespace st {

// Optimizer and regularization names ("adamw", "decoupled") are the config's: config/names.h.

// Throws std::invalid_argument naming the field for values PyTorch rejects
// (negative momentum, betas outside [0, 1), nesterov without momentum, ...).
void validate_hyper(const OptimHyper& h);

// Names of the state buffers, in slot order (see optim/update_rules.h), e.g.
// {"exp_avg", "exp_avg_sq"} for Adam.
std::vector<std::string> optimizer_state_names(const OptimHyper& h);

std::set<ParamGroup> all_param_groups();

// Segments over a flat buffer of `numel` elements tiled by `views`: lambda where
// the view's group is in `reg_groups` (and reg is not None), 0 elsewhere;
// neighbours with equal lambda are merged. Throws if the views leave a gap or overlap.
std::vector<UpdateSegment> build_update_segments(const std::vector<ParamView>& views, int64_t numel,
                                                 RegKind reg, double lambda,
                                                 const std::set<ParamGroup>& reg_groups);

class Optimizer {
 public:
  // Regularizes the parameters of `reg_groups` (PyTorch's default: all groups).
  Optimizer(const OptimHyper& hyper, RegKind reg, double lambda, std::set<ParamGroup> reg_groups,
            const Model& model);
  Optimizer(const OptimHyper& hyper, RegKind reg, double lambda, const Model& model)
      : Optimizer(hyper, reg, lambda, all_param_groups(), model) {}
  // A flat buffer of `numel` elements described by explicit segments (which
  // carry the per-segment lambda and must tile [0, numel)).
  Optimizer(const OptimHyper& hyper, RegKind reg, std::vector<UpdateSegment> segments,
            int64_t numel, DType dtype = DType::F32, Device device = Device::CPU);

  // One update of model.params() from model.grads() on the model's backend.
  // lr is this step's learning rate; decay_lr multiplies lambda for decoupled decay.
  void step(Model& model, double lr, double decay_lr);
  // The same on raw flat tensors. A null backend runs the CPU loop directly
  // (CPU tensors only).
  void step(Tensor& params, const Tensor& grads, double lr, double decay_lr, Backend* backend);

  int64_t steps() const { return steps_; }
  // For resuming from a checkpoint (with the state buffers restored alongside).
  void set_steps(int64_t steps);

  const OptimHyper& hyper() const { return hyper_; }
  RegKind reg() const { return reg_; }
  // The largest lambda of any segment (0 when nothing is regularized).
  double lambda() const;
  const std::vector<UpdateSegment>& segments() const { return segments_; }
  std::vector<Tensor>& state() { return state_; }
  const std::vector<Tensor>& state() const { return state_; }
  std::vector<std::string> state_names() const { return optimizer_state_names(hyper_); }

 private:
  void allocate_state(int64_t numel, DType dtype, Device device);
  OptimStep next_step(double lr, double decay_lr) const;

  OptimHyper hyper_;
  RegKind reg_;
  std::vector<UpdateSegment> segments_;
  std::vector<Tensor> state_;
  int64_t numel_ = 0;
  int64_t steps_ = 0;
};

}  // namespace st
