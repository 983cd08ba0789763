// Argument validation shared by the backend ops: every failure throws
// std::invalid_argument naming the op, the offending argument and the shapes of
// all the op's arguments, so a bad call can be diagnosed from the message alone.
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "tensor/tensor.h"

namespace st {

class OpCheck {
 public:
  explicit OpCheck(std::string op) : op_(std::move(op)) {}

  // Records an argument for the context line; a null optional argument is listed as "none".
  OpCheck& arg(const char* name, const Tensor& t);
  OpCheck& arg(const char* name, const Tensor* t);

  // Every recorded argument is allocated and lives on `device`.
  void on_device(Device device) const;
  void rank(const char* name, const Tensor& t, int rank) const;
  void shape(const char* name, const Tensor& t, const Shape& expected) const;
  void dtype(const char* name, const Tensor& t, DType expected) const;
  void floating(const char* name, const Tensor& t) const;  // F32 or F64
  void same_dtype(const char* name, const Tensor& t, const Tensor& ref) const;
  // Kernel and stride positive, padding non-negative, output at least 1x1.
  void geometry(const ConvGeom& g, int64_t in_h, int64_t in_w) const;
  // Pooling additionally needs padding of at most half the window (PyTorch's rule),
  // so that no window lies entirely in the padding.
  void pool_geometry(const PoolGeom& g, int64_t in_h, int64_t in_w) const;

  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string op_;
  std::vector<std::pair<std::string, const Tensor*>> args_;
};

}  // namespace st
