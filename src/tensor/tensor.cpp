#include "tensor/tensor.h"

#include <cstdio>
#include <cstring>
#include <sstream>

#ifdef SPARSETRAIN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace st {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::F64:
      return 8;
    case DType::I32:
      return 4;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "f32";
    case DType::F64:
      return "f64";
    case DType::I32:
      return "i32";
  }
  return "?";
}

const char* device_name(Device d) {
  return d == Device::CPU ? "cpu" : "cuda";
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

#ifdef SPARSETRAIN_WITH_CUDA
static void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#endif

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  std::size_t alloc = bytes ? bytes : 1;
  if (device == Device::CPU) {
    // 64-byte alignment keeps SIMD loads aligned for the CPU kernels.
    alloc = (alloc + 63) / 64 * 64;
    data_ = std::aligned_alloc(64, alloc);
    if (!data_) throw std::bad_alloc();
    std::memset(data_, 0, alloc);
    return;
  }
#ifdef SPARSETRAIN_WITH_CUDA
  cuda_check(cudaMalloc(&data_, alloc), "cudaMalloc");
  cuda_check(cudaMemset(data_, 0, alloc), "cudaMemset");
#else
  throw std::runtime_error("this build of sparsetrain has no CUDA backend; use --device cpu");
#endif
}

Storage::~Storage() {
  if (device_ == Device::CPU) {
    std::free(data_);
    return;
  }
#ifdef SPARSETRAIN_WITH_CUDA
  // A destructor cannot throw: a failure (usually a kernel fault left sticky on the
  // context) is reported here; the next checked CUDA call raises it.
  const cudaError_t e = cudaFree(data_);
  if (e != cudaSuccess && e != cudaErrorCudartUnloading)
    std::fprintf(stderr, "sparsetrain: cudaFree failed: %s (%s)\n", cudaGetErrorName(e),
                 cudaGetErrorString(e));
#endif
}

Tensor::Tensor(Shape shape, DType dtype, Device device) : shape_(std::move(shape)), dtype_(dtype) {
  for (int64_t d : shape_)
    if (d < 0) throw std::invalid_argument("Tensor: negative dimension in " + shape_str(shape_));
  storage_ = std::make_shared<Storage>(bytes(), device);
}

template <typename T>
static Tensor tensor_from(const std::vector<T>& values, Shape shape) {
  if (shape_numel(shape) != static_cast<int64_t>(values.size()))
    throw std::invalid_argument("Tensor::from_vector: " + std::to_string(values.size()) +
                                " values for shape " + shape_str(shape));
  Tensor t(std::move(shape), dtype_of<T>());
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(T));
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& v, Shape s) {
  return tensor_from(v, s);
}
Tensor Tensor::from_vector(const std::vector<double>& v, Shape s) {
  return tensor_from(v, s);
}
Tensor Tensor::from_vector(const std::vector<int32_t>& v, Shape s) {
  return tensor_from(v, s);
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  if (i < 0) i += n;
  if (i < 0 || i >= n)
    throw std::out_of_range("Tensor::dim: index out of range for shape " + shape_str(shape_));
  return shape_[i];
}

void* Tensor::raw() const {
  if (!storage_) return nullptr;
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

Tensor Tensor::reshape(Shape shape) const {
  if (shape_numel(shape) != numel())
    throw std::invalid_argument("Tensor::reshape: " + shape_str(shape_) + " -> " +
                                shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  if (ndim() == 0 || begin < 0 || end > shape_[0] || begin > end)
    throw std::out_of_range("Tensor::slice0: bad range for shape " + shape_str(shape_));
  Tensor t = *this;
  int64_t row = shape_[0] ? numel() / shape_[0] : 0;
  t.offset_ += begin * row;
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::view(int64_t offset, Shape shape) const {
  if (offset < 0 || offset + shape_numel(shape) > numel())
    throw std::out_of_range("Tensor::view: " + shape_str(shape) + " at " + std::to_string(offset) +
                            " exceeds " + shape_str(shape_));
  Tensor t = *this;
  t.offset_ += offset;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(shape_, dtype_, device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  Tensor t(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

template <typename From, typename To>
static void convert(const Tensor& src, Tensor& dst) {
  const From* s = src.data<From>();
  To* d = dst.data<To>();
  for (int64_t i = 0; i < src.numel(); ++i) d[i] = static_cast<To>(s[i]);
}

Tensor Tensor::to(DType dtype) const {
  if (device() != Device::CPU) throw std::logic_error("Tensor::to(DType): CPU tensors only");
  if (dtype == dtype_) return clone();
  Tensor t(shape_, dtype, Device::CPU);
  auto dispatch_to = [&](auto from) {
    using F = decltype(from);
    switch (dtype) {
      case DType::F32:
        convert<F, float>(*this, t);
        break;
      case DType::F64:
        convert<F, double>(*this, t);
        break;
      case DType::I32:
        convert<F, int32_t>(*this, t);
        break;
    }
  };
  switch (dtype_) {
    case DType::F32:
      dispatch_to(float{});
      break;
    case DType::F64:
      dispatch_to(double{});
      break;
    case DType::I32:
      dispatch_to(int32_t{});
      break;
  }
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  if (src.numel() != numel() || src.dtype() != dtype_)
    throw std::invalid_argument("Tensor::copy_from: " + shape_str(src.shape()) + " " +
                                dtype_name(src.dtype()) + " into " + shape_str(shape_) + " " +
                                dtype_name(dtype_));
  if (bytes() == 0) return;
  if (device() == Device::CPU && src.device() == Device::CPU) {
    std::memcpy(raw(), src.raw(), bytes());
    return;
  }
#ifdef SPARSETRAIN_WITH_CUDA
  cuda_check(cudaMemcpy(raw(), src.raw(), bytes(), cudaMemcpyDefault), "cudaMemcpy");
#else
  throw std::runtime_error("Tensor::copy_from: no CUDA in this build");
#endif
}

void Tensor::zero() {
  if (bytes() == 0) return;
  if (device() == Device::CPU) {
    std::memset(raw(), 0, bytes());
    return;
  }
#ifdef SPARSETRAIN_WITH_CUDA
  cuda_check(cudaMemset(raw(), 0, bytes()), "cudaMemset");
#endif
}

std::vector<float> Tensor::to_vector_f32() const {
  Tensor host = device() == Device::CPU ? *this : to(Device::CPU);
  Tensor f = host.dtype() == DType::F32 ? host : host.to(DType::F32);
  const float* p = f.data<float>();
  return std::vector<float>(p, p + f.numel());
}

std::vector<double> Tensor::to_vector_f64() const {
  Tensor host = device() == Device::CPU ? *this : to(Device::CPU);
  Tensor f = host.dtype() == DType::F64 ? host : host.to(DType::F64);
  const double* p = f.data<double>();
  return std::vector<double>(p, p + f.numel());
}

void check_shape(const Tensor& t, const Shape& expected, const std::string& what) {
  if (t.shape() != expected)
    throw std::invalid_argument(what + ": expected shape " + shape_str(expected) + ", got " +
                                shape_str(t.shape()));
}

}  // namespace st
