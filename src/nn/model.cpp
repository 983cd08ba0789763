#include "nn/model.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>
#include <set>
#include <stdexcept>

#include "nn/layer_kinds.h"
#include "tensor/random.h"

namespace st {

namespace {

bool valid_name_part(const std::string& part) {
  if (part.empty()) return false;
  for (char c : part)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

// A PyTorch module path: dot-separated parts of letters, digits and '_'.
bool valid_module_path(const std::string& name) {
  std::size_t begin = 0;
  while (true) {
    std::size_t dot = name.find('.', begin);
    if (!valid_name_part(name.substr(begin, dot - begin))) return false;
    if (dot == std::string::npos) return true;
    begin = dot + 1;
  }
}

Shape with_batch(int64_t n, const Shape& per_image) {
  Shape s{n};
  s.insert(s.end(), per_image.begin(), per_image.end());
  return s;
}

// The first n rows of a buffer allocated for a larger batch.
Tensor rows(const Tensor& buf, int64_t n) {
  if (!buf.defined() || buf.dim(0) < n) return Tensor();
  return buf.dim(0) == n ? buf : buf.slice0(0, n);
}

// Uniform in [-bound, bound) from 53 random bits, so the values do not depend
// on the standard library's distribution implementation.
double uniform_pm(std::mt19937_64& gen, double bound) {
  const double u = static_cast<double>(gen() >> 11) * 0x1.0p-53;
  return bound * (2.0 * u - 1.0);
}

Tensor filled(int64_t n, double value, DType dtype, Device device) {
  Tensor host = Tensor::from_vector(std::vector<double>(n, value), {n});
  return host.to(dtype).to(device);
}

}  // namespace

Model::Model(std::vector<LayerSpec> specs, InputShape input, int64_t classes, Backend& backend,
             DType dtype)
    : specs_(std::move(specs)),
      input_(input),
      classes_(classes),
      backend_(&backend),
      dtype_(dtype) {
  if (specs_.empty()) throw std::invalid_argument("model: the layer list is empty");
  if (dtype_ == DType::I32) throw std::invalid_argument("model: dtype must be f32 or f64");
  if (classes_ < 1)
    throw std::invalid_argument("model: number of classes must be positive, got " +
                                std::to_string(classes_));
  if (input_.channels < 1 || input_.height < 1 || input_.width < 1)
    throw std::invalid_argument("model: input shape " +
                                shape_str({input_.channels, input_.height, input_.width}) +
                                " must be positive");
  resolve_names();
  resolve_inputs();
  infer_shapes();
  check_outputs_used();
  find_blocks();
  plan_fusion();
  plan_gradients();
  build_views();
  allocate_parameters();
}

std::string Model::label(int i) const {
  const LayerSpec& s = specs_[i];
  std::string kind = layer_kind_name(s.kind);
  if (s.name.empty()) return "layer #" + std::to_string(i) + " (" + kind + ")";
  return "layer '" + s.name + "' (#" + std::to_string(i) + ", " + kind + ")";
}

// Checks the given names, then names the unnamed layers <kind><k>, where k is
// the layer's 1-based count among its kind, raised until the name is free.
void Model::resolve_names() {
  std::set<std::string> taken;
  for (int i = 0; i < static_cast<int>(specs_.size()); ++i) {
    const std::string& name = specs_[i].name;
    if (name.empty()) continue;
    if (!valid_module_path(name))
      throw std::invalid_argument(label(i) +
                                  ": invalid name (expected dot-separated parts of letters, "
                                  "digits and '_', like 'layer1.0.conv1')");
    if (name == "input")
      throw std::invalid_argument(label(i) + ": 'input' is reserved for the model input");
    auto [it, inserted] = layer_index_.emplace(name, i);
    if (!inserted)
      throw std::invalid_argument("duplicate layer name '" + name + "': " + label(it->second) +
                                  " and " + label(i));
    taken.insert(name);
  }
  std::map<LayerKind, int> kind_count;
  for (int i = 0; i < static_cast<int>(specs_.size()); ++i) {
    LayerSpec& s = specs_[i];
    int k = ++kind_count[s.kind];
    if (!s.name.empty()) continue;
    std::string candidate;
    do candidate = layer_kind_name(s.kind) + std::to_string(k++);
    while (taken.count(candidate) || candidate == "input");
    s.name = candidate;
    taken.insert(candidate);
    layer_index_.emplace(candidate, i);
  }
  // A module with a name cannot also be the parent of another in PyTorch's tree.
  for (int i = 0; i < static_cast<int>(specs_.size()); ++i) {
    const std::string& name = specs_[i].name;
    for (std::size_t dot = name.find('.'); dot != std::string::npos;
         dot = name.find('.', dot + 1)) {
      auto parent = layer_index_.find(name.substr(0, dot));
      if (parent != layer_index_.end())
        throw std::invalid_argument(label(i) + ": its name puts it inside " +
                                    label(parent->second) +
                                    ", which is a layer itself (a module path cannot be both)");
    }
  }
}

void Model::resolve_inputs() {
  const int n = static_cast<int>(specs_.size());
  input_index_.assign(n, {});
  consumers_.assign(n, 0);
  consumer_list_.assign(n, {});
  for (int i = 0; i < n; ++i) {
    const LayerSpec& s = specs_[i];
    const auto want = static_cast<std::size_t>(layer_kind_info(s.kind).inputs);
    if (s.inputs.empty() && want == 1) {
      input_index_[i] = {i - 1};
    } else {
      if (s.inputs.size() != want)
        throw std::invalid_argument(label(i) + ": takes " + std::to_string(want) +
                                    (want == 1 ? " input" : " inputs") + ", got " +
                                    std::to_string(s.inputs.size()));
      for (const std::string& in : s.inputs) {
        if (in == "input") {
          input_index_[i].push_back(-1);
          continue;
        }
        auto it = layer_index_.find(in);
        if (it == layer_index_.end())
          throw std::invalid_argument(label(i) + ": input '" + in +
                                      "' is neither 'input' nor the name of a layer");
        if (it->second >= i)
          throw std::invalid_argument(label(i) + ": input '" + in + "' is " + label(it->second) +
                                      ", which does not come before it (inputs must be earlier "
                                      "layers)");
        input_index_[i].push_back(it->second);
      }
    }
    for (int j : input_index_[i]) {
      if (j < 0) continue;
      ++consumers_[j];
      consumer_list_[j].push_back(i);
    }
  }
}

Shape Model::infer_shape(int i) const {
  std::vector<Shape> in;
  for (int j : input_index_[i])
    in.push_back(j < 0 ? Shape{input_.channels, input_.height, input_.width} : out_shapes_[j]);
  try {
    return layer_kind_info(specs_[i].kind).infer_shape(specs_[i], in, classes_);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(label(i) + ": " + e.what());
  }
}

void Model::infer_shapes() {
  out_shapes_.clear();
  for (int i = 0; i < static_cast<int>(specs_.size()); ++i) {
    out_shapes_.push_back(infer_shape(i));
    for (int64_t d : out_shapes_.back())
      if (d < 1)
        throw std::invalid_argument(label(i) + ": output shape " + shape_str(out_shapes_.back()) +
                                    " is empty");
  }
}

void Model::check_outputs_used() const {
  const int last = static_cast<int>(specs_.size()) - 1;
  for (int i = 0; i < last; ++i)
    if (consumers_[i] == 0)
      throw std::invalid_argument(label(i) +
                                  ": its output is never used (only the last layer, the logits, "
                                  "may have no consumer)");
  if (out_shapes_[last] != Shape{classes_})
    throw std::invalid_argument(
        "the last layer, " + label(last) + ", outputs " + shape_str(out_shapes_[last]) +
        " per image; the logits must be [classes] = " + shape_str({classes_}));
}

void Model::find_blocks() {
  blocks_.clear();
  auto sole_consumer = [&](int i, LayerKind kind) {
    if (consumer_list_[i].size() != 1) return -1;
    int c = consumer_list_[i][0];
    return specs_[c].kind == kind ? c : -1;
  };
  for (int i = 0; i < static_cast<int>(specs_.size()); ++i) {
    if (specs_[i].kind != LayerKind::Conv) continue;
    int bn = sole_consumer(i, LayerKind::BatchNorm);
    if (bn < 0) continue;
    int relu = sole_consumer(bn, LayerKind::ReLU);
    if (relu < 0) continue;
    blocks_.push_back({i, bn, relu, out_shapes_[i][0], specs_[i].name});
  }
}

// Pairs each BatchNorm and convolution with the ReLU that is its only consumer
// (when fusion is on).
void Model::plan_fusion() {
  const int n = static_cast<int>(specs_.size());
  fused_relu_.assign(n, -1);
  relu_source_.assign(n, -1);
  if (!fuse_relu_) return;
  for (int i = 0; i < n; ++i) {
    const LayerKind k = specs_[i].kind;
    if ((k != LayerKind::BatchNorm && k != LayerKind::Conv) || consumer_list_[i].size() != 1)
      continue;
    const int r = consumer_list_[i][0];
    if (specs_[r].kind != LayerKind::ReLU) continue;
    fused_relu_[i] = r;
    relu_source_[r] = i;
  }
}

bool Model::relu_backward_fused(int i) const {
  return relu_source_[i] >= 0 && specs_[relu_source_[i]].kind == LayerKind::BatchNorm;
}

void Model::set_fuse_relu(bool on) {
  if (on == fuse_relu_) return;
  fuse_relu_ = on;
  plan_fusion();
  forward_cap_ = 0;             // a fused layer has no output buffer: reallocate
  last_forward_train_ = false;  // the saved outputs no longer match the plan
  views_stale_ = true;
}

// Decides which layers need the gradient of their output (some parameter lies
// at or before them), which may need a buffer to sum it in, and the size of the
// scratch buffer for a second writer.
void Model::plan_gradients() {
  const int n = static_cast<int>(specs_.size());
  needs_grad_.assign(n, false);
  owns_grad_.assign(n, false);
  scratch_numel_ = 0;
  for (int i = 0; i < n; ++i) {
    bool needs = layer_kind_info(specs_[i].kind).params != ParamLayout::None;
    for (int j : input_index_[i]) needs = needs || (j >= 0 && needs_grad_[j]);
    needs_grad_[i] = needs;
  }
  for (int j = 0; j < n; ++j) {
    if (!needs_grad_[j] || j == n - 1) continue;
    const bool alias_only =
        consumers_[j] == 1 &&
        layer_kind_info(specs_[consumer_list_[j][0]].kind).gradient_passes_through;
    owns_grad_[j] = !alias_only;
    if (consumers_[j] > 1) scratch_numel_ = std::max(scratch_numel_, shape_numel(out_shapes_[j]));
  }
  // A batchnorm always computes dx; where nothing needs it, it goes to scratch.
  for (int i = 0; i < n; ++i) {
    if (specs_[i].kind != LayerKind::BatchNorm) continue;
    int j = input_index_[i][0];
    if (j < 0)
      scratch_numel_ = std::max(scratch_numel_, input_.channels * input_.height * input_.width);
    else if (!needs_grad_[j])
      scratch_numel_ = std::max(scratch_numel_, shape_numel(out_shapes_[j]));
  }
}

// Lays out parameters (weight before bias) and BN buffers in layer order, which
// is PyTorch's state_dict order for a module tree built in that order.
void Model::build_views() {
  param_views_.clear();
  buffer_views_.clear();
  int64_t poff = 0, boff = 0;
  auto add_param = [&](int layer, const std::string& suffix, ParamGroup g, Shape shape) {
    param_index_[specs_[layer].name + suffix] = static_cast<int>(param_views_.size());
    param_views_.push_back({specs_[layer].name + suffix, g, layer, poff, shape});
    poff += shape_numel(shape);
  };
  auto add_buffer = [&](int layer, const std::string& suffix, Shape shape) {
    buffer_index_[specs_[layer].name + suffix] = static_cast<int>(buffer_views_.size());
    buffer_views_.push_back({specs_[layer].name + suffix, layer, boff, shape});
    boff += shape_numel(shape);
  };
  for (int i = 0; i < static_cast<int>(specs_.size()); ++i) {
    const LayerSpec& s = specs_[i];
    int j = input_index_[i][0];
    Shape in = j < 0 ? Shape{input_.channels, input_.height, input_.width} : out_shapes_[j];
    switch (layer_kind_info(s.kind).params) {
      case ParamLayout::Conv:
        add_param(i, ".weight", ParamGroup::ConvWeight, {s.out, in[0], s.kernel, s.kernel});
        if (s.bias) add_param(i, ".bias", ParamGroup::ConvBias, {s.out});
        break;
      case ParamLayout::Linear:
        add_param(i, ".weight", ParamGroup::LinearWeight, {out_shapes_[i][0], shape_numel(in)});
        if (s.bias) add_param(i, ".bias", ParamGroup::LinearBias, {out_shapes_[i][0]});
        break;
      case ParamLayout::BatchNorm:
        add_param(i, ".weight", ParamGroup::BNWeight, {in[0]});
        add_param(i, ".bias", ParamGroup::BNBias, {in[0]});
        add_buffer(i, ".running_mean", {in[0]});
        add_buffer(i, ".running_var", {in[0]});
        add_buffer(i, ".num_batches_tracked", {});
        break;
      case ParamLayout::None:
        break;
    }
  }
}

void Model::allocate_parameters() {
  const Device dev = backend_->device();
  int64_t np = 0, nb = 0;
  for (const auto& v : param_views_) np += shape_numel(v.shape);
  for (const auto& v : buffer_views_) nb += shape_numel(v.shape);
  params_ = Tensor({np}, dtype_, dev);
  grads_ = Tensor({np}, dtype_, dev);
  buffers_ = Tensor({nb}, dtype_, dev);
  one_ = filled(1, 1.0, dtype_, dev);

  slots_.assign(specs_.size(), Slot{});
  for (const auto& v : param_views_) {
    Slot& s = slots_[v.layer];
    const bool is_bias = v.group == ParamGroup::ConvBias || v.group == ParamGroup::LinearBias ||
                         v.group == ParamGroup::BNBias;
    (is_bias ? s.bias : s.weight) = params_.view(v.offset, v.shape);
    (is_bias ? s.dbias : s.dweight) = grads_.view(v.offset, v.shape);
  }
  for (const auto& v : buffer_views_) {
    Slot& s = slots_[v.layer];
    if (v.shape.empty())
      s.batches = buffers_.view(v.offset, {1});
    else if (s.running_mean.defined())
      s.running_var = buffers_.view(v.offset, v.shape);
    else
      s.running_mean = buffers_.view(v.offset, v.shape);
  }
  for (int i = 0; i < static_cast<int>(specs_.size()); ++i) {
    if (specs_[i].kind != LayerKind::BatchNorm) continue;
    slots_[i].save_mean = Tensor({out_shapes_[i][0]}, dtype_, dev);
    slots_[i].save_invstd = Tensor({out_shapes_[i][0]}, dtype_, dev);
  }
  acts_.assign(specs_.size(), Tensor());
  grad_state_.assign(specs_.size(), GradState::None);
  pending_.assign(specs_.size(), Tensor());
  init_parameters(0);
}

void Model::ensure_forward_capacity(int64_t n) {
  if (n <= forward_cap_) return;
  const Device dev = backend_->device();
  input_buf_ = Tensor({n, input_.channels, input_.height, input_.width}, dtype_, dev);
  for (int i = 0; i < static_cast<int>(specs_.size()); ++i) {
    Slot& s = slots_[i];
    // Flatten views its input; a fused layer writes straight into its ReLU's output.
    if (specs_[i].kind != LayerKind::Flatten && fused_relu_[i] < 0)
      s.act_buf = Tensor(with_batch(n, out_shapes_[i]), dtype_, dev);
    else
      s.act_buf = Tensor();
    if (specs_[i].kind == LayerKind::MaxPool)
      s.argmax_buf = Tensor(with_batch(n, out_shapes_[i]), DType::I32, dev);
  }
  forward_cap_ = n;
  views_stale_ = true;
}

void Model::ensure_backward_capacity(int64_t n) {
  if (n <= backward_cap_) return;
  const Device dev = backend_->device();
  for (int i = 0; i < static_cast<int>(specs_.size()); ++i) {
    Slot& s = slots_[i];
    if (owns_grad_[i]) s.grad_buf = Tensor(with_batch(n, out_shapes_[i]), dtype_, dev);
    if (specs_[i].kind == LayerKind::Dropout)
      s.mask_buf = Tensor(with_batch(n, out_shapes_[i]), dtype_, dev);
  }
  if (scratch_numel_ > 0) scratch_buf_ = Tensor({n * scratch_numel_}, dtype_, dev);
  backward_cap_ = n;
  views_stale_ = true;
}

void Model::set_batch_views(int64_t n) {
  if (n == batch_ && !views_stale_) return;
  input_copy_ = rows(input_buf_, n);
  for (int i = 0; i < static_cast<int>(specs_.size()); ++i) {
    Slot& s = slots_[i];
    s.act = rows(s.act_buf, n);
    s.argmax = rows(s.argmax_buf, n);
    s.mask = rows(s.mask_buf, n);
    s.grad = rows(s.grad_buf, n);
    acts_[i] = s.act;
  }
  batch_ = n;
  views_stale_ = false;
}

int Model::layer_index(const std::string& name) const {
  auto it = layer_index_.find(name);
  if (it == layer_index_.end()) throw std::invalid_argument("model has no layer '" + name + "'");
  return it->second;
}

Tensor Model::tensor(const std::string& name) const {
  if (auto it = param_index_.find(name); it != param_index_.end()) {
    const ParamView& v = param_views_[it->second];
    return params_.view(v.offset, v.shape);
  }
  if (auto it = buffer_index_.find(name); it != buffer_index_.end()) {
    const BufferView& v = buffer_views_[it->second];
    return buffers_.view(v.offset, v.shape);
  }
  throw std::invalid_argument("model has no parameter or buffer '" + name + "'");
}

Tensor Model::grad(const std::string& name) const {
  auto it = param_index_.find(name);
  if (it == param_index_.end())
    throw std::invalid_argument("model has no parameter '" + name + "'");
  const ParamView& v = param_views_[it->second];
  return grads_.view(v.offset, v.shape);
}

// Counts the multiply-accumulates of convs and linear layers only; batchnorm,
// activations, pooling, adds and bias additions are left out.
int64_t Model::flops_per_image() const {
  int64_t macs = 0;
  for (const auto& v : param_views_) {
    const Shape& out = out_shapes_[v.layer];
    if (v.group == ParamGroup::ConvWeight)
      macs += shape_numel(v.shape) * out[1] * out[2];
    else if (v.group == ParamGroup::LinearWeight)
      macs += shape_numel(v.shape);
  }
  return 2 * macs;
}

void Model::init_parameters(uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<double> p(params_.numel());
  for (const auto& v : param_views_) {
    double* out = p.data() + v.offset;
    const int64_t count = shape_numel(v.shape);
    switch (v.group) {
      case ParamGroup::BNWeight:
        std::fill(out, out + count, 1.0);
        break;
      case ParamGroup::BNBias:
        std::fill(out, out + count, 0.0);
        break;
      case ParamGroup::ConvWeight:
      case ParamGroup::ConvBias:
      case ParamGroup::LinearWeight:
      case ParamGroup::LinearBias: {
        // kaiming_uniform_(a=sqrt(5)) reduces to U(+-1/sqrt(fan_in)); the bias
        // uses the fan_in of its layer's weight.
        const Tensor& w = slots_[v.layer].weight;
        const int64_t fan_in = w.numel() / w.dim(0);
        const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
        for (int64_t k = 0; k < count; ++k) out[k] = uniform_pm(gen, bound);
      }
    }
  }
  std::vector<double> b(buffers_.numel(), 0.0);
  for (const auto& v : buffer_views_)
    if (v.name.size() >= 12 && v.name.compare(v.name.size() - 12, 12, ".running_var") == 0)
      std::fill(b.begin() + v.offset, b.begin() + v.offset + shape_numel(v.shape), 1.0);
  params_.copy_from(Tensor::from_vector(p, {params_.numel()}).to(dtype_));
  buffers_.copy_from(Tensor::from_vector(b, {buffers_.numel()}).to(dtype_));
  grads_.zero();
}

const Tensor& Model::input_act(int i, int k) const {
  int j = input_index_[i][k];
  return j < 0 ? input_copy_ : acts_[j];
}

const Tensor& Model::forward(const Tensor& x, bool train) {
  const Shape want{input_.channels, input_.height, input_.width};
  if (x.ndim() != 4 || Shape(x.shape().begin() + 1, x.shape().end()) != want)
    throw std::invalid_argument("Model::forward: input shape " + shape_str(x.shape()) +
                                ", expected [N, " + std::to_string(input_.channels) + ", " +
                                std::to_string(input_.height) + ", " +
                                std::to_string(input_.width) + "]");
  if (x.dtype() != dtype_)
    throw std::invalid_argument(std::string("Model::forward: input dtype ") +
                                dtype_name(x.dtype()) + ", model dtype " + dtype_name(dtype_));
  const int64_t n = x.dim(0);
  if (n < 1) throw std::invalid_argument("Model::forward: empty batch");
  ensure_forward_capacity(n);
  if (train) ensure_backward_capacity(n);
  set_batch_views(n);
  input_copy_.copy_from(x);
  for (int i = 0; i < static_cast<int>(specs_.size()); ++i) forward_layer(i, train);
  if (train) ++dropout_calls_;
  last_forward_train_ = train;
  return acts_.back();
}

void Model::forward_layer(int i, bool train) {
  const LayerSpec& sp = specs_[i];
  Slot& s = slots_[i];
  const Tensor& x = input_act(i, 0);
  Backend& be = *backend_;
  switch (sp.kind) {
    case LayerKind::Conv: {
      const Tensor* bias = s.bias.defined() ? &s.bias : nullptr;
      const int r = fused_relu_[i];
      if (r >= 0)
        be.conv2d_relu_forward(x, s.weight, bias, window_geometry(sp), acts_[r]);
      else
        be.conv2d_forward(x, s.weight, bias, window_geometry(sp), acts_[i]);
      break;
    }
    case LayerKind::BatchNorm: {
      const int r = fused_relu_[i];
      Tensor& y = r >= 0 ? acts_[r] : acts_[i];
      if (train) {
        if (r >= 0)
          be.batchnorm_relu_forward_train(x, s.weight, s.bias, s.running_mean, s.running_var,
                                          sp.momentum, sp.eps, y, s.save_mean, s.save_invstd);
        else
          be.batchnorm_forward_train(x, s.weight, s.bias, s.running_mean, s.running_var,
                                     sp.momentum, sp.eps, y, s.save_mean, s.save_invstd);
        be.add_inplace(s.batches, one_);
      } else if (r >= 0) {
        be.batchnorm_relu_forward_eval(x, s.weight, s.bias, s.running_mean, s.running_var, sp.eps,
                                       y);
      } else {
        be.batchnorm_forward_eval(x, s.weight, s.bias, s.running_mean, s.running_var, sp.eps, y);
      }
      break;
    }
    case LayerKind::ReLU:
      if (relu_source_[i] < 0) be.relu_forward(x, acts_[i]);  // else computed with its input
      break;
    case LayerKind::MaxPool:
      be.maxpool2d_forward(x, window_geometry(sp), acts_[i], s.argmax);
      break;
    case LayerKind::AvgPool:
      be.avgpool2d_forward(x, window_geometry(sp), acts_[i]);
      break;
    case LayerKind::GlobalAvgPool:
      be.global_avgpool_forward(x, acts_[i]);
      break;
    case LayerKind::Linear:
      be.linear_forward(x.reshape({batch_, s.weight.dim(1)}), s.weight,
                        s.bias.defined() ? &s.bias : nullptr, acts_[i]);
      break;
    case LayerKind::Flatten:
      acts_[i] = x.reshape(with_batch(batch_, out_shapes_[i]));
      break;
    case LayerKind::Dropout:
      if (train) {
        // Distinct masks per layer and per forward, reproducible from the seed.
        const uint64_t seed = splitmix64(splitmix64(splitmix64(dropout_seed_) ^ dropout_calls_) ^
                                         static_cast<uint64_t>(i));
        acts_[i] = s.act;
        be.dropout_forward(x, sp.p, seed, s.mask, acts_[i]);
      } else {
        acts_[i] = x;  // identity in eval mode: share the input
      }
      break;
    case LayerKind::Add:
      be.add(x, input_act(i, 1), acts_[i]);
      break;
  }
}

void Model::backward(const Tensor& dlogits) {
  if (!last_forward_train_)
    throw std::logic_error("Model::backward: the last forward was not a train-mode forward");
  check_shape(dlogits, {batch_, classes_}, "Model::backward: dlogits");
  if (dlogits.dtype() != dtype_ || dlogits.device() != backend_->device())
    throw std::invalid_argument(std::string("Model::backward: dlogits is ") +
                                dtype_name(dlogits.dtype()) + " on " +
                                device_name(dlogits.device()) + ", the model " +
                                dtype_name(dtype_) + " on " + device_name(backend_->device()));
  std::fill(grad_state_.begin(), grad_state_.end(), GradState::None);
  const int last = static_cast<int>(specs_.size()) - 1;
  grad_state_[last] = GradState::Pending;
  pending_[last] = dlogits;
  for (int i = last; i >= 0; --i)
    if (needs_grad_[i]) backward_layer(i);
  for (auto& p : pending_) p = Tensor();
}

Tensor Model::grad_of(int i) const {
  switch (grad_state_[i]) {
    case GradState::Pending:
      return pending_[i];
    case GradState::Owned:
      return slots_[i].grad;
    case GradState::None:
      break;
  }
  throw std::logic_error("Model::backward: no gradient reached " + label(i));
}

// Where the next computed gradient for layer j's output goes: its own buffer
// when it is the first computed one, else the scratch buffer (summed in by
// end_grad_write). Undefined when nothing upstream needs it.
Tensor Model::begin_grad_write(int j, int64_t n) {
  if (j < 0 || !needs_grad_[j]) return Tensor();
  if (grad_state_[j] != GradState::Owned) return slots_[j].grad;
  return scratch_buf_.view(0, with_batch(n, out_shapes_[j]));
}

void Model::end_grad_write(int j) {
  if (j < 0 || !needs_grad_[j]) return;
  switch (grad_state_[j]) {
    case GradState::None:
      break;
    case GradState::Pending:
      backend_->add_inplace(slots_[j].grad, pending_[j]);
      pending_[j] = Tensor();
      break;
    case GradState::Owned:
      backend_->add_inplace(slots_[j].grad,
                            scratch_buf_.view(0, with_batch(batch_, out_shapes_[j])));
      break;
  }
  grad_state_[j] = GradState::Owned;
}

// A gradient handed on unchanged: aliased when it is the first, else summed.
void Model::pass_grad(int j, const Tensor& g) {
  if (j < 0 || !needs_grad_[j]) return;
  const Tensor shaped = g.reshape(with_batch(batch_, out_shapes_[j]));
  switch (grad_state_[j]) {
    case GradState::None:
      pending_[j] = shaped;
      grad_state_[j] = GradState::Pending;
      return;
    case GradState::Pending:
      backend_->add(pending_[j], shaped, slots_[j].grad);
      pending_[j] = Tensor();
      break;
    case GradState::Owned:
      backend_->add_inplace(slots_[j].grad, shaped);
      break;
  }
  grad_state_[j] = GradState::Owned;
}

void Model::backward_layer(int i) {
  const LayerSpec& sp = specs_[i];
  Slot& s = slots_[i];
  Backend& be = *backend_;
  if (relu_backward_fused(i)) return;  // its BatchNorm's fused backward takes this gradient
  // A BatchNorm's fused ReLU: its backward starts from the ReLU's output gradient.
  const int r = sp.kind == LayerKind::BatchNorm ? fused_relu_[i] : -1;
  const Tensor g = grad_of(r >= 0 ? r : i);
  const int j = input_index_[i][0];
  if (layer_kind_info(sp.kind).gradient_passes_through) {
    for (int in : input_index_[i]) pass_grad(in, g);
    return;
  }
  const Tensor& x = input_act(i, 0);
  const bool want_dx = j >= 0 && needs_grad_[j];
  Tensor dx = begin_grad_write(j, batch_);
  switch (sp.kind) {
    case LayerKind::Conv:
      be.conv2d_backward(x, s.weight, g, window_geometry(sp), want_dx ? &dx : nullptr, s.dweight,
                         s.bias.defined() ? &s.dbias : nullptr);
      break;
    case LayerKind::Linear: {
      Tensor dx2;
      if (want_dx) dx2 = dx.reshape({batch_, s.weight.dim(1)});
      be.linear_backward(x.reshape({batch_, s.weight.dim(1)}), s.weight, g,
                         want_dx ? &dx2 : nullptr, s.dweight,
                         s.bias.defined() ? &s.dbias : nullptr);
      break;
    }
    case LayerKind::BatchNorm: {
      Tensor sink = want_dx ? dx : scratch_buf_.view(0, x.shape());
      if (r >= 0)
        be.batchnorm_relu_backward(x, acts_[r], s.weight, s.save_mean, s.save_invstd, g, sink,
                                   s.dweight, s.dbias);
      else
        be.batchnorm_backward(x, s.weight, s.save_mean, s.save_invstd, g, sink, s.dweight, s.dbias);
      break;
    }
    case LayerKind::ReLU:
      if (want_dx) be.relu_backward(acts_[i], g, dx);
      break;
    case LayerKind::MaxPool:
      if (want_dx) be.maxpool2d_backward(g, s.argmax, dx);
      break;
    case LayerKind::AvgPool:
      if (want_dx) be.avgpool2d_backward(g, window_geometry(sp), dx);
      break;
    case LayerKind::GlobalAvgPool:
      if (want_dx) be.global_avgpool_backward(g, dx);
      break;
    case LayerKind::Dropout:
      if (want_dx) be.dropout_backward(g, s.mask, dx);
      break;
    case LayerKind::Flatten:
    case LayerKind::Add:
      break;  // gradient_passes_through: handled above
  }
  end_grad_write(j);
}

}  // namespace st
