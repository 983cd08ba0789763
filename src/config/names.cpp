#include "config/names.h"

namespace st {

const NameTable<DataKind>& data_kind_table() {
  static const NameTable<DataKind> table = {{DataKind::FashionMnist, "fashion-mnist"},
                                            {DataKind::Mnist, "mnist"},
                                            {DataKind::Cifar10, "cifar10"},
                                            {DataKind::Cifar100, "cifar100"},
                                            {DataKind::ImageFolder, "image-folder"},
                                            {DataKind::Synthetic, "synthetic"}};
  return table;
}

const NameTable<SubsetMode>& subset_mode_table() {
  static const NameTable<SubsetMode> table = {{SubsetMode::Stratified, "stratified"},
                                              {SubsetMode::First, "first"}};
  return table;
}

const NameTable<Cifar100Label>& cifar100_label_table() {
  static const NameTable<Cifar100Label> table = {{Cifar100Label::Fine, "fine"},
                                                 {Cifar100Label::Coarse, "coarse"}};
  return table;
}

const std::vector<OptimizerInfo>& optimizer_infos() {
  // Defaults are those of torch.optim (PyTorch 1.13).
  static const std::vector<OptimizerInfo> infos = {
      {OptimizerName::SGD,
       "sgd",
       UpdateRule::SGD,
       {"lr", "momentum", "dampening", "nesterov"},
       std::nullopt,
       1e-8,
       RegKind::L2},
      {OptimizerName::Adam,
       "adam",
       UpdateRule::Adam,
       {"lr", "betas", "eps", "amsgrad"},
       1e-3,
       1e-8,
       RegKind::L2},
      {OptimizerName::AdamW,
       "adamw",
       UpdateRule::Adam,
       {"lr", "betas", "eps", "amsgrad"},
       1e-3,
       1e-8,
       RegKind::Decoupled},
      {OptimizerName::AdaGrad,
       "adagrad",
       UpdateRule::AdaGrad,
       {"lr", "lr_decay", "initial_accumulator", "eps"},
       1e-2,
       1e-10,
       RegKind::L2},
      {OptimizerName::RMSProp,
       "rmsprop",
       UpdateRule::RMSProp,
       {"lr", "alpha", "eps", "momentum", "centered"},
       1e-2,
       1e-8,
       RegKind::L2},
      {OptimizerName::AdaDelta,
       "adadelta",
       UpdateRule::AdaDelta,
       {"lr", "rho", "eps"},
       1.0,
       1e-6,
       RegKind::L2},
      {OptimizerName::AdaMax,
       "adamax",
       UpdateRule::AdaMax,
       {"lr", "betas", "eps"},
       2e-3,
       1e-8,
       RegKind::L2}};
  return infos;
}

const OptimizerInfo& optimizer_info(OptimizerName name) {
  for (const OptimizerInfo& info : optimizer_infos()) {
    if (info.name == name) return info;
  }
  throw std::logic_error("config optimizer table misses an optimizer");
}

const NameTable<OptimizerName>& optimizer_table() {
  static const NameTable<OptimizerName> table = [] {
    NameTable<OptimizerName> t;
    for (const OptimizerInfo& info : optimizer_infos()) t.emplace_back(info.name, info.text);
    return t;
  }();
  return table;
}

const NameTable<RegKind>& reg_kind_table() {
  static const NameTable<RegKind> table = {
      {RegKind::None, "none"}, {RegKind::L2, "l2"}, {RegKind::Decoupled, "decoupled"}};
  return table;
}

const NameTable<ParamGroup>& param_group_table() {
  static const NameTable<ParamGroup> table = {
      {ParamGroup::ConvWeight, "conv_weight"},     {ParamGroup::ConvBias, "conv_bias"},
      {ParamGroup::LinearWeight, "linear_weight"}, {ParamGroup::LinearBias, "linear_bias"},
      {ParamGroup::BNWeight, "bn_weight"},         {ParamGroup::BNBias, "bn_bias"}};
  return table;
}

std::vector<ParamGroup> every_param_group() {
  std::vector<ParamGroup> groups;
  for (const auto& entry : param_group_table()) groups.push_back(entry.first);
  return groups;
}

const NameTable<ScheduleKind>& schedule_kind_table() {
  static const NameTable<ScheduleKind> table = {{ScheduleKind::Constant, "constant"},
                                                {ScheduleKind::Step, "step"},
                                                {ScheduleKind::MultiStep, "multistep"},
                                                {ScheduleKind::Cosine, "cosine"}};
  return table;
}

const NameTable<DeviceChoice>& device_table() {
  static const NameTable<DeviceChoice> table = {
      {DeviceChoice::Cpu, "cpu"}, {DeviceChoice::Cuda, "cuda"}, {DeviceChoice::Auto, "auto"}};
  return table;
}

const NameTable<NonFinitePolicy>& nonfinite_policy_table() {
  static const NameTable<NonFinitePolicy> table = {{NonFinitePolicy::Stop, "stop"},
                                                   {NonFinitePolicy::SkipBatch, "skip_batch"}};
  return table;
}

const NameTable<ProgressMode>& progress_table() {
  static const NameTable<ProgressMode> table = {{ProgressMode::Auto, "auto"},
                                                {ProgressMode::Bar, "bar"},
                                                {ProgressMode::Lines, "lines"},
                                                {ProgressMode::None, "none"}};
  return table;
}

const char* data_kind_name(DataKind k) {
  return table_name(data_kind_table(), k).c_str();
}
const char* optimizer_name(OptimizerName n) {
  return table_name(optimizer_table(), n).c_str();
}
const char* param_group_name(ParamGroup g) {
  return table_name(param_group_table(), g).c_str();
}
const char* reg_kind_name(RegKind k) {
  return table_name(reg_kind_table(), k).c_str();
}
const char* schedule_kind_name(ScheduleKind k) {
  return table_name(schedule_kind_table(), k).c_str();
}
const char* device_choice_name(DeviceChoice d) {
  return table_name(device_table(), d).c_str();
}
const char* nonfinite_policy_name(NonFinitePolicy p) {
  return table_name(nonfinite_policy_table(), p).c_str();
}
const char* progress_mode_name(ProgressMode p) {
  return table_name(progress_table(), p).c_str();
}

}  // namespace st
