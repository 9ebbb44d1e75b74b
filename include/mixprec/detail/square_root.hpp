// sqrtf's bits in the element rules, without errno.
//
// Compiled with errno-setting math (GCC's and Clang's default), sqrtf keeps
// a libm call for negative arguments, and a loop that calls it does not
// vectorise (the host update pass runs about ten times slower). Where the
// consumer compiles with -fno-math-errno (__NO_MATH_ERRNO__), the hardware
// instruction is used; elsewhere a square root made of multiplies, adds and
// bit operations, which vectorises: four Newton steps for 1/sqrt(x) in
// double from an estimate taken from the bits leave sqrt(x) within four
// double ulps, closer than the nearest float midpoint can lie (a float's
// square root is at least 2^-51 of itself away from every midpoint between
// floats), so the rounding to float is sqrtf's. tests/detail/
// test_square_root.cpp compares it with sqrtf over all 2^32 floats, special
// values included (NaN payloads, -0, the invalid operation's NaN for x < 0).
// Device code uses sqrtf (no errno there).
#pragma once

#include <cmath>
#include <cstdint>

#include <mixprec/core/bit.hpp>
#include <mixprec/core/config.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

// mask ? a : b on bit patterns: no branch for the compiler to keep.
MIXPREC_HOST_DEVICE std::uint32_t select_bits(std::uint32_t mask, std::uint32_t a, std::uint32_t b) {
  return (a & mask) | (b & ~mask);
}

// sqrt(x) from multiplies, adds and bit operations: the bits of sqrtf(x)
// for every float x.
MIXPREC_HOST_DEVICE float square_root_by_newton(float x) {
  const std::uint32_t xb = bit_cast<std::uint32_t>(x);
  // Positive and finite: the Newton steps see only such a value (1 for the
  // others), so they raise no exception but inexact.
  const std::uint32_t regular = 0u - static_cast<std::uint32_t>(xb - 1u < 0x7f7fffffu);
  const double xd = static_cast<double>(bit_cast<float>(select_bits(regular, xb, 0x3f800000u)));
  double y = bit_cast<double>(0x5fe6eb50c7b537a9ull - (bit_cast<std::uint64_t>(xd) >> 1));  // within 3.5%
  const double half = 0.5 * xd;
  for (int k = 0; k < 4; ++k) y = y * (1.5 - mul(half * y, y));  // 1.7e-3, 4.6e-6, 3.2e-11, then rounding
  const std::uint32_t root = bit_cast<std::uint32_t>(static_cast<float>(xd * y));
  // +-0 and +inf are their own roots; a NaN comes back quieted; x < 0 gives
  // the invalid operation's NaN (-inf - -inf), raising invalid as sqrtf.
  const std::uint32_t negative = 0u - static_cast<std::uint32_t>(x < 0.0f);
  const float m = bit_cast<float>(select_bits(negative, 0xff800000u, 0u));
  const float invalid = m - m;
  const float quiet = x + x;
  const std::uint32_t own = 0u - static_cast<std::uint32_t>((xb & 0x7fffffffu) == 0u || xb == 0x7f800000u);
  const std::uint32_t special =
      select_bits(own, xb, select_bits(negative, bit_cast<std::uint32_t>(invalid), bit_cast<std::uint32_t>(quiet)));
  return bit_cast<float>(select_bits(regular, root, special));
}

// sqrtf(x) for the element rules.
MIXPREC_HOST_DEVICE float square_root(float x) {
#if defined(__CUDA_ARCH__) || defined(__NO_MATH_ERRNO__)
  return sqrtf(x);
#else
  return square_root_by_newton(x);
#endif
}

}  // namespace mixprec::detail

MIXPREC_PINNED_END
