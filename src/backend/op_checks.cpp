#include "backend/op_checks.h"

#include <stdexcept>

namespace st {

OpCheck& OpCheck::arg(const char* name, const Tensor& t) {
  args_.emplace_back(name, &t);
  return *this;
}

OpCheck& OpCheck::arg(const char* name, const Tensor* t) {
  args_.emplace_back(name, t);
  return *this;
}

void OpCheck::fail(const std::string& what) const {
  std::string context;
  for (const auto& [name, t] : args_) {
    if (!context.empty()) context += ", ";
    context += name + " ";
    if (!t)
      context += "none";
    else if (!t->defined())
      context += "undefined";
    else
      context += shape_str(t->shape()) + " " + dtype_name(t->dtype());
  }
  throw std::invalid_argument(op_ + ": " + what + (context.empty() ? "" : " (" + context + ")"));
}

void OpCheck::on_device(Device device) const {
  for (const auto& [name, t] : args_) {
    if (!t) continue;
    if (!t->defined()) fail(name + " is not allocated");
    if (t->device() != device)
      fail(name + " is on " + device_name(t->device()) + ", expected " + device_name(device));
  }
}

void OpCheck::on_device() const {
  on_device(backend_ ? backend_->device() : Device::CPU);
}

void OpCheck::rank(const char* name, const Tensor& t, int rank) const {
  if (t.ndim() != rank)
    fail(std::string(name) + " must have " + std::to_string(rank) + " dimensions, got shape " +
         shape_str(t.shape()));
}

void OpCheck::shape(const char* name, const Tensor& t, const Shape& expected) const {
  if (t.shape() != expected)
    fail(std::string(name) + " has shape " + shape_str(t.shape()) + ", expected " +
         shape_str(expected));
}

void OpCheck::dtype(const char* name, const Tensor& t, DType expected) const {
  if (t.dtype() != expected)
    fail(std::string(name) + " has dtype " + dtype_name(t.dtype()) + ", expected " +
         dtype_name(expected));
}

void OpCheck::floating(const char* name, const Tensor& t) const {
  const bool f32 = backend_ ? backend_->supports(DType::F32) : true;
  const bool f64 = backend_ ? backend_->supports(DType::F64) : true;
  if ((t.dtype() == DType::F32 && f32) || (t.dtype() == DType::F64 && f64)) return;
  const std::string expected = f32 && f64 ? "f32 or f64" : f32 ? "f32" : "f64";
  fail(std::string(name) + " has dtype " + dtype_name(t.dtype()) + ", expected " + expected +
       (backend_ ? " on the " + backend_->name() + " backend" : std::string()));
}

void OpCheck::same_dtype(const char* name, const Tensor& t, const Tensor& ref) const {
  dtype(name, t, ref.dtype());
}

static std::string geom_str(const ConvGeom& g) {
  auto pair = [](int a, int b) { return std::to_string(a) + "x" + std::to_string(b); };
  return "kernel " + pair(g.kh, g.kw) + ", stride " + pair(g.stride_h, g.stride_w) + ", padding " +
         pair(g.pad_h, g.pad_w);
}

void OpCheck::geometry(const ConvGeom& g, int64_t in_h, int64_t in_w) const {
  if (g.kh < 1 || g.kw < 1 || g.stride_h < 1 || g.stride_w < 1 || g.pad_h < 0 || g.pad_w < 0)
    fail("invalid geometry: " + geom_str(g));
  if (in_h + 2 * g.pad_h < g.kh || in_w + 2 * g.pad_w < g.kw)
    fail("input " + std::to_string(in_h) + "x" + std::to_string(in_w) +
         " is smaller than the window (" + geom_str(g) + ")");
}

void OpCheck::pool_geometry(const PoolGeom& g, int64_t in_h, int64_t in_w) const {
  geometry(g, in_h, in_w);
  if (2 * g.pad_h > g.kh || 2 * g.pad_w > g.kw)
    fail("padding must be at most half the window (" + geom_str(g) + ")");
}

}  // namespace st
