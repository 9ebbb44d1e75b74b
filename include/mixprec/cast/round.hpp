// Rounding and overflow policies of the converter.
//
// Rounding: round-to-nearest-even (IEEE 754 default), round-toward-zero, and
// stochastic rounding (round up with probability equal to the distance from
// the lower neighbour, in units of the gap; unbiased in expectation). The
// random bits come from the counter-based generator keyed on (seed, stream,
// element index), so the result never depends on launch shape or backend.
//
// Overflow: `to_infinity` follows IEEE 754 (a value beyond the format's range
// rounds to infinity under nearest and stochastic rounding; under
// round-toward-zero a finite value never becomes infinite). E4M3 has no
// infinity: there `to_infinity` produces NaN, as CUDA's __NV_NOSAT does.
// `saturate` clamps every overflow, infinite inputs included, to the largest
// finite value of the same sign, as CUDA's __NV_SATFINITE does. NaN stays NaN
// under every policy.
#pragma once

#include <cstdint>
#include <type_traits>

namespace mixprec {

struct round_nearest_even {};
struct round_toward_zero {};

struct round_stochastic {
  std::uint64_t seed = 0;    // key of the generator
  std::uint64_t stream = 0;  // e.g. the training step, so each step draws fresh bits
};

struct overflow_to_infinity {};
struct overflow_saturate {};

template <class R>
inline constexpr bool is_round_style_v =
    std::is_same_v<R, round_nearest_even> || std::is_same_v<R, round_toward_zero> ||
    std::is_same_v<R, round_stochastic>;

template <class O>
inline constexpr bool is_overflow_policy_v =
    std::is_same_v<O, overflow_to_infinity> || std::is_same_v<O, overflow_saturate>;

}  // namespace mixprec
