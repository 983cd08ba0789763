// Argument validation for the op contract (backend.cpp) and the checks a device
// keeps for itself: every failure throws std::invalid_argument naming the op, the
// offending argument and the shapes of all the op's arguments, so a bad call can
// be diagnosed from the message alone.
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "tensor/tensor.h"

namespace st {

class OpCheck {
 public:
  explicit OpCheck(std::string op) : op_(std::move(op)) {}
  // With the backend, device() and floating() use its device and dtypes.
  OpCheck(const Backend& backend, std::string op) : op_(std::move(op)), backend_(&backend) {}

  // Records an argument for the context line; a null optional argument is listed as "none".
  OpCheck& arg(const char* name, const Tensor& t);
  OpCheck& arg(const char* name, const Tensor* t);

  // Every recorded argument is allocated and lives on `device`.
  void on_device(Device device) const;
  void on_device() const;  // the backend's device
  void rank(const char* name, const Tensor& t, int rank) const;
  void shape(const char* name, const Tensor& t, const Shape& expected) const;
  void dtype(const char* name, const Tensor& t, DType expected) const;
  // A floating dtype the backend runs (without a backend: F32 or F64).
  void floating(const char* name, const Tensor& t) const;
  void same_dtype(const char* name, const Tensor& t, const Tensor& ref) const;
  // Kernel and stride positive, padding non-negative, output at least 1x1.
  void geometry(const ConvGeom& g, int64_t in_h, int64_t in_w) const;
  // Pooling additionally needs padding of at most half the window (PyTorch's rule),
  // so that no window lies entirely in the padding.
  void pool_geometry(const PoolGeom& g, int64_t in_h, int64_t in_w) const;

  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string op_;
  const Backend* backend_ = nullptr;
  std::vector<std::pair<std::string, const Tensor*>> args_;
};

}  // namespace st
