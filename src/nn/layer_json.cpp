#include "nn/layer_json.h"

#include <algorithm>
#include <stdexcept>

namespace st {

namespace {

using nlohmann::json;

const std::vector<std::string> kAllKeys = {"kind", "name", "inputs", "out", "kernel",  "stride",
                                           "pad",  "bias", "p",      "eps", "momentum"};

// The keys a layer of this kind accepts, besides kind, name and inputs.
std::vector<std::string> kind_keys(LayerKind k) {
  switch (k) {
    case LayerKind::Conv:
      return {"out", "kernel", "stride", "pad", "bias"};
    case LayerKind::MaxPool:
    case LayerKind::AvgPool:
      return {"kernel", "stride", "pad"};
    case LayerKind::Linear:
      return {"out", "bias"};
    case LayerKind::BatchNorm:
      return {"eps", "momentum"};
    case LayerKind::Dropout:
      return {"p"};
    default:
      return {};
  }
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string suggestion(const std::string& key) {
  std::string best;
  std::size_t best_d = 3;  // suggest only close matches
  for (const auto& k : kAllKeys) {
    std::size_t d = edit_distance(key, k);
    if (d < best_d) best_d = d, best = k;
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
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

void check_keys(const json& obj, LayerKind kind, const std::string& path) {
  std::vector<std::string> allowed = {"kind", "name", "inputs"};
  for (const auto& k : kind_keys(kind)) allowed.push_back(k);
  for (const auto& item : obj.items()) {
    const std::string& key = item.key();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    if (std::find(kAllKeys.begin(), kAllKeys.end(), key) == kAllKeys.end())
      fail(path + "." + key, "unknown key" + suggestion(key));
    fail(path + "." + key, std::string("not used by a ") + layer_kind_name(kind) +
                               " layer (its keys: " + join(allowed) + ")");
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

int64_t read_out(const json& v, LayerKind kind, const std::string& path) {
  if (kind == LayerKind::Linear && v.is_string()) {
    if (v.get<std::string>() != "classes")
      fail(path, "expected a positive integer or \"classes\", got " + v.dump());
    return kOutClasses;
  }
  return get_int(v, path, 1);
}

LayerSpec layer_from_json(const json& obj, const std::string& path) {
  if (!obj.is_object()) fail(path, "expected a layer object, got " + type_of(obj));
  if (!obj.contains("kind")) fail(path, "missing key 'kind'");
  const json& kind_json = obj.at("kind");
  if (!kind_json.is_string()) fail(path + ".kind", "expected a string, got " + type_of(kind_json));
  LayerSpec s;
  try {
    s.kind = layer_kind_from_name(kind_json.get<std::string>());
  } catch (const std::invalid_argument& e) {
    fail(path + ".kind", e.what());
  }
  check_keys(obj, s.kind, path);
  if (s.kind == LayerKind::MaxPool || s.kind == LayerKind::AvgPool) s.stride = 0;  // = kernel
  if (s.kind == LayerKind::Linear) s.out = kOutClasses;
  if (s.kind == LayerKind::Conv && !obj.contains("out")) fail(path, "a conv needs 'out'");
  for (const auto& item : obj.items()) {
    const std::string& key = item.key();
    const json& v = item.value();
    const std::string p = path + "." + key;
    if (key == "name") {
      if (!v.is_string()) fail(p, "expected a string, got " + type_of(v));
      s.name = v.get<std::string>();
    } else if (key == "inputs") {
      s.inputs = read_inputs(v, p);
    } else if (key == "out") {
      s.out = read_out(v, s.kind, p);
    } else if (key == "kernel") {
      s.kernel = get_small_int(v, p, 1);
    } else if (key == "stride") {
      s.stride = get_small_int(v, p, s.kind == LayerKind::Conv ? 1 : 0);
    } else if (key == "pad") {
      s.pad = get_small_int(v, p, 0);
    } else if (key == "bias") {
      if (!v.is_boolean()) fail(p, "expected true or false, got " + v.dump());
      s.bias = v.get<bool>();
    } else if (key == "p") {
      s.p = get_number(v, p);
      if (!(s.p >= 0.0 && s.p < 1.0)) fail(p, "must be in [0, 1), got " + v.dump());
    } else if (key == "eps") {
      s.eps = get_number(v, p);
      if (!(s.eps > 0.0)) fail(p, "must be positive, got " + v.dump());
    } else if (key == "momentum") {
      s.momentum = get_number(v, p);
      if (!(s.momentum >= 0.0 && s.momentum <= 1.0)) fail(p, "must be in [0, 1], got " + v.dump());
    }
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
    for (const auto& key : kind_keys(s.kind)) {
      if (key == "out")
        o[key] = s.out == kOutClasses ? json("classes") : json(s.out);
      else if (key == "kernel")
        o[key] = s.kernel;
      else if (key == "stride")
        o[key] = s.stride;
      else if (key == "pad")
        o[key] = s.pad;
      else if (key == "bias")
        o[key] = s.bias;
      else if (key == "p")
        o[key] = s.p;
      else if (key == "eps")
        o[key] = s.eps;
      else if (key == "momentum")
        o[key] = s.momentum;
    }
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
