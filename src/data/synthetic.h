// A deterministic, learnable synthetic image set for tests and benchmarks. Each class has a
// fixed smooth random template per channel (a coarse random grid, bilinearly upsampled); a
// sample is its class template, optionally shifted, plus Gaussian pixel noise, clamped.
#pragma once

#include <cstdint>

#include "data/dataset.h"

namespace st::data {

struct SyntheticOptions {
  int64_t size = 1000;
  int channels = 3;
  int height = 32;
  int width = 32;
  int classes = 10;
  // Noise standard deviation, in units of the full pixel range [0, 1]. The difficulty knob:
  // at 0.25 classes are trivially separable; near 2.5 a small two-conv CNN gets roughly
  // 75 % after three epochs on 5000 samples of 3x32x32.
  float noise = 0.25f;
  int grid = 4;                // template detail: grid x grid random values per channel
  int max_shift = 0;           // each sample's template is translated by up to this many pixels
  uint64_t template_seed = 0;  // the classes: a train and a test set must share it
  uint64_t sample_seed = 1;    // the samples: give a train and a test set different ones
};

// Sample i has label i % classes; everything is a pure function of the options.
Dataset make_synthetic(const SyntheticOptions& opts);

}  // namespace st::data
