// Winograd F(2x2, 3x3) convolution for 3x3, stride-1 kernels (see
// cpu_winograd.cpp); conv2d_forward/backward route eligible shapes here.
#pragma once

#include "backend/cpu/cpu_kernels.h"

namespace st::cpu {

// Input and output channels below which the im2col path is used instead.
constexpr int64_t kWinogradMinChannels = 16;

// 3x3 kernel, stride 1, padding at most 2, a non-empty output.
bool winograd_geometry(const WindowDims& d);
// That geometry and enough channels.
bool winograd_applies(const WindowDims& d);

template <typename T>
void winograd_conv_forward(const T* x, const T* w, const T* bias, const WindowDims& d, bool relu,
                           T* y);
// dx and db may be null.
template <typename T>
void winograd_conv_backward(const T* x, const T* w, const T* dy, const WindowDims& d, T* dx, T* dw,
                            T* db);

// The same for float over a tile-innermost layout that works on NCHW planes
// directly (cpu_winograd_thin.cpp), for layers too thin for the above. The
// kernels take up to kThinMaxChannels channels on either side; the backend
// sends them layers with fewer than kWinogradMinChannels channels on one
// side, kThinMinInputChannels to kThinRuleMaxChannels on both, and an output
// plane of at least kThinMinPlane pixels. Measured against im2col (docs/
// performance.md, "Small planes"): on 8x8 planes and smaller the junk slots
// cost more than the layout saves, and with 8 input channels or with 20 or
// more on a side im2col, whose small-plane copies and once-packed weights
// came later, is as fast or faster.
constexpr int64_t kThinMaxChannels = 64;
constexpr int64_t kThinMinInputChannels = 9;
constexpr int64_t kThinRuleMaxChannels = 17;
constexpr int64_t kThinMinPlane = 14 * 14;
bool thin_winograd_applies(const WindowDims& d);
void thin_winograd_forward(const float* x, const float* w, const float* bias, const WindowDims& d,
                           bool relu, float* y);
void thin_winograd_backward(const float* x, const float* w, const float* dy, const WindowDims& d,
                            float* dx, float* dw, float* db);

// Shared by both layouts; each splits its loop across the calling OpenMP team
// (an `omp for`, ending with its barrier).
// u[p][o][c] = (G w[o][c] G^T)[p].
template <typename T>
void winograd_transform_kernels(const T* w, const WindowDims& d, T* u);
// dw[o][c] = G^T m G, m the sum of `chunks` transformed-domain gradients
// [16][O][C] laid end to end, added in chunk order.
template <typename T>
void winograd_untransform_weight_grads(const T* acc, int64_t chunks, const WindowDims& d, T* dw);
// db[o] = the sum of dy over images and the plane (in double).
template <typename T>
void conv_bias_grad(const T* dy, const WindowDims& d, T* db);

}  // namespace st::cpu
