// Test support: random test vectors, exactly representable in format T.
#pragma once

#include <random>
#include <vector>

#include <mixprec/cast/convert.hpp>

namespace test {

// n values ~ N(mean, stddev) rounded to T, returned as floats (exact in T).
template <class T>
std::vector<float> random_values(std::size_t n, unsigned seed, float mean = 0.0f, float stddev = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = mixprec::to_float(mixprec::convert<T, mixprec::overflow_saturate>(dist(gen)));
  return v;
}

template <class T>
std::vector<T> to_format(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = mixprec::convert<T>(v[i]);
  return out;
}

}  // namespace test
