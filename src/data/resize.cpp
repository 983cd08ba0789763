#include "data/resize.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace st::data {

namespace {

struct Tap {
  int src;
  double weight;
};

// For each output index along one axis, the source indices and weights that make it.
std::vector<std::vector<Tap>> axis_taps(int in, int out) {
  std::vector<std::vector<Tap>> taps(out);
  const double scale = static_cast<double>(in) / out;
  for (int o = 0; o < out; ++o) {
    if (out <= in) {
      // Output pixel o covers source interval [o*scale, (o+1)*scale).
      const double lo = o * scale, hi = (o + 1) * scale;
      for (int s = static_cast<int>(std::floor(lo)); s < in && s < hi; ++s) {
        const double overlap = std::min(hi, s + 1.0) - std::max(lo, double(s));
        if (overlap > 0) taps[o].push_back({s, overlap / scale});
      }
    } else {
      const double x = std::max(0.0, (o + 0.5) * scale - 0.5);
      const int s0 = std::min(static_cast<int>(std::floor(x)), in - 1);
      const int s1 = std::min(s0 + 1, in - 1);
      const double f = x - s0;
      taps[o].push_back({s0, 1.0 - f});
      if (f > 0) taps[o].push_back({s1, f});
    }
  }
  return taps;
}

}  // namespace

std::vector<uint8_t> resize_image(const uint8_t* src, int channels, int in_h, int in_w, int out_h,
                                  int out_w) {
  if (channels <= 0 || in_h <= 0 || in_w <= 0 || out_h <= 0 || out_w <= 0) {
    throw std::invalid_argument("resize_image: bad sizes " + std::to_string(in_h) + "x" +
                                std::to_string(in_w) + " -> " + std::to_string(out_h) + "x" +
                                std::to_string(out_w));
  }
  const auto rows = axis_taps(in_h, out_h);
  const auto cols = axis_taps(in_w, out_w);
  std::vector<uint8_t> dst(static_cast<std::size_t>(channels) * out_h * out_w);
  std::vector<double> tmp(static_cast<std::size_t>(in_h) * out_w);  // horizontal pass
  for (int c = 0; c < channels; ++c) {
    const uint8_t* plane = src + static_cast<std::size_t>(c) * in_h * in_w;
    for (int y = 0; y < in_h; ++y) {
      for (int x = 0; x < out_w; ++x) {
        double acc = 0;
        for (const Tap& t : cols[x]) acc += t.weight * plane[y * in_w + t.src];
        tmp[static_cast<std::size_t>(y) * out_w + x] = acc;
      }
    }
    uint8_t* out = dst.data() + static_cast<std::size_t>(c) * out_h * out_w;
    for (int y = 0; y < out_h; ++y) {
      for (int x = 0; x < out_w; ++x) {
        double acc = 0;
        for (const Tap& t : rows[y])
          acc += t.weight * tmp[static_cast<std::size_t>(t.src) * out_w + x];
        out[y * out_w + x] = static_cast<uint8_t>(std::clamp(std::lround(acc), 0L, 255L));
      }
    }
  }
  return dst;
}

}  // namespace st::data
