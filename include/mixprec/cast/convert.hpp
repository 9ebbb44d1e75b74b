// One converter between the formats, parameterised by target, source,
// rounding style and overflow policy: convert<To, Overflow>(x, round, index).
//
// Narrowing is done on the bits of the binary32 value, branch-free, with one
// generic routine driven by format_traits (exponent width, mantissa width,
// bias, special patterns), so host and device produce the same bits and host
// loops vectorise. Round-to-nearest-even matches CUDA's own __float2half_rn,
// __float2bfloat16_rn and __nv_cvt_float_to_fp8 bit for bit (tested over all
// 2^32 inputs). Widening to float is exact. NaN narrows to the format's
// canonical (positive, quiet) NaN, as CUDA's conversions do. In device code
// the GPU's conversion instructions replace the routine where they give its
// bits (cast/hardware_convert.hpp).
#pragma once

#include <cstdint>
#include <type_traits>

#include <mixprec/cast/generator.hpp>
#include <mixprec/cast/hardware_convert.hpp>
#include <mixprec/cast/round.hpp>
#include <mixprec/core/bit.hpp>
#include <mixprec/format/bits.hpp>

namespace mixprec {
namespace detail {

// Whether the truncated magnitude q (with `rem`, the dropped low bits, `d` of
// them) rounds up under round style R. `rbits` is only read by stochastic
// rounding: it rounds up when rbits < rem / 2^d scaled to 32 bits, i.e. with
// probability rem / 2^d (exact for d <= 32, to within 2^-32 otherwise).
template <class R>
MIXPREC_HOST_DEVICE bool rounds_up(std::uint32_t q, std::uint32_t rem, std::uint32_t d, std::uint32_t rbits) {
  if constexpr (std::is_same_v<R, round_toward_zero>) {
    (void)q, (void)rem, (void)d, (void)rbits;
    return false;
  } else if constexpr (std::is_same_v<R, round_nearest_even>) {
    (void)rbits;
    // d >= 32 only when q == 0 and rem < 2^24 <= half a gap: never up.
    const std::uint32_t half = d >= 32 ? 0xffffffffu : (1u << (d - 1));
    return rem > half || (rem == half && (q & 1u));
  } else {
    static_assert(is_round_stochastic_v<R>, "unknown round style");
    (void)q;
    const std::uint32_t frac = d <= 32 ? (d == 32 ? rem : rem << (32 - d)) : (d >= 64 ? 0u : rem >> (d - 32));
    return rbits < frac;
  }
}

// float -> bits of To, under round style R and overflow policy O.
template <class To, class R, class O>
MIXPREC_HOST_DEVICE bits_t<To> narrow_bits(float x, std::uint32_t rbits) {
  using F = format_traits<To>;
  static_assert(is_narrow_format_v<To>, "narrow_bits targets half, bfloat16 and fp8 only");
  static_assert(is_overflow_policy_v<O>, "overflow policy must be overflow_to_infinity or overflow_saturate");
  constexpr std::uint32_t m_bits = F::mantissa_bits;
  const std::uint32_t u = bit_cast<std::uint32_t>(x);
  if constexpr (F::exponent_bits == 8 && std::is_same_v<O, overflow_to_infinity>) {
    // bfloat16 (binary32's exponent, so every input keeps its exponent
    // field): the general routine below, in a form with a third of its
    // vector instructions (the update pass rounds the model copy and each
    // bfloat16 state field per element). Adding `add` to the low 16 bits
    // carries into the kept bits exactly when the general rule rounds up:
    // 0x7fff + the kept bits' last bit for nearest-even, 0xffff - draw for
    // stochastic (draw < rem). Below NaN the carry stops short of the sign,
    // and from the largest finite value it gives infinity, as the general
    // overflow does.
    std::uint32_t add = 0;
    if constexpr (std::is_same_v<R, round_nearest_even>) add = 0x7fffu + ((u >> 16) & 1u);
    else if constexpr (is_round_stochastic_v<R>) add = 0xffffu - (rbits >> 16);
    else (void)rbits;
    const std::uint32_t rounded = (u + add) >> 16;
    return static_cast<bits_t<To>>((u & 0x7fffffffu) > 0x7f800000u ? static_cast<std::uint32_t>(F::nan_bits) : rounded);
  }
  const std::uint32_t sign = (u >> 31) << (F::total_bits - 1);
  const std::uint32_t a = u & 0x7fffffffu;

  std::uint32_t q, rem, d;
  if constexpr (F::exponent_bits == 8) {
    // Same exponent range as binary32: every input, subnormals included,
    // keeps its exponent field and loses the low 23 - m mantissa bits.
    d = 23 - m_bits;
    q = a >> d;
    rem = a & ((1u << d) - 1u);
  } else {
    // Normal results: rebias the exponent in place, drop 23 - m bits.
    // Subnormal results: shift the significand (implicit bit included) right
    // by the extra distance below the target's minimum exponent.
    constexpr std::uint32_t rebias = static_cast<std::uint32_t>(127 - F::bias) << 23;
    constexpr std::uint32_t min_normal = static_cast<std::uint32_t>(128 - F::bias) << 23;
    const bool normal = a >= min_normal;
    const std::uint32_t field = a >> 23;
    const std::uint32_t sig = (a & 0x7fffffu) | (field != 0 ? 0x800000u : 0u);
    const std::uint32_t exp = field != 0 ? field : 1u;
    const std::uint32_t d_sub = 23 - m_bits + 128 - F::bias - exp;  // > 23 - m_bits here
    const std::uint32_t base = normal ? a - rebias : sig;
    d = normal ? 23 - m_bits : (d_sub > 63 ? 63u : d_sub);
    q = d >= 32 ? 0u : base >> d;
    rem = d >= 32 ? base : base & ((1u << d) - 1u);
  }
  q += rounds_up<R>(q, rem, d, rbits) ? 1u : 0u;

  std::uint32_t overflow_bits;
  if constexpr (std::is_same_v<O, overflow_saturate>) {
    overflow_bits = F::max_bits;
  } else {
    constexpr std::uint32_t beyond = F::has_infinity ? F::inf_bits : F::nan_bits;
    // IEEE 754: round-toward-zero keeps finite values finite.
    overflow_bits = (std::is_same_v<R, round_toward_zero> && a != 0x7f800000u) ? F::max_bits : beyond;
  }
  const std::uint32_t magnitude = q > F::max_bits ? overflow_bits : q;
  // A NaN result (E4M3 overflow under to_infinity) keeps the sign, as CUDA's.
  const std::uint32_t result = a > 0x7f800000u ? static_cast<std::uint32_t>(F::nan_bits) : (sign | magnitude);
  return static_cast<bits_t<To>>(result);
}

// bits of From -> float, exactly.
template <class From>
MIXPREC_HOST_DEVICE float widen_bits(bits_t<From> b) {
  using F = format_traits<From>;
  static_assert(is_narrow_format_v<From>, "widen_bits reads half, bfloat16 and fp8 only");
  constexpr std::uint32_t m_bits = F::mantissa_bits;
  if constexpr (F::exponent_bits == 8) {
    return bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
  } else {
    constexpr std::uint32_t mag_mask = (1u << (F::total_bits - 1)) - 1u;
    constexpr std::uint32_t exp_max = (1u << F::exponent_bits) - 1u;
    const std::uint32_t v = b;
    const std::uint32_t sign = (v >> (F::total_bits - 1)) << 31;
    const std::uint32_t mag = v & mag_mask;
    // The exponent and mantissa fields moved to binary32's positions.
    const std::uint32_t aligned = mag << (23 - m_bits);
    const std::uint32_t e = mag >> m_bits;
    const std::uint32_t normal = aligned + (static_cast<std::uint32_t>(127 - F::bias) << 23);
    // Subnormal: m * 2^(1 - bias - m_bits) = 2^(1 - bias) * (1 + m / 2^m_bits)
    // - 2^(1 - bias): the first is a normal float (the fields with exponent
    // 1), the difference is exact (both in one binade) and normal in
    // binary32, so no denormal is read or made (flush-to-zero modes are
    // harmless) and the loop vectorises.
    constexpr float min_normal = 1.0f / static_cast<float>(1ull << (F::bias - 1));
    const std::uint32_t subnormal = bit_cast<std::uint32_t>(bit_cast<float>(normal + (1u << 23)) - min_normal);
    const std::uint32_t nan = 0x7fc00000u | aligned;  // quiet, payload kept
    std::uint32_t special = nan;
    bool is_special = mag == F::nan_bits;
    if constexpr (F::has_infinity) {
      special = mag == (exp_max << m_bits) ? 0x7f800000u : nan;
      is_special = e == exp_max;
    }
    const std::uint32_t finite = e == 0 ? subnormal : normal;
    return bit_cast<float>(sign | (is_special ? special : finite));
  }
}

// double -> float rounded to odd: truncate, then set the last bit when
// inexact. Narrowing that float to nearest-even or toward zero gives the same
// result as rounding the double directly (binary32 keeps more than two extra
// bits over every narrow format), so no double rounding occurs; stochastic
// rounding then sees the value to within 2^-24 of its magnitude.
MIXPREC_HOST_DEVICE float round_to_odd(double d) {
  float f = static_cast<float>(d);
  if (f != f) return f;
  std::uint32_t u = bit_cast<std::uint32_t>(f);
  const double back = static_cast<double>(f);
  if ((back > d && d >= 0) || (back < d && d <= 0)) --u;  // rounded away from zero: step back
  const bool inexact = static_cast<double>(bit_cast<float>(u)) != d;
  return bit_cast<float>(inexact ? (u | 1u) : u);
}

// double -> float toward zero.
MIXPREC_HOST_DEVICE float round_toward_zero_float(double d) {
  float f = static_cast<float>(d);
  if (f != f) return f;
  std::uint32_t u = bit_cast<std::uint32_t>(f);
  const double back = static_cast<double>(f);
  if ((back > d && d >= 0) || (back < d && d <= 0)) --u;
  return bit_cast<float>(u);
}

}  // namespace detail

// Any format -> float, exactly.
template <class From>
MIXPREC_HOST_DEVICE float to_float(From x) {
  if constexpr (std::is_same_v<From, float>) {
    return x;
  } else if constexpr (detail::hardware_widening<From>) {
#if defined(__CUDA_ARCH__)
    return detail::hardware_widen(x);
#endif
  } else {
    return detail::widen_bits<From>(to_bits(x));
  }
}

// Narrows `x` under stochastic rounding with caller-supplied random bits.
template <class To, class O = overflow_to_infinity>
MIXPREC_HOST_DEVICE To stochastic_round(float x, std::uint32_t random_bits) {
  return from_bits<To>(detail::narrow_bits<To, round_stochastic<>, O>(x, random_bits));
}

// The converter: From -> To under round style R and overflow policy O.
// Stochastic rounding draws its bits from R's generator keyed on (seed,
// stream, index) (stochastic_draw, cast/generator.hpp: one call per 2 * words
// or words elements), so `index` (the element's position in its array) must
// be supplied for it; the
// other styles ignore it. From may be double: it is first rounded to float
// with round-to-odd, which keeps nearest-even and toward-zero exact.
template <class To, class R = round_nearest_even, class O = overflow_to_infinity>
struct converter {
  static_assert(is_format_v<To>, "converter: unsupported target format");
  static_assert(is_round_style_v<R>,
                "converter: round style must be round_nearest_even, round_toward_zero or round_stochastic");
  static_assert(is_overflow_policy_v<O>,
                "converter: overflow policy must be overflow_to_infinity or overflow_saturate");

  R round{};

  template <class From>
  MIXPREC_HOST_DEVICE To operator()(From x, std::uint64_t index = 0) const {
    if constexpr (std::is_same_v<From, double>) {
      if constexpr (std::is_same_v<To, float>) {
        static_assert(!is_round_stochastic_v<R>, "stochastic rounding from double to float is not supported");
        (void)index;
        return std::is_same_v<R, round_toward_zero> ? detail::round_toward_zero_float(x) : static_cast<float>(x);
      } else {
        return (*this)(detail::round_to_odd(x), index);
      }
    } else {
      return convert_float(to_float(x), index);
    }
  }

 private:
  MIXPREC_HOST_DEVICE To convert_float(float f, std::uint64_t index) const {
    if constexpr (std::is_same_v<To, float>) {
      (void)index;
      return f;
    } else if constexpr (is_round_stochastic_v<R>) {
      return from_bits<To>(detail::narrow_bits<To, R, O>(
          f, stochastic_draw<format_traits<To>::total_bits, typename R::generator>(round.seed, round.stream, index)));
    } else if constexpr (detail::hardware_narrowing<To, R, O>) {
      (void)index;
#if defined(__CUDA_ARCH__)
      return detail::hardware_narrow<To, R, O>(f);
#endif
    } else {
      (void)index;
      return from_bits<To>(detail::narrow_bits<To, R, O>(f, 0u));
    }
  }
};

// convert<To>(x): round to nearest even, overflow to infinity.
// convert<To, O>(x, round, index): any round style and overflow policy.
// The overflow policy for a copy of weights stored in format T: formats of
// 8 bits or fewer saturate (their range is so narrow that an overflow to
// inf or NaN would destroy the weight), wider ones follow IEEE 754.
template <class T>
using weight_overflow =
    std::conditional_t<(format_traits<T>::total_bits <= 8), overflow_saturate, overflow_to_infinity>;

template <class To, class O = overflow_to_infinity, class From, class R = round_nearest_even>
MIXPREC_HOST_DEVICE To convert(From x, R round = {}, std::uint64_t index = 0) {
  return converter<To, R, O>{round}(x, index);
}

}  // namespace mixprec
