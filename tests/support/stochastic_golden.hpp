// Test support: the fixed inputs and file format of the stochastic-rounding
// golden values (tests/data/stochastic_rounding.txt for the default
// generator, stochastic_rounding_philox.txt for Philox). The values are
// written by tests/tools/make_stochastic_golden.cpp on the host backend; the
// test recomputes them on whatever backend it is built for and compares bits,
// so a CUDA build checks that the GPU draws exactly the host's bits.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <mixprec/cast/generator.hpp>

namespace test {

// The golden files of generator G: "<name>.txt" for the default generator,
// "<name>_philox.txt" for Philox-4x32-10.
template <class G>
std::string golden_file(const std::string& name) {
  static_assert(std::is_same_v<G, mixprec::default_generator> || std::is_same_v<G, mixprec::philox_generator>,
                "golden files exist for the default generator and Philox");
  return name + (std::is_same_v<G, mixprec::philox_generator> ? "_philox" : "") + ".txt";
}

inline constexpr std::size_t golden_count = 1024;
inline constexpr std::uint64_t golden_seeds[] = {0, 12345, 0xfedcba9876543210ull};
inline constexpr std::uint64_t golden_streams[] = {0, 1, 1ull << 40};

// Inputs spanning many binades (including subnormals of the narrow formats
// and values past their range), from a fixed integer hash.
inline float golden_input(std::size_t i) {
  std::uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const int exponent = static_cast<int>(z % 60) - 40;  // 2^-40 .. 2^19
  const float mantissa = 1.0f + static_cast<float>((z >> 8) & 0xffffff) / 16777216.0f;
  const float sign = (z >> 40) & 1 ? -1.0f : 1.0f;
  float v = sign * mantissa;
  for (int e = 0; e < exponent; ++e) v *= 2.0f;
  for (int e = 0; e > exponent; --e) v *= 0.5f;
  return v;
}

inline std::vector<float> golden_inputs() {
  std::vector<float> v(golden_count);
  for (std::size_t i = 0; i < golden_count; ++i) v[i] = golden_input(i);
  return v;
}

// One line per (format, seed, stream): "<format> <seed> <stream> <hex bits>...".
struct golden_line {
  std::string format;
  std::uint64_t seed = 0, stream = 0;
  std::vector<std::uint32_t> bits;
};

inline std::vector<golden_line> read_golden(const std::string& path) {
  std::vector<golden_line> lines;
  std::ifstream in(path);
  std::string text;
  while (std::getline(in, text)) {
    if (text.empty() || text[0] == '#') continue;
    std::istringstream is(text);
    golden_line g;
    is >> g.format >> g.seed >> g.stream;
    std::string h;
    while (is >> h) g.bits.push_back(static_cast<std::uint32_t>(std::stoul(h, nullptr, 16)));
    lines.push_back(g);
  }
  return lines;
}

}  // namespace test
