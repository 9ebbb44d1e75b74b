// Test support: the synthetic weights and gradients of the optimizer
// reference vectors (scripts/reference/optimizers.py), recomputed bit for bit.
#pragma once

#include <cstdint>

namespace test {

inline std::uint64_t mix64(std::uint64_t a) {
  std::uint64_t z = a + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A float in [-1, 1) with 24 significant bits: (mix(a) >> 40) * 2^-23 - 1.
inline float unit_value(std::uint64_t a) {
  return static_cast<float>(static_cast<double>(mix64(a) >> 40) * 0x1p-23 - 1.0);
}

inline float initial_weight(std::uint64_t k, std::uint64_t i) { return 0.5f * unit_value(1000003ull * (k + 1) + i); }

inline float synthetic_gradient(std::uint64_t t, std::uint64_t k, std::uint64_t i, float scale) {
  return scale * unit_value((t * 7919ull + k) * 1000003ull + i + 0x5151ull);
}

}  // namespace test
