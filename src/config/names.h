// Name <-> enum tables shared by the parser and the writer of experiment configs.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config/experiment.h"

namespace st {

template <class E>
using NameTable = std::vector<std::pair<E, std::string>>;

const NameTable<DataKind>& data_kind_table();
const NameTable<Cifar100Label>& cifar100_label_table();
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
