// The generator policy of stochastic rounding: which counter-based generator
// gives the random bits, and how one call's bits are shared among elements.
//
// A generator policy G is a type with
//   G::name                       its name ("splitmix64", "philox4x32_10")
//   G::words                      the 32-bit words one call gives (1, 2 or 4)
//   G::block                      a struct holding them: std::uint32_t v[G::words]
//   G::key_type, G::key(seed, stream)       what a (seed, stream) pair becomes (host and device)
//   G::call(key, c)               call c's words (host and device)
//   G::calls(key, first, n, out)  host: calls [first, first + n), each call's
//                                 words in order and in the host's byte order,
//                                 at byte 4 * words * (c - first) of out
// Every call is a pure function of (seed, stream, c): the bits never depend
// on backend, thread count or launch shape.
//
// Stochastic rounding of element i draws 16 bits for a 16-bit format (half,
// bfloat16), the top half of the 32 it compares against, and 32 bits for an
// 8-bit format. One call serves 2 * words elements of a 16-bit format
// (element i: call i / (2 * words), its 16-bit slice i % (2 * words), the low
// half of word k being slice 2k) or `words` elements of an 8-bit format
// (call i / words, word i % words). So a loop over consecutive elements makes
// one call per 2 * words (or words) of them, and on a little-endian host the
// words G::calls stores are the elements' draws in order.
//
// splitmix_generator (cast/splitmix.hpp) is the default; philox_generator
// (cast/philox.hpp, Philox-4x32-10) gives the bits of mixprec's earlier
// versions. round_stochastic<G>, round_model_stochastic<G> and a component's
// `using generator = G` choose it (docs/design.md).
#pragma once

#include <cstdint>
#include <type_traits>

#include <mixprec/cast/philox.hpp>
#include <mixprec/cast/splitmix.hpp>
#include <mixprec/core/config.hpp>

namespace mixprec {

using default_generator = splitmix_generator;

namespace detail {
template <class G, class = void>
struct is_generator_impl : std::false_type {};
template <class G>
struct is_generator_impl<G,
                         std::void_t<decltype(G::name), decltype(G::words), typename G::block, typename G::key_type,
                                     decltype(G::key(std::uint64_t{}, std::uint64_t{})),
                                     decltype(G::call(std::declval<const typename G::key_type&>(), std::uint64_t{}))>>
    : std::bool_constant<(G::words == 1 || G::words == 2 || G::words == 4) &&
                         sizeof(typename G::block) == 4 * static_cast<std::size_t>(G::words)> {};
}  // namespace detail

template <class G>
inline constexpr bool is_generator_v = detail::is_generator_impl<G>::value;

// How many elements' draws one call of G gives: 16-bit draws for 16-bit
// formats, 32-bit draws for 8-bit formats.
template <class G, int TotalBits>
inline constexpr std::uint64_t draws_per_call = TotalBits == 16 ? 2 * G::words : G::words;

// The room a buffer of n draws needs beyond n: a run of elements may start
// and end inside a call (at most 8 draws a call).
inline constexpr std::uint64_t draw_slack = 16;

namespace detail {
// Word k of a call's block by selects, not by indexing: GCC does not
// vectorise a loop that indexes a local array with a variable.
template <class Block>
MIXPREC_HOST_DEVICE std::uint32_t word_of(const Block& b, std::uint32_t k) {
  constexpr std::size_t words = sizeof(b.v) / sizeof(b.v[0]);
  if constexpr (words == 1) {
    (void)k;
    return b.v[0];
  } else if constexpr (words == 2) {
    return (k & 1u) ? b.v[1] : b.v[0];
  } else {
    const std::uint32_t low = (k & 1u) ? b.v[1] : b.v[0];
    const std::uint32_t high = (k & 1u) ? b.v[3] : b.v[2];
    return (k & 2u) ? high : low;
  }
}
}  // namespace detail

// The bits stochastic rounding of element `index` to a format of TotalBits
// compares against, from a key of G made once for (seed, stream).
template <int TotalBits, class G>
MIXPREC_HOST_DEVICE std::uint32_t keyed_draw(const typename G::key_type& key, std::uint64_t index) {
  static_assert(is_generator_v<G>, "keyed_draw: G is not a generator policy (cast/generator.hpp)");
  constexpr std::uint64_t per = draws_per_call<G, TotalBits>;
  const typename G::block b = G::call(key, index / per);
  if constexpr (TotalBits == 16) {
    const std::uint32_t word = detail::word_of(b, static_cast<std::uint32_t>(index % per) >> 1);
    return ((index & 1u) ? word >> 16 : word & 0xffffu) << 16;
  } else {
    return detail::word_of(b, static_cast<std::uint32_t>(index % per));
  }
}

// The same for element `index` of `stream` under `seed`.
template <int TotalBits, class G = default_generator>
MIXPREC_HOST_DEVICE std::uint32_t stochastic_draw(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  return keyed_draw<TotalBits, G>(G::key(seed, stream), index);
}

// The draws of G for elements [first, first + n) of `stream` under `seed`
// (host), D = std::uint16_t (16-bit draws) or std::uint32_t (32-bit): the
// calls that cover them are made at once into `out`, which has room for
// n + draw_slack draws. Returns where element first's draw is.
template <class G, class D>
const D* fill_draws(std::uint64_t seed, std::uint64_t stream, std::uint64_t first, std::uint64_t n, D* out) {
  static_assert(std::is_same_v<D, std::uint16_t> || std::is_same_v<D, std::uint32_t>,
                "fill_draws: 16- or 32-bit draws");
  static_assert(2 * (draws_per_call<G, 16> - 1) <= draw_slack, "fill_draws: draw_slack is too small for G");
  constexpr std::uint64_t per = draws_per_call < G, std::is_same_v<D, std::uint16_t> ? 16 : 8 > ;
  const std::uint64_t c0 = first / per, c1 = (first + n + per - 1) / per;
  const typename G::key_type key = G::key(seed, stream);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  // A word's low half first is its memory order here, so the calls' words
  // are the draws in order.
  G::calls(key, c0, c1 - c0, out);
#else
  for (std::uint64_t c = c0; c < c1; ++c) {
    const typename G::block b = G::call(key, c);
    D* o = out + (c - c0) * per;
    for (int k = 0; k < G::words; ++k) {
      if constexpr (std::is_same_v<D, std::uint16_t>) {
        o[2 * k] = static_cast<std::uint16_t>(b.v[k]);
        o[2 * k + 1] = static_cast<std::uint16_t>(b.v[k] >> 16);
      } else {
        o[k] = b.v[k];
      }
    }
  }
#endif
  return out + (first - c0 * per);
}

}  // namespace mixprec
