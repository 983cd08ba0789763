// Name <-> enum tables: the one place each config name is spelled. The parser, the writer, the
// messages and the tests all use these tables.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "config/experiment.h"

namespace st {

template <class E>
using NameTable = std::vector<std::pair<E, std::string>>;

// An optimizer as a config names it, and what it means for the step. OptimizerName is the
// user's choice (adam and adamw differ in their default regularization); UpdateRule is the
// update the backends implement (adamw is the Adam rule).
struct OptimizerInfo {
  OptimizerName name;
  std::string text;  // "adamw"
  UpdateRule rule;
  std::vector<std::string> keys;     // its config keys besides "name"
  std::optional<double> default_lr;  // none: lr is required (PyTorch's SGD)
  double default_eps;
  RegKind default_reg;  // regularization.kind when the config does not say
};
const std::vector<OptimizerInfo>& optimizer_infos();
const OptimizerInfo& optimizer_info(OptimizerName name);

const NameTable<DataKind>& data_kind_table();
const NameTable<Cifar100Label>& cifar100_label_table();
const NameTable<SubsetMode>& subset_mode_table();
const NameTable<OptimizerName>& optimizer_table();
const NameTable<RegKind>& reg_kind_table();
const NameTable<ParamGroup>& param_group_table();
const NameTable<ScheduleKind>& schedule_kind_table();
const NameTable<DeviceChoice>& device_table();
const NameTable<NonFinitePolicy>& nonfinite_policy_table();
const NameTable<ProgressMode>& progress_table();

template <class E>
std::vector<std::string> table_names(const NameTable<E>& table) {
  std::vector<std::string> out;
  for (const auto& entry : table) out.push_back(entry.second);
  return out;
}

// The name must be in the table (the parser has checked it).
template <class E>
E table_value(const NameTable<E>& table, const std::string& name) {
  for (const auto& entry : table) {
    if (entry.second == name) return entry.first;
  }
  throw std::logic_error("config name table has no \"" + name + "\"");
}

template <class E>
const std::string& table_name(const NameTable<E>& table, E value) {
  for (const auto& entry : table) {
    if (entry.first == value) return entry.second;
  }
  throw std::logic_error("config name table misses an enum value");
}

}  // namespace st
