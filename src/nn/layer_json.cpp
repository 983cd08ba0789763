#include "nn/layer_json.h"

#include <algorithm>
#include <stdexcept>

#include "config/suggest.h"
#include "nn/layer_kinds.h"

namespace st {

namespace {

using nlohmann::json;

// Every key a layer object may have, for "did you mean" on an unknown one.
std::vector<std::string> all_keys() {
  std::vector<std::string> keys = {"kind", "name", "inputs"};
  for (LayerField f : all_layer_fields()) keys.push_back(layer_field_name(f));
  return keys;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::invalid_argument(path + ": " + what);
}

std::string type_of(const json& v) {
  return v.type_name();
}

int64_t get_int(const json& v, const std::string& path, int64_t min) {
  if (!v.is_number_integer()) fail(path, "expected an integer, got " + type_of(v) + " " + v.dump());
  int64_t x = v.get<int64_t>();
  if (x < min) fail(path, "must be >= " + std::to_string(min) + ", got " + std::to_string(x));
  return x;
}

int get_small_int(const json& v, const std::string& path, int64_t min) {
  int64_t x = get_int(v, path, min);
  if (x > 1'000'000) fail(path, "value " + std::to_string(x) + " is implausibly large");
  return static_cast<int>(x);
}

double get_number(const json& v, const std::string& path) {
  if (!v.is_number()) fail(path, "expected a number, got " + type_of(v) + " " + v.dump());
  return v.get<double>();
}

void check_keys(const json& obj, const LayerKindInfo& info, const std::string& path) {
  std::vector<std::string> allowed = {"kind", "name", "inputs"};
  for (const LayerKey& k : info.keys) allowed.push_back(layer_field_name(k.field));
  const std::vector<std::string> known = all_keys();
  for (const auto& item : obj.items()) {
    const std::string& key = item.key();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      const std::string close = closest_match(key, known);
      fail(path + "." + key,
           "unknown key" + (close.empty() ? std::string() : " (did you mean '" + close + "'?)"));
    }
    fail(path + "." + key,
         std::string("not used by a ") + info.name + " layer (its keys: " + join(allowed) + ")");
  }
}

std::vector<std::string> read_inputs(const json& v, const std::string& path) {
  if (!v.is_array()) fail(path, "expected an array of layer names, got " + type_of(v));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string() || v[i].get<std::string>().empty())
      fail(path + "[" + std::to_string(i) + "]",
           "expected a layer name or \"input\", got " + v[i].dump());
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

// "out" is a positive integer, or "classes" where the kind's default is the class count.
int64_t read_out(const json& v, const LayerKindInfo& info, const std::string& path) {
  if (info.defaults.out == kOutClasses && v.is_string()) {
    if (v.get<std::string>() != "classes")
      fail(path, "expected a positive integer or \"classes\", got " + v.dump());
    return kOutClasses;
  }
  return get_int(v, path, 1);
}

void read_field(LayerSpec& s, LayerField f, const LayerKindInfo& info, const json& v,
                const std::string& p) {
  switch (f) {
    case LayerField::Out:
      s.out = read_out(v, info, p);
      return;
    case LayerField::Kernel:
      s.kernel = get_small_int(v, p, 1);
      return;
    case LayerField::Stride:
      // A kind whose stride defaults to 0 reads 0 as "= kernel".
      s.stride = get_small_int(v, p, info.defaults.stride == 0 ? 0 : 1);
      return;
    case LayerField::Pad:
      s.pad = get_small_int(v, p, 0);
      return;
    case LayerField::Bias:
      if (!v.is_boolean()) fail(p, "expected true or false, got " + v.dump());
      s.bias = v.get<bool>();
      return;
    case LayerField::P:
      s.p = get_number(v, p);
      if (!(s.p >= 0.0 && s.p < 1.0)) fail(p, "must be in [0, 1), got " + v.dump());
      return;
    case LayerField::Eps:
      s.eps = get_number(v, p);
      if (!(s.eps > 0.0)) fail(p, "must be positive, got " + v.dump());
      return;
    case LayerField::Momentum:
      s.momentum = get_number(v, p);
      if (!(s.momentum >= 0.0 && s.momentum <= 1.0)) fail(p, "must be in [0, 1], got " + v.dump());
      return;
  }
}

json field_json(const LayerSpec& s, LayerField f) {
  switch (f) {
    case LayerField::Out:
      return s.out == kOutClasses ? json("classes") : json(s.out);
    case LayerField::Kernel:
      return s.kernel;
    case LayerField::Stride:
      return s.stride;
    case LayerField::Pad:
      return s.pad;
    case LayerField::Bias:
      return s.bias;
    case LayerField::P:
      return s.p;
    case LayerField::Eps:
      return s.eps;
    case LayerField::Momentum:
      return s.momentum;
  }
  return nullptr;
}

LayerSpec layer_from_json(const json& obj, const std::string& path) {
  if (!obj.is_object()) fail(path, "expected a layer object, got " + type_of(obj));
  if (!obj.contains("kind")) fail(path, "missing key 'kind'");
  const json& kind_json = obj.at("kind");
  if (!kind_json.is_string()) fail(path + ".kind", "expected a string, got " + type_of(kind_json));
  LayerKind kind = LayerKind::ReLU;
  try {
    kind = layer_kind_from_name(kind_json.get<std::string>());
  } catch (const std::invalid_argument& e) {
    fail(path + ".kind", e.what());
  }
  const LayerKindInfo& info = layer_kind_info(kind);
  check_keys(obj, info, path);
  LayerSpec s = info.defaults;
  for (const LayerKey& k : info.keys)
    if (k.required && !obj.contains(layer_field_name(k.field)))
      fail(path, std::string("a ") + info.name + " needs '" + layer_field_name(k.field) + "'");
  if (obj.contains("name")) {
    const json& v = obj.at("name");
    if (!v.is_string()) fail(path + ".name", "expected a string, got " + type_of(v));
    s.name = v.get<std::string>();
  }
  if (obj.contains("inputs")) s.inputs = read_inputs(obj.at("inputs"), path + ".inputs");
  for (const LayerKey& k : info.keys) {
    const char* key = layer_field_name(k.field);
    if (obj.contains(key)) read_field(s, k.field, info, obj.at(key), path + "." + key);
  }
  return s;
}

}  // namespace

json layers_to_json(const std::vector<LayerSpec>& layers) {
  json out = json::array();
  for (const LayerSpec& s : layers) {
    json o;
    o["kind"] = layer_kind_name(s.kind);
    if (!s.name.empty()) o["name"] = s.name;
    if (!s.inputs.empty()) o["inputs"] = s.inputs;
    for (const LayerKey& k : layer_kind_info(s.kind).keys)
      o[layer_field_name(k.field)] = field_json(s, k.field);
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<LayerSpec> layers_from_json(const json& j, const std::string& json_path) {
  if (!j.is_array()) fail(json_path, "expected an array of layers, got " + type_of(j));
  std::vector<LayerSpec> layers;
  for (std::size_t i = 0; i < j.size(); ++i)
    layers.push_back(layer_from_json(j[i], json_path + "[" + std::to_string(i) + "]"));
  return layers;
}

}  // namespace st
