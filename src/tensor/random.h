// Counter-based random numbers: the same (seed, counter) gives the same value on
// the CPU and in a CUDA kernel, so dropout masks and resumed runs are reproducible.
#pragma once

#include <cstdint>

#include "tensor/hd.h"

namespace st {

ST_HD inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) with 24 random bits.
ST_HD inline float uniform01(uint64_t seed, uint64_t counter) {
  return static_cast<float>(splitmix64(seed ^ splitmix64(counter)) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace st
