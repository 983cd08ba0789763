// Tensor: a shape, an element type and a view into storage on one device.
// Storage is shared between views (reshape, slicing along dim 0); copies are explicit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace st {

enum class Device { CPU, CUDA };
// F64 exists so that CPU ops can be checked by finite differences in double precision.
enum class DType { F32, F64, I32 };

std::size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* device_name(Device d);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

// Raw memory on a device, freed with the right allocator.
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
};

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::F32; }
template <>
constexpr DType dtype_of<double>() { return DType::F64; }
template <>
constexpr DType dtype_of<int32_t>() { return DType::I32; }

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-filled storage.
  Tensor(Shape shape, DType dtype = DType::F32, Device device = Device::CPU);

  // A CPU tensor holding a copy of `values`.
  static Tensor from_vector(const std::vector<float>& values, Shape shape);
  static Tensor from_vector(const std::vector<double>& values, Shape shape);
  static Tensor from_vector(const std::vector<int32_t>& values, Shape shape);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const;  // negative i counts from the end
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::CPU; }

  void* raw() const;
  template <typename T>
  T* data() const {
    if (dtype_of<T>() != dtype_) throw std::logic_error("Tensor::data: dtype mismatch");
    return static_cast<T*>(raw());
  }

  // Same storage, new shape with the same element count.
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) along dim 0, sharing storage.
  Tensor slice0(int64_t begin, int64_t end) const;
  // A view of `shape` at element offset `offset` into this tensor's storage.
  Tensor view(int64_t offset, Shape shape) const;

  // Deep copies.
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;  // CPU only
  void copy_from(const Tensor& src);  // same numel and dtype, any devices

  void zero();
  std::vector<float> to_vector_f32() const;  // any dtype, any device
  std::vector<double> to_vector_f64() const;

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // in elements
  Shape shape_;
  DType dtype_ = DType::F32;
};

// Throws std::invalid_argument naming `what` when the shape differs from `expected`.
void check_shape(const Tensor& t, const Shape& expected, const std::string& what);

}  // namespace st
