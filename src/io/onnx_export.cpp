#include "io/onnx_export.h"

#include "io/file_write.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <bit>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "nn/layer_kinds.h"

namespace st {

namespace {

static_assert(std::endian::native == std::endian::little, "raw_data is little-endian");

constexpr int64_t kIrVersion = 7;  // the IR version that goes with opset 13
constexpr const char* kInput = "input";
constexpr const char* kOutput = "logits";

void set_shape(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = t->mutable_shape();
  shape->add_dim()->set_dim_param("batch");
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

void add_initializer(onnx::GraphProto* g, const std::string& name, const Tensor& t) {
  const std::vector<float> v = t.to_vector_f32();
  auto* init = g->add_initializer();
  init->set_name(name);
  init->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : t.shape()) init->add_dims(d);
  init->set_raw_data(v.data(), v.size() * sizeof(float));
}

onnx::AttributeProto* attr(onnx::NodeProto* n, const std::string& name,
                           onnx::AttributeProto::AttributeType type) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(type);
  return a;
}
void attr_ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = attr(n, name, onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
void attr_int(onnx::NodeProto* n, const std::string& name, int64_t v) {
  attr(n, name, onnx::AttributeProto::INT)->set_i(v);
}
void attr_float(onnx::NodeProto* n, const std::string& name, float v) {
  attr(n, name, onnx::AttributeProto::FLOAT)->set_f(v);
}

onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& op, const std::string& name,
                          const std::vector<std::string>& inputs, const std::string& output) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& in : inputs) n->add_input(in);
  n->add_output(output);
  return n;
}

void window_attrs(onnx::NodeProto* n, const LayerSpec& s) {
  const ConvGeom g = window_geometry(s);
  attr_ints(n, "kernel_shape", {g.kh, g.kw});
  attr_ints(n, "strides", {g.stride_h, g.stride_w});
  attr_ints(n, "pads", {s.pad, s.pad, s.pad, s.pad});
}

class GraphBuilder {
 public:
  GraphBuilder(const Model& m, onnx::GraphProto* g) : m_(m), g_(g) {}

  void build() {
    const InputShape in = m_.input_shape();
    set_shape(g_->add_input(), kInput, {in.channels, in.height, in.width});
    const int n = static_cast<int>(m_.specs().size());
    value_.resize(n);
    for (int i = 0; i < n; ++i) add_layer(i);
    // The last layer's value becomes the graph output.
    const std::string last = value_[n - 1];
    add_node(g_, "Identity", "output", {last}, kOutput);
    set_shape(g_->add_output(), kOutput, {m_.classes()});
  }

 private:
  std::string input_of(int i, int k) const {
    const int j = m_.layer_inputs(i).at(k);
    return j < 0 ? kInput : value_[j];
  }

  void add_layer(int i) {
    const LayerSpec& s = m_.specs()[i];
    const std::string& name = s.name;
    const std::string x = input_of(i, 0);
    value_[i] = name;
    switch (s.kind) {
      case LayerKind::Conv: {
        std::vector<std::string> ins{x, name + ".weight"};
        add_initializer(g_, name + ".weight", m_.tensor(name + ".weight"));
        if (s.bias) {
          ins.push_back(name + ".bias");
          add_initializer(g_, name + ".bias", m_.tensor(name + ".bias"));
        }
        auto* node = add_node(g_, "Conv", name, ins, name);
        window_attrs(node, s);
        attr_ints(node, "dilations", {1, 1});
        attr_int(node, "group", 1);
        break;
      }
      case LayerKind::BatchNorm: {
        std::vector<std::string> ins{x};
        for (const char* part : {".weight", ".bias", ".running_mean", ".running_var"}) {
          ins.push_back(name + part);
          add_initializer(g_, name + part, m_.tensor(name + part));
        }
        auto* node = add_node(g_, "BatchNormalization", name, ins, name);
        attr_float(node, "epsilon", static_cast<float>(s.eps));
        attr_float(node, "momentum", static_cast<float>(1.0 - s.momentum));  // ONNX's convention
        break;
      }
      case LayerKind::ReLU:
        add_node(g_, "Relu", name, {x}, name);
        break;
      case LayerKind::MaxPool:
        window_attrs(add_node(g_, "MaxPool", name, {x}, name), s);
        break;
      case LayerKind::AvgPool: {
        auto* node = add_node(g_, "AveragePool", name, {x}, name);
        window_attrs(node, s);
        attr_int(node, "count_include_pad", 1);
        break;
      }
      case LayerKind::GlobalAvgPool:
        add_node(g_, "GlobalAveragePool", name + "/pool", {x}, name + "/pool");
        attr_int(add_node(g_, "Flatten", name, {name + "/pool"}, name), "axis", 1);
        break;
      case LayerKind::Flatten:
        attr_int(add_node(g_, "Flatten", name, {x}, name), "axis", 1);
        break;
      case LayerKind::Linear:
        add_linear(i, x);
        break;
      case LayerKind::Dropout:
        value_[i] = x;  // the identity in eval mode
        break;
      case LayerKind::Add:
        add_node(g_, "Add", name, {x, input_of(i, 1)}, name);
        break;
    }
  }

  void add_linear(int i, std::string x) {
    const LayerSpec& s = m_.specs()[i];
    const int j = m_.layer_inputs(i).at(0);
    const bool flat = j >= 0 && m_.output_shape(j).size() == 1;
    if (!flat) {  // a linear after [C, H, W] flattens it, as the engine does
      attr_int(add_node(g_, "Flatten", s.name + "/flatten", {x}, s.name + "/flatten"), "axis", 1);
      x = s.name + "/flatten";
    }
    std::vector<std::string> ins{x, s.name + ".weight"};
    add_initializer(g_, s.name + ".weight", m_.tensor(s.name + ".weight"));
    if (s.bias) {
      ins.push_back(s.name + ".bias");
      add_initializer(g_, s.name + ".bias", m_.tensor(s.name + ".bias"));
    }
    attr_int(add_node(g_, "Gemm", s.name, ins, s.name), "transB", 1);
  }

  const Model& m_;
  onnx::GraphProto* g_;
  std::vector<std::string> value_;  // per layer: the ONNX value holding its output
};

// The checker validates the model; strict shape inference must give [batch, classes].
void check(onnx::ModelProto& proto, const Model& m) {
  try {
    onnx::checker::check_model(proto);
    onnx::ModelProto inferred = proto;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(true, 1));
    for (const auto& v : inferred.graph().value_info()) {
      if (!v.type().tensor_type().has_shape()) continue;
      const auto& shape = v.type().tensor_type().shape();
      const std::string& name = v.name();
      int layer = -1;
      for (int i = 0; i < static_cast<int>(m.specs().size()); ++i)
        if (m.specs()[i].name == name) layer = i;
      if (layer < 0) continue;
      const Shape& want = m.output_shape(layer);
      bool same = shape.dim_size() == static_cast<int>(want.size()) + 1;
      for (int d = 0; same && d < static_cast<int>(want.size()); ++d)
        same = shape.dim(d + 1).has_dim_value() && shape.dim(d + 1).dim_value() == want[d];
      if (!same)
        throw std::runtime_error("inferred shape of '" + name + "' differs from the model's " +
                                 shape_str(want));
    }
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("ONNX export: the graph fails the ONNX checks: ") +
                             e.what());
  }
}

}  // namespace

std::string onnx_model_bytes(const Model& model,
                             const std::map<std::string, std::string>& metadata) {
  onnx::ModelProto proto;
  proto.set_ir_version(kIrVersion);
  proto.set_producer_name("sparsetrain");
  proto.set_producer_version("0.1.0");
  auto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  for (const auto& [k, v] : metadata) {
    auto* p = proto.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
  onnx::GraphProto* g = proto.mutable_graph();
  g->set_name("sparsetrain");
  GraphBuilder(model, g).build();
  check(proto, model);
  std::string bytes;
  if (!proto.SerializeToString(&bytes))
    throw std::runtime_error("ONNX export: protobuf serialization failed");
  return bytes;
}

void write_onnx(const std::string& path, const Model& model,
                const std::map<std::string, std::string>& metadata) {
  const std::string bytes = onnx_model_bytes(model, metadata);
  write_file_atomic(path, bytes);
}

}  // namespace st
