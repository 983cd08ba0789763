// Model: a layer list bound to a backend, with parameters, gradients and BN
// buffers in flat tensors (one write to checkpoint, one kernel to update) and
// named views into them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "nn/layer_spec.h"

namespace st {

struct InputShape {
  int64_t channels = 1, height = 28, width = 28;
};

// Parameter groups, for choosing where regularization applies.
enum class ParamGroup { ConvWeight, ConvBias, LinearWeight, LinearBias, BNWeight, BNBias };
const char* param_group_name(ParamGroup g);

struct ParamView {
  std::string name;  // state_dict key, e.g. "conv1.weight"
  ParamGroup group;
  int layer = 0;     // index into specs()
  int64_t offset = 0;  // in elements, into params()/grads()
  Shape shape;
};

// BN running_mean, running_var and num_batches_tracked (stored as a float count,
// exported as int64).
struct BufferView {
  std::string name;
  int layer = 0;
  int64_t offset = 0;  // into buffers()
  Shape shape;
};

// A conv -> BatchNorm -> ReLU chain: the unit whose filters can die.
struct ConvBNReLU {
  int conv = 0, bn = 0, relu = 0;  // layer indices
  int64_t channels = 0;
  std::string name;  // the conv's name, used in statistics output
};

class Model {
 public:
  // Resolves names and inputs, infers every shape, and allocates the buffers.
  // Throws std::invalid_argument naming the layer and the shapes on any mismatch.
  Model(std::vector<LayerSpec> specs, InputShape input, int64_t classes, Backend& backend,
        DType dtype = DType::F32);

  const std::vector<LayerSpec>& specs() const { return specs_; }
  InputShape input_shape() const { return input_; }
  int64_t classes() const { return classes_; }
  Backend& backend() const { return *backend_; }
  DType dtype() const { return dtype_; }

  // Per-image output shape of layer i (without the batch dimension).
  const Shape& output_shape(int layer) const { return out_shapes_[layer]; }

  Tensor& params() { return params_; }
  Tensor& grads() { return grads_; }
  Tensor& buffers() { return buffers_; }
  const Tensor& params() const { return params_; }
  const Tensor& buffers() const { return buffers_; }
  const std::vector<ParamView>& param_views() const { return param_views_; }
  const std::vector<BufferView>& buffer_views() const { return buffer_views_; }
  // View by state_dict key into params() or buffers(); throws if unknown.
  Tensor tensor(const std::string& name) const;
  Tensor grad(const std::string& name) const;
  int64_t num_params() const { return params_.numel(); }
  // Multiply-accumulates of one forward pass for one image, times 2.
  int64_t flops_per_image() const;

  // PyTorch's default initialization (uniform +-1/sqrt(fan_in) for conv and
  // linear weights and biases; BN gamma 1, beta 0), from a seeded generator.
  void init_parameters(uint64_t seed);

  // x [N,C,H,W] -> logits [N, classes]. In train mode BN uses batch statistics
  // and updates the running ones, and dropout is active with masks drawn from
  // (dropout_seed, call counter).
  const Tensor& forward(const Tensor& x, bool train);
  // Overwrites grads() with d(loss)/d(params) given d(loss)/d(logits) of the last
  // train-mode forward.
  void backward(const Tensor& dlogits);

  // Output of layer i from the last forward, [N, ...].
  const Tensor& activation(int layer) const { return acts_[layer]; }
  const std::vector<ConvBNReLU>& conv_bn_relu_blocks() const { return blocks_; }

  void set_dropout_seed(uint64_t seed) { dropout_seed_ = seed; }

 private:
  struct Slot;
  void resolve_graph();
  void infer_shapes();
  void allocate();
  void ensure_batch(int64_t n);

  std::vector<LayerSpec> specs_;
  InputShape input_;
  int64_t classes_;
  Backend* backend_;
  DType dtype_;

  std::vector<std::vector<int>> input_index_;  // per layer; -1 = model input
  std::vector<Shape> out_shapes_;
  std::vector<int> consumers_;  // how many layers read each output

  Tensor params_, grads_, buffers_;
  std::vector<ParamView> param_views_;
  std::vector<BufferView> buffer_views_;
  std::map<std::string, int> param_index_, buffer_index_;
  std::vector<ConvBNReLU> blocks_;

  // Per-layer activations, gradients and saved state for the backward.
  int64_t batch_ = 0;
  Tensor input_copy_;
  std::vector<Tensor> acts_, dacts_, saved_a_, saved_b_;
  uint64_t dropout_seed_ = 0;
  uint64_t dropout_calls_ = 0;
};

}  // namespace st
