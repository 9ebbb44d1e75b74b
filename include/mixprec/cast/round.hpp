// Rounding and overflow policies of the converter.
//
// Rounding: round-to-nearest-even (IEEE 754 default), round-toward-zero, and
// stochastic rounding (round up with probability equal to the distance from
// the lower neighbour, in units of the gap; unbiased in expectation). The
// random bits come from a counter-based generator keyed on (seed, stream,
// element index), so the result never depends on launch shape or backend:
// round_stochastic<G>, G a generator policy (cast/generator.hpp), by default
// SplitMix64; round_stochastic<philox_generator> gives Philox-4x32-10's bits.
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

#include <mixprec/cast/generator.hpp>

namespace mixprec {

struct round_nearest_even {};
struct round_toward_zero {};

template <class G = default_generator>
struct round_stochastic {
  static_assert(is_generator_v<G>,
                "round_stochastic<G>: G must be a generator policy (cast/generator.hpp), "
                "e.g. splitmix_generator or philox_generator");
  using generator = G;
  std::uint64_t seed = 0;    // key of the generator
  std::uint64_t stream = 0;  // e.g. the training step, so each step draws fresh bits
};
// round_stochastic{seed, stream}: the default generator.
round_stochastic()->round_stochastic<>;
round_stochastic(std::uint64_t)->round_stochastic<>;
round_stochastic(std::uint64_t, std::uint64_t)->round_stochastic<>;

template <class R>
inline constexpr bool is_round_stochastic_v = false;
template <class G>
inline constexpr bool is_round_stochastic_v<round_stochastic<G>> = true;

struct overflow_to_infinity {};
struct overflow_saturate {};

template <class R>
inline constexpr bool is_round_style_v =
    std::is_same_v<R, round_nearest_even> || std::is_same_v<R, round_toward_zero> || is_round_stochastic_v<R>;

template <class O>
inline constexpr bool is_overflow_policy_v =
    std::is_same_v<O, overflow_to_infinity> || std::is_same_v<O, overflow_saturate>;

}  // namespace mixprec
