// The CPU kernels on raw, contiguous NCHW buffers, templated on the element type
// (float and double are instantiated). Arguments are validated by CpuBackend
// before these run.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace st::cpu {

// Sizes of one windowed op (convolution or pooling) over a batch.
struct WindowDims {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input
  int64_t o = 0;                       // output channels (convolution)
  int64_t oh = 0, ow = 0;              // output plane
  ConvGeom g;
};

// y = max(y, 0) on the calling thread, as relu_forward computes it (a NaN
// becomes 0): the ReLU fused into a convolution, applied to each part of its
// output right after that part is written, while it is still in cache.
template <typename T>
inline void relu_in_place(T* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = y[i] > T(0) ? y[i] : T(0);
}

// With `relu`, y = relu(conv + bias) (conv2d_relu_forward).
template <typename T>
void conv2d_forward(const T* x, const T* w, const T* bias, const WindowDims& d, T* y, bool relu);
// dx and db may be null.
template <typename T>
void conv2d_backward(const T* x, const T* w, const T* dy, const WindowDims& d, T* dx, T* dw, T* db);

// Per-channel statistics over n images of c channels with `plane` elements each.
struct ChannelDims {
  int64_t n = 0, c = 0, plane = 0;
};

// Batch normalization; with kRelu the ReLU that follows is fused into the same passes:
// y = relu(bn(x)), and the backward takes that y (null without kRelu) and its gradient dy.
template <bool kRelu, typename T>
void batchnorm_forward_train(const T* x, const T* gamma, const T* beta, T* running_mean,
                             T* running_var, double momentum, double eps, const ChannelDims& d,
                             T* y, T* save_mean, T* save_invstd);
template <bool kRelu, typename T>
void batchnorm_forward_eval(const T* x, const T* gamma, const T* beta, const T* running_mean,
                            const T* running_var, double eps, const ChannelDims& d, T* y);
template <bool kRelu, typename T>
void batchnorm_backward(const T* x, const T* y, const T* gamma, const T* save_mean,
                        const T* save_invstd, const T* dy, const ChannelDims& d, T* dx, T* dgamma,
                        T* dbeta);

template <typename T>
void relu_forward(const T* x, int64_t n, T* y);
template <typename T>
void relu_backward(const T* y, const T* dy, int64_t n, T* dx);

template <typename T>
void maxpool2d_forward(const T* x, const WindowDims& d, T* y, int32_t* argmax);
// d gives dx's sizes (n, c, h, w) and dy's plane (oh, ow); d.g is not used:
// the argmax indices say where each gradient goes.
template <typename T>
void maxpool2d_backward(const T* dy, const int32_t* argmax, const WindowDims& d, T* dx);
template <typename T>
void avgpool2d_forward(const T* x, const WindowDims& d, T* y);
template <typename T>
void avgpool2d_backward(const T* dy, const WindowDims& d, T* dx);
template <typename T>
void global_avgpool_forward(const T* x, int64_t planes, int64_t plane, T* y);
template <typename T>
void global_avgpool_backward(const T* dy, int64_t planes, int64_t plane, T* dx);

// x [n, in], w [out, in] -> y [n, out]
template <typename T>
void linear_forward(const T* x, const T* w, const T* bias, int64_t n, int64_t in, int64_t out,
                    T* y);
template <typename T>
void linear_backward(const T* x, const T* w, const T* dy, int64_t n, int64_t in, int64_t out, T* dx,
                     T* dw, T* db);

// Labels are already checked to lie in [0, k).
template <typename T>
double softmax_xent_forward(const T* logits, const int32_t* labels, int64_t n, int64_t k, T* probs);
template <typename T>
void softmax_xent_backward(const T* probs, const int32_t* labels, int64_t n, int64_t k, T* dlogits);
template <typename T>
int64_t count_correct(const T* logits, const int32_t* labels, int64_t n, int64_t k);

template <typename T>
void add(const T* a, const T* b, int64_t n, T* y);
template <typename T>
void add_inplace(T* y, const T* x, int64_t n);
template <typename T>
void dropout_forward(const T* x, int64_t n, double p, uint64_t seed, T* mask, T* y);
template <typename T>
void multiply(const T* a, const T* b, int64_t n, T* y);
template <typename T>
void channel_absmax(const T* h, int64_t planes, int64_t plane, float* out);

}  // namespace st::cpu
