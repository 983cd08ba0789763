// One training step: forward, softmax cross-entropy, backward, the non-finite and divergence
// checks, and the optimizer update. The trainer and `sparsetrain bench` both call train_step(),
// so the bench times what a training run computes.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "config/experiment.h"
#include "nn/model.h"
#include "optim/optimizer.h"

namespace st {

// What a step checks, resolved from the config (docs/config.md, training.divergence and
// training.on_nonfinite).
struct StepChecks {
  NonFinitePolicy on_nonfinite = NonFinitePolicy::Stop;
  // A finite batch loss above this means the run diverged (infinity: no bound).
  double max_loss = std::numeric_limits<double>::infinity();
  std::string max_loss_rule;  // how max_loss came about, for the message
  // Scan the gradients for non-finite values before the update. Free on the CPU (one pass over
  // memory the backward just wrote); on a device it downloads the gradients, so it is done there
  // only when a bad batch is to be skipped (with "stop", a non-finite gradient makes the next
  // loss non-finite, and the diagnosis then names the parameter).
  bool check_gradients = true;
};

// The checks a run with `config` makes, for a model of `classes` classes on `device`.
StepChecks step_checks(const TrainingConfig& config, int64_t classes, Device device);

// Thrown when a step finds the run diverged (a non-finite or exploding loss, a non-finite
// gradient). The message names the epoch, the batch and the layer or parameter; details() holds
// the same for summary.json. The CLI maps it to exit code 1 like any runtime failure.
class TrainingDiverged : public std::runtime_error {
 public:
  TrainingDiverged(const std::string& message, nlohmann::json details)
      : std::runtime_error(message), details_(std::move(details)) {}
  const nlohmann::json& details() const { return details_; }

 private:
  nlohmann::json details_;
};

struct StepInput {
  const Tensor& images;  // [N, C, H, W], on the CPU or the backend's device
  const Tensor& labels;  // I32 [N], on the CPU or the backend's device
  double lr = 0, decay_lr = 0;
  int epoch = 0;      // 1-based, for messages
  int64_t batch = 0;  // 1-based within the epoch, for messages
};

struct StepResult {
  bool skipped = false;  // on_nonfinite "skip_batch": the batch left the network unchanged
  std::string skip_reason;
  double loss = 0;  // mean over the batch
  int64_t correct = 0;
  int64_t images = 0;
};

// The buffers a step reuses: probabilities, logit gradients, the batch on the device and (for
// skip_batch) a copy of the BN buffers. Allocated when the batch size or the network changes,
// never per step.
class StepState {
 public:
  StepState(Backend& backend, StepChecks checks);
  const StepChecks& checks() const { return checks_; }

 private:
  friend StepResult train_step(StepState&, Model&, Optimizer&, const StepInput&,
                               const std::function<void(const Model&)>&);
  struct DeviceBatch {
    const Tensor& images;
    const Tensor& labels;
  };
  // The batch on the backend's device (upload_batch for a host batch bound for a device).
  DeviceBatch device_batch(const Tensor& images, const Tensor& labels);

  Backend& backend_;
  StepChecks checks_;
  Tensor probs_, dlogits_, images_, labels_, saved_buffers_;
};

// One step of `net` with `opt`. `after_forward` (optional) sees the network after a forward
// that passed the loss checks (the trainer records its train-pass activation maxima there; a
// batch skipped later for its gradient keeps those maxima, which come from a finite forward).
// Throws TrainingDiverged when the checks fail under "stop", or for a finite loss above the bound.
//
// Host reads: the loss and the correct count are returned by the backend ops as host values;
// on the CPU they cost nothing, on CUDA each is a wait for the device.
StepResult train_step(StepState& state, Model& net, Optimizer& opt, const StepInput& in,
                      const std::function<void(const Model&)>& after_forward = {});

// Index of the first element of a CPU F32 tensor that is NaN or infinite; -1 when all are finite.
int64_t first_nonfinite(const Tensor& t);

// The parameter whose values (or, with `gradients`, whose gradients) hold the first non-finite
// number in flat-buffer order; empty when all are finite. Downloads from a device.
std::string first_nonfinite_parameter(const Model& model, bool gradients);

}  // namespace st
