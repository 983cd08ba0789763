// ExperimentConfig -> JSON (the resolved config a run saves), comparison, fingerprints and
// resume checks: all walks of the schema tables (config/schema.h).
#include <cstdio>

#include "config/experiment.h"
#include "config/json_reader.h"
#include "config/names.h"
#include "config/schema.h"

namespace st {

namespace {

using nlohmann::json;

void collect_differences(const json& a, const json& b, const std::string& path,
                         std::vector<ConfigDifference>& out) {
  if (a.is_object() && b.is_object()) {
    json keys = a;
    keys.update(b);  // the union of both key sets, in key order
    for (auto it = keys.begin(); it != keys.end(); ++it) {
      const std::string child = json_path_join(path, it.key());
      json av = a.contains(it.key()) ? a[it.key()] : json();
      json bv = b.contains(it.key()) ? b[it.key()] : json();
      collect_differences(av, bv, child, out);
    }
    return;
  }
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) {
      collect_differences(a[i], b[i], json_path_index(path, i), out);
    }
    return;
  }
  if (a != b) out.push_back({path, a, b});
}

uint64_t fnv1a64(const std::string& text) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace

nlohmann::json to_json(const ExperimentConfig& c) {
  return write_section(experiment_schema(), c, SchemaContext{&c, "", false});
}

nlohmann::json training_relevant_json(const ExperimentConfig& c) {
  return write_section(experiment_schema(), c, SchemaContext{&c, "", true});
}

bool ExperimentConfig::operator==(const ExperimentConfig& o) const {
  return to_json(*this) == to_json(o);
}

bool DataConfig::operator==(const DataConfig& o) const {
  return write_section(data_schema(), *this, {}) == write_section(data_schema(), o, {});
}

bool OptimizerConfig::operator==(const OptimizerConfig& o) const {
  return write_section(optimizer_schema(), *this, {}) == write_section(optimizer_schema(), o, {});
}

std::string config_fingerprint(const ExperimentConfig& c) {
  // nlohmann::json objects keep their keys sorted, so the dump is canonical.
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(fnv1a64(training_relevant_json(c).dump())));
  return hex;
}

std::vector<ConfigDifference> training_differences(const ExperimentConfig& saved,
                                                   const ExperimentConfig& requested) {
  std::vector<ConfigDifference> out;
  collect_differences(training_relevant_json(saved), training_relevant_json(requested), "", out);
  return out;
}

void check_resume_compatible(const ExperimentConfig& saved, const ExperimentConfig& requested) {
  std::vector<ConfigDifference> diffs = training_differences(saved, requested);
  if (diffs.empty()) return;
  std::string list;
  for (const ConfigDifference& d : diffs) {
    if (!list.empty()) list += "; ";
    list += (d.path.empty() ? "(config)" : d.path) + ": saved " + describe_json_value(d.saved) +
            ", now " + describe_json_value(d.requested);
  }
  throw ConfigError("resume", "",
                    "the config differs from the saved run in what training computes (" + list +
                        "); restore those values or start a new run in another output.dir");
}

}  // namespace st
