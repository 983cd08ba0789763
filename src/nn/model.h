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

struct ParamView {
  std::string name;  // state_dict key, e.g. "conv1.weight"
  ParamGroup group;
  int layer = 0;       // index into specs()
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
  // Resolves names and inputs, infers every shape, allocates the buffers and
  // initializes the parameters with init_parameters(0).
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

  // Output of layer i from the last forward, [N, ...]. Undefined for a BatchNorm
  // or convolution fused into its ReLU (see set_fuse_relu): that output is never stored.
  const Tensor& activation(int layer) const { return acts_[layer]; }

  // A BatchNorm whose only consumer is a ReLU runs with it as one fused op (one
  // pass over memory instead of two, forward and backward, train and eval). A
  // convolution whose only consumer is a ReLU (no BatchNorm between: folded
  // networks) applies it as it writes its output; the ReLU's backward runs
  // as before. Results are bit-identical to the separate ops. On by default;
  // off runs them apart.
  void set_fuse_relu(bool on);
  bool fuse_relu() const { return fuse_relu_; }
  // The ReLU fused into BatchNorm or convolution layer `layer`, or -1.
  int fused_relu(int layer) const { return fused_relu_[layer]; }
  const std::vector<ConvBNReLU>& conv_bn_relu_blocks() const { return blocks_; }

  void set_dropout_seed(uint64_t seed) { dropout_seed_ = seed; }
  uint64_t dropout_seed() const { return dropout_seed_; }
  // Train-mode forwards run so far; part of the dropout seed, so a resumed run
  // restores it to draw the same masks.
  uint64_t dropout_calls() const { return dropout_calls_; }
  void set_dropout_calls(uint64_t calls) { dropout_calls_ = calls; }

  // Graph queries: layer index by name (throws if unknown), the layers a layer
  // reads (-1 = model input), and the layers that read a layer's output.
  int layer_index(const std::string& name) const;
  const std::vector<int>& layer_inputs(int layer) const { return input_index_[layer]; }
  const std::vector<int>& layer_consumers(int layer) const { return consumer_list_[layer]; }

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

 private:
  // Per-layer tensors: views into the flat buffers and batch-sized work buffers.
  struct Slot {
    Tensor weight, bias, dweight, dbias;             // conv, linear; bn: gamma, beta
    Tensor running_mean, running_var, batches;       // bn (batches: num_batches_tracked as [1])
    Tensor save_mean, save_invstd;                   // bn, saved for the backward
    Tensor act_buf, argmax_buf, mask_buf, grad_buf;  // storage for up to the capacity
    Tensor act, argmax, mask, grad;                  // views for the current batch
  };
  // Backward bookkeeping of the gradient of one layer's output: nothing yet, an
  // alias of a tensor another layer passed through (add, flatten), or summed
  // into the layer's own grad_buf.
  enum class GradState { None, Pending, Owned };

  void resolve_names();
  void resolve_inputs();
  void infer_shapes();
  Shape infer_shape(int i) const;
  void check_outputs_used() const;
  void build_views();
  void find_blocks();
  void plan_fusion();
  // A ReLU whose backward its BatchNorm computes (a conv's fused ReLU keeps its own).
  bool relu_backward_fused(int i) const;
  void plan_gradients();
  void allocate_parameters();
  void ensure_forward_capacity(int64_t n);
  void ensure_backward_capacity(int64_t n);
  void set_batch_views(int64_t n);
  std::string label(int i) const;

  const Tensor& input_act(int i, int k) const;
  void forward_layer(int i, bool train);
  void backward_layer(int i);
  Tensor grad_of(int i) const;
  Tensor begin_grad_write(int j, int64_t n);
  void end_grad_write(int j);
  void pass_grad(int j, const Tensor& g);

  std::vector<LayerSpec> specs_;
  InputShape input_;
  int64_t classes_;
  Backend* backend_;
  DType dtype_;

  std::vector<std::vector<int>> input_index_;  // per layer; -1 = model input
  std::vector<Shape> out_shapes_;
  std::vector<int> consumers_;  // how many inputs read each output
  std::vector<std::vector<int>> consumer_list_;
  std::vector<bool> needs_grad_;  // the output's gradient reaches some parameter
  std::vector<bool> owns_grad_;   // the output's gradient may need its own buffer
  int64_t scratch_numel_ = 0;     // per image: largest gradient summed from several writers

  Tensor params_, grads_, buffers_;
  std::vector<ParamView> param_views_;
  std::vector<BufferView> buffer_views_;
  std::map<std::string, int> param_index_, buffer_index_, layer_index_;
  std::vector<ConvBNReLU> blocks_;
  bool fuse_relu_ = true;
  std::vector<int> fused_relu_;   // per layer: the ReLU fused into this BatchNorm or conv, or -1
  std::vector<int> relu_source_;  // per ReLU: the BatchNorm or conv that computes it, or -1
  std::vector<Slot> slots_;
  Tensor one_;  // [1] holding 1, added to num_batches_tracked

  int64_t batch_ = 0, forward_cap_ = 0, backward_cap_ = 0;
  bool last_forward_train_ = false;
  bool views_stale_ = true;  // buffers were reallocated since the views were made
  Tensor input_buf_, input_copy_, scratch_buf_;
  std::vector<Tensor> acts_;
  std::vector<GradState> grad_state_;
  std::vector<Tensor> pending_;
  uint64_t dropout_seed_ = 0;
  uint64_t dropout_calls_ = 0;
};

}  // namespace st
