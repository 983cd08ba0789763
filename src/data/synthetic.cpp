#include "data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/validate.h"
#include "tensor/random.h"

namespace st::data {

namespace {

// The class templates, [classes][channels][height][width] in [0.15, 0.85].
std::vector<float> make_templates(const SyntheticOptions& o) {
  const int g = o.grid;
  std::vector<float> t(static_cast<std::size_t>(o.classes) * o.channels * o.height * o.width);
  const uint64_t key = splitmix64(o.template_seed ^ 0x7E3B1A7Eull);
  std::vector<float> coarse(static_cast<std::size_t>(g) * g);
  for (int cls = 0; cls < o.classes; ++cls) {
    for (int c = 0; c < o.channels; ++c) {
      const uint64_t plane = static_cast<uint64_t>(cls) * o.channels + c;
      for (int k = 0; k < g * g; ++k) {
        coarse[k] = 0.15f + 0.7f * uniform01(key, plane * g * g + k);
      }
      float* out = t.data() + plane * o.height * o.width;
      // Bilinear upsampling with pixel-centre alignment and clamped edges.
      for (int y = 0; y < o.height; ++y) {
        const float fy = std::clamp((y + 0.5f) * g / o.height - 0.5f, 0.0f, g - 1.0f);
        const int y0 = std::min(static_cast<int>(fy), g - 1), y1 = std::min(y0 + 1, g - 1);
        const float wy = fy - y0;
        for (int x = 0; x < o.width; ++x) {
          const float fx = std::clamp((x + 0.5f) * g / o.width - 0.5f, 0.0f, g - 1.0f);
          const int x0 = std::min(static_cast<int>(fx), g - 1), x1 = std::min(x0 + 1, g - 1);
          const float wx = fx - x0;
          const float top = coarse[y0 * g + x0] * (1 - wx) + coarse[y0 * g + x1] * wx;
          const float bottom = coarse[y1 * g + x0] * (1 - wx) + coarse[y1 * g + x1] * wx;
          out[y * o.width + x] = top * (1 - wy) + bottom * wy;
        }
      }
    }
  }
  return t;
}

// A standard normal value from two uniforms (Box-Muller); 1 - u keeps the log finite.
float gaussian(uint64_t key, uint64_t counter) {
  const float u1 = 1.0f - uniform01(key, 2 * counter);
  const float u2 = uniform01(key, 2 * counter + 1);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
}

std::string short_float(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
  return buf;
}

void check_options(const SyntheticOptions& o) {
  if (o.size < 0 || o.channels <= 0 || o.height <= 0 || o.width <= 0 || o.classes <= 0 ||
      o.grid <= 0 || o.noise < 0 || o.max_shift < 0) {
    throw InputError("synthetic dataset: size " + std::to_string(o.size) + ", shape " +
                     std::to_string(o.channels) + "x" + std::to_string(o.height) + "x" +
                     std::to_string(o.width) + ", classes " + std::to_string(o.classes) +
                     ", grid " + std::to_string(o.grid) + ", noise " + short_float(o.noise) +
                     ", max_shift " + std::to_string(o.max_shift) +
                     ": counts must be positive, noise and shift >= 0");
  }
  // Bounded before anything is allocated: the samples, and the float class templates.
  const std::string what = "synthetic dataset";
  if (o.grid > kMaxImageSide)
    throw InputError(what + ": grid " + std::to_string(o.grid) + " exceeds " +
                     std::to_string(kMaxImageSide));
  if (o.classes > (1 << 16))
    throw InputError(what + ": " + std::to_string(o.classes) + " classes, more than 65536");
  check_dataset_size(static_cast<uint64_t>(o.size), o.channels, o.height, o.width, what);
  check_dataset_size(uint64_t{4} * o.classes, o.channels, o.height, o.width,
                     what + " (class templates)");
}

}  // namespace

Dataset make_synthetic(const SyntheticOptions& o) {
  check_options(o);
  const std::vector<float> templates = make_templates(o);
  Dataset d;
  d.channels = o.channels;
  d.height = o.height;
  d.width = o.width;
  d.classes = o.classes;
  d.description = "synthetic (" + std::to_string(o.classes) + " classes, noise " +
                  short_float(o.noise) + ", template seed " + std::to_string(o.template_seed) +
                  ", sample seed " + std::to_string(o.sample_seed) + ")";
  const int64_t plane = int64_t{o.height} * o.width;
  const int64_t numel = o.channels * plane;
  d.pixels.resize(o.size * numel);
  d.labels.resize(o.size);
  const uint64_t base = splitmix64(o.sample_seed ^ 0x5A3F1E5Dull);
  const int span = 2 * o.max_shift + 1;
  for (int64_t i = 0; i < o.size; ++i) {
    const int label = static_cast<int>(i % o.classes);
    d.labels[i] = label;
    const uint64_t key = splitmix64(base ^ splitmix64(static_cast<uint64_t>(i)));
    // Counters 0 and 1 of the key choose the shift; the noise pairs start at counter 2.
    const int dy = static_cast<int>(uniform01(key, 0) * span) - o.max_shift;
    const int dx = static_cast<int>(uniform01(key, 1) * span) - o.max_shift;
    const float* tmpl = templates.data() + label * numel;
    uint8_t* out = d.pixels.data() + i * numel;
    for (int c = 0; c < o.channels; ++c) {
      for (int y = 0; y < o.height; ++y) {
        const int sy = std::clamp(y - dy, 0, o.height - 1);
        for (int x = 0; x < o.width; ++x) {
          const int sx = std::clamp(x - dx, 0, o.width - 1);
          const int64_t k = c * plane + y * o.width + x;
          float v = tmpl[c * plane + sy * o.width + sx];
          if (o.noise > 0) v += o.noise * gaussian(key, static_cast<uint64_t>(k) + 1);
          out[k] = static_cast<uint8_t>(std::lround(std::clamp(v, 0.0f, 1.0f) * 255.0f));
        }
      }
    }
  }
  return d;
}

}  // namespace st::data
