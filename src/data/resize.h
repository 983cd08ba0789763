// Resampling of uint8 CHW images. Separable: along each axis, shrinking averages the source
// pixels an output pixel covers (weighted by overlap; "area"), growing interpolates linearly
// between pixel centres with edges clamped ("bilinear", PyTorch's align_corners=False).
#pragma once

#include <cstdint>
#include <vector>

namespace st::data {

// `src` holds channels * in_h * in_w values; the result channels * out_h * out_w,
// rounded to nearest and clamped to [0, 255].
std::vector<uint8_t> resize_image(const uint8_t* src, int channels, int in_h, int in_w, int out_h,
                                  int out_w);

}  // namespace st::data
