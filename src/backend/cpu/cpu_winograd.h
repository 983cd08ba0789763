// Winograd F(2x2, 3x3) convolution for 3x3, stride-1 kernels (see
// cpu_winograd.cpp); conv2d_forward/backward route eligible shapes here.
#pragma once

#include "backend/cpu/cpu_kernels.h"

namespace st::cpu {

// Input and output channels below which the im2col path is used instead.
constexpr int64_t kWinogradMinChannels = 16;

// 3x3 kernel, stride 1, padding at most 2, and enough channels.
bool winograd_applies(const WindowDims& d);

template <typename T>
void winograd_conv_forward(const T* x, const T* w, const T* bias, const WindowDims& d, T* y);
// dx and db may be null.
template <typename T>
void winograd_conv_backward(const T* x, const T* w, const T* dy, const WindowDims& d, T* dx, T* dw,
                            T* db);

}  // namespace st::cpu
