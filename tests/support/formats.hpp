// Test support: the formats as doctest types, and an independent reference
// model of each format built from the standards' definitions (not from
// mixprec's format_traits or converter).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/format/all.hpp>

TYPE_TO_STRING(mixprec::half);
TYPE_TO_STRING(mixprec::bfloat16);
TYPE_TO_STRING(mixprec::fp8_e4m3);
TYPE_TO_STRING(mixprec::fp8_e5m2);

namespace test {

// Field layout per the standards: IEEE 754 binary16, bfloat16, OCP FP8.
struct layout {
  int exponent_bits, mantissa_bits, bias;
  bool ieee_specials;  // all-ones exponent is inf/NaN; false for OCP E4M3
};

template <class T>
layout layout_of();
template <>
inline layout layout_of<mixprec::half>() {
  return {5, 10, 15, true};
}
template <>
inline layout layout_of<mixprec::bfloat16>() {
  return {8, 7, 127, true};
}
template <>
inline layout layout_of<mixprec::fp8_e4m3>() {
  return {4, 3, 7, false};
}
template <>
inline layout layout_of<mixprec::fp8_e5m2>() {
  return {5, 2, 15, true};
}

// Value of a bit pattern, from the definition, in double. NaN for NaN
// patterns (E4M3: only S.1111.111).
inline double decode(const layout& f, std::uint32_t bits) {
  const int total = 1 + f.exponent_bits + f.mantissa_bits;
  const bool negative = (bits >> (total - 1)) & 1u;
  const std::uint32_t e = (bits >> f.mantissa_bits) & ((1u << f.exponent_bits) - 1u);
  const std::uint32_t m = bits & ((1u << f.mantissa_bits) - 1u);
  const std::uint32_t e_max = (1u << f.exponent_bits) - 1u;
  double v;
  if (f.ieee_specials && e == e_max) {
    v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else if (!f.ieee_specials && e == e_max && m == (1u << f.mantissa_bits) - 1u) {
    v = std::numeric_limits<double>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp(static_cast<double>(m), 1 - f.bias - f.mantissa_bits);
  } else {
    v = std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -f.mantissa_bits), static_cast<int>(e) - f.bias);
  }
  return negative ? -v : v;
}

// All finite non-negative values of the format, ascending, with their bits.
struct value_table {
  std::vector<double> values;
  std::vector<std::uint32_t> bits;
};

template <class T>
value_table finite_values() {
  const layout f = layout_of<T>();
  const std::uint32_t n = 1u << (f.exponent_bits + f.mantissa_bits);
  value_table t;
  for (std::uint32_t b = 0; b < n; ++b) {
    const double v = decode(f, b);
    if (std::isfinite(v)) {
      t.values.push_back(v);
      t.bits.push_back(b);
    }
  }
  return t;  // magnitude bit patterns are ordered like the values
}

template <class T>
std::uint32_t bits_of(T x) {
  return mixprec::to_bits(x);
}

inline float float_from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline std::uint32_t bits_from_float(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace test
