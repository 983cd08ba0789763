#include "nn/layer_kinds.h"

#include <optional>
#include <stdexcept>

#include "config/suggest.h"

namespace st {

namespace {

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument(what);
}

void need_image(const Shape& x, const char* what) {
  if (x.size() != 3) bad(std::string(what) + " needs a [C, H, W] input, got " + shape_str(x));
}

void check_window(const LayerSpec& s, const Shape& x, bool is_pool) {
  need_image(x, is_pool ? "pooling" : "a conv");
  if (s.kernel < 1 || s.pad < 0 || s.stride < (is_pool ? 0 : 1))
    bad("kernel " + std::to_string(s.kernel) + ", stride " + std::to_string(s.stride) + ", pad " +
        std::to_string(s.pad) +
        " (need kernel >= 1, pad >= 0, stride >= " + (is_pool ? "0 (0 = kernel))" : "1)"));
  if (is_pool && 2 * s.pad > s.kernel)
    bad("pad " + std::to_string(s.pad) + " exceeds half the kernel " + std::to_string(s.kernel));
  if (s.kernel > x[1] + 2 * s.pad || s.kernel > x[2] + 2 * s.pad)
    bad("kernel " + std::to_string(s.kernel) + "x" + std::to_string(s.kernel) +
        " is larger than its input " + shape_str(x) + " padded by " + std::to_string(s.pad));
}

Shape conv_shape(const LayerSpec& s, const std::vector<Shape>& in, int64_t) {
  const Shape& x = in[0];
  check_window(s, x, false);
  if (s.out < 1) bad("output channels must be positive, got " + std::to_string(s.out));
  const ConvGeom g = window_geometry(s);
  return {s.out, g.out_h(x[1]), g.out_w(x[2])};
}

Shape pool_shape(const LayerSpec& s, const std::vector<Shape>& in, int64_t) {
  const Shape& x = in[0];
  check_window(s, x, true);
  const ConvGeom g = window_geometry(s);
  return {x[0], g.out_h(x[1]), g.out_w(x[2])};
}

Shape batchnorm_shape(const LayerSpec& s, const std::vector<Shape>& in, int64_t) {
  need_image(in[0], "batchnorm");
  if (!(s.eps > 0.0) || !(s.momentum >= 0.0 && s.momentum <= 1.0))
    bad("need eps > 0 and momentum in [0, 1], got eps " + std::to_string(s.eps) + ", momentum " +
        std::to_string(s.momentum));
  return in[0];
}

Shape same_shape(const LayerSpec&, const std::vector<Shape>& in, int64_t) {
  return in[0];
}

Shape global_pool_shape(const LayerSpec&, const std::vector<Shape>& in, int64_t) {
  need_image(in[0], "global average pooling");
  return {in[0][0]};
}

Shape linear_shape(const LayerSpec& s, const std::vector<Shape>& in, int64_t classes) {
  const Shape& x = in[0];
  if (x.size() != 1 && x.size() != 3)
    bad("needs a [features] or [C, H, W] input, got " + shape_str(x));
  if (s.out < 1 && s.out != kOutClasses)
    bad("output features must be positive, got " + std::to_string(s.out));
  return {s.out == kOutClasses ? classes : s.out};
}

Shape flatten_shape(const LayerSpec&, const std::vector<Shape>& in, int64_t) {
  return {shape_numel(in[0])};
}

Shape dropout_shape(const LayerSpec& s, const std::vector<Shape>& in, int64_t) {
  if (!(s.p >= 0.0 && s.p < 1.0))
    bad("dropout probability must be in [0, 1), got " + std::to_string(s.p));
  return in[0];
}

Shape add_shape(const LayerSpec& s, const std::vector<Shape>& in, int64_t) {
  if (in[0] != in[1])
    bad("inputs '" + s.inputs.at(0) + "' " + shape_str(in[0]) + " and '" + s.inputs.at(1) + "' " +
        shape_str(in[1]) + " differ in shape");
  return in[0];
}

using F = LayerField;

LayerSpec defaults_of(LayerKind k) {
  LayerSpec s;
  s.kind = k;
  return s;
}

// The descriptor of each kind. No default: -Wswitch names a kind left out. Empty for a value
// past the last kind, which is how all_layer_kinds() finds the end of the enum.
std::optional<LayerKindInfo> describe(LayerKind k) {
  LayerKindInfo d;
  d.kind = k;
  d.defaults = defaults_of(k);
  switch (k) {
    case LayerKind::Conv:
      d.name = "conv";
      d.keys = {{F::Out, true}, {F::Kernel}, {F::Stride}, {F::Pad}, {F::Bias}};
      d.params = ParamLayout::Conv;
      d.channels = ChannelFlow::Mix;
      d.onnx_ops = {"Conv"};
      d.infer_shape = conv_shape;
      return d;
    case LayerKind::BatchNorm:
      d.name = "bn";
      d.keys = {{F::Eps}, {F::Momentum}};
      d.params = ParamLayout::BatchNorm;
      d.channels = ChannelFlow::Affine;
      d.onnx_ops = {"BatchNormalization"};
      d.infer_shape = batchnorm_shape;
      return d;
    case LayerKind::ReLU:
      d.name = "relu";
      d.channels = ChannelFlow::Rectify;
      d.onnx_ops = {"Relu"};
      d.infer_shape = same_shape;
      return d;
    case LayerKind::MaxPool:
    case LayerKind::AvgPool:
      d.name = k == LayerKind::MaxPool ? "maxpool" : "avgpool";
      d.keys = {{F::Kernel}, {F::Stride}, {F::Pad}};
      d.defaults.stride = 0;  // = kernel
      // Max-pool padding acts as -inf, so a constant plane stays constant; average-pool
      // padding counts as zeros in the mean.
      d.channels = k == LayerKind::MaxPool ? ChannelFlow::Same : ChannelFlow::Average;
      d.onnx_ops = {k == LayerKind::MaxPool ? "MaxPool" : "AveragePool"};
      d.infer_shape = pool_shape;
      return d;
    case LayerKind::GlobalAvgPool:
      d.name = "gap";
      d.channels = ChannelFlow::Same;
      d.onnx_ops = {"GlobalAveragePool", "Flatten"};
      d.infer_shape = global_pool_shape;
      return d;
    case LayerKind::Linear:
      d.name = "linear";
      d.keys = {{F::Out}, {F::Bias}};
      d.defaults.out = kOutClasses;
      d.params = ParamLayout::Linear;
      d.channels = ChannelFlow::Features;
      d.onnx_ops = {"Gemm"};
      d.infer_shape = linear_shape;
      return d;
    case LayerKind::Flatten:
      d.name = "flatten";
      d.gradient_passes_through = true;
      d.channels = ChannelFlow::Same;  // channel c becomes a block of features
      d.onnx_ops = {"Flatten"};
      d.infer_shape = flatten_shape;
      return d;
    case LayerKind::Dropout:
      d.name = "dropout";
      d.keys = {{F::P}};
      d.channels = ChannelFlow::Same;  // compaction and export see the eval-mode identity
      d.onnx_ops = {};
      d.infer_shape = dropout_shape;
      return d;
    case LayerKind::Add:
      d.name = "add";
      d.inputs = 2;
      d.gradient_passes_through = true;
      d.channels = ChannelFlow::Sum;
      d.onnx_ops = {"Add"};
      d.infer_shape = add_shape;
      return d;
  }
  return std::nullopt;
}

// Kinds are the enum's values 0, 1, ... (no explicit values), so the table holds them in order.
std::vector<LayerKindInfo> build_table() {
  std::vector<LayerKindInfo> table;
  for (int i = 0;; ++i) {
    std::optional<LayerKindInfo> d = describe(static_cast<LayerKind>(i));
    if (!d) break;
    if (d->infer_shape == nullptr || *d->name == '\0')
      throw std::logic_error("layer kind #" + std::to_string(i) + ": incomplete descriptor");
    table.push_back(std::move(*d));
  }
  return table;
}

const std::vector<LayerKindInfo>& table() {
  static const std::vector<LayerKindInfo> t = build_table();
  return t;
}

}  // namespace

const std::vector<LayerKind>& all_layer_kinds() {
  static const std::vector<LayerKind> kinds = [] {
    std::vector<LayerKind> out;
    for (const LayerKindInfo& d : table()) out.push_back(d.kind);
    return out;
  }();
  return kinds;
}

const std::vector<LayerField>& all_layer_fields() {
  static const std::vector<LayerField> fields = {F::Out,  F::Kernel, F::Stride, F::Pad,
                                                 F::Bias, F::P,      F::Eps,    F::Momentum};
  return fields;
}

const char* layer_field_name(LayerField f) {
  switch (f) {
    case F::Out:
      return "out";
    case F::Kernel:
      return "kernel";
    case F::Stride:
      return "stride";
    case F::Pad:
      return "pad";
    case F::Bias:
      return "bias";
    case F::P:
      return "p";
    case F::Eps:
      return "eps";
    case F::Momentum:
      return "momentum";
  }
  return "?";
}

const LayerKindInfo& layer_kind_info(LayerKind k) {
  const auto i = static_cast<std::size_t>(k);
  if (i >= table().size())
    throw std::logic_error("layer kind #" + std::to_string(i) + " has no descriptor");
  return table()[i];
}

bool keeps_channels(LayerKind k) {
  switch (layer_kind_info(k).channels) {
    case ChannelFlow::Mix:
    case ChannelFlow::Features:
      return false;
    case ChannelFlow::Affine:
    case ChannelFlow::Rectify:
    case ChannelFlow::Average:
    case ChannelFlow::Same:
    case ChannelFlow::Sum:
      return true;
  }
  return false;
}

ConvGeom window_geometry(const LayerSpec& s) {
  ConvGeom g;
  g.kh = g.kw = s.kernel;
  const int stride = (s.kind != LayerKind::Conv && s.stride == 0) ? s.kernel : s.stride;
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = s.pad;
  return g;
}

const char* layer_kind_name(LayerKind k) {
  return layer_kind_info(k).name;
}

LayerKind layer_kind_from_name(const std::string& name) {
  std::vector<std::string> names;
  for (LayerKind k : all_layer_kinds()) {
    if (name == layer_kind_name(k)) return k;
    names.push_back(layer_kind_name(k));
  }
  std::string known;
  for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
  const std::string close = closest_match(name, names);
  throw std::invalid_argument("unknown layer kind '" + name + "'" +
                              (close.empty() ? "" : "; did you mean '" + close + "'?") +
                              " (expected one of " + known + ")");
}

}  // namespace st
