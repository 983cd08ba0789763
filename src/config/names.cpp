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

const NameTable<Cifar100Label>& cifar100_label_table() {
  static const NameTable<Cifar100Label> table = {{Cifar100Label::Fine, "fine"},
                                                 {Cifar100Label::Coarse, "coarse"}};
  return table;
}

const NameTable<OptimizerName>& optimizer_table() {
  static const NameTable<OptimizerName> table = {
      {OptimizerName::SGD, "sgd"},         {OptimizerName::Adam, "adam"},
      {OptimizerName::AdamW, "adamw"},     {OptimizerName::AdaGrad, "adagrad"},
      {OptimizerName::RMSProp, "rmsprop"}, {OptimizerName::AdaDelta, "adadelta"},
      {OptimizerName::AdaMax, "adamax"}};
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

std::vector<std::string> known_model_presets() {
  return {"basicnet", "vgg11", "vgg16", "resnet18"};
}

}  // namespace st
