// Counter-based random numbers: SplitMix64 (Steele, Lea, Flood, "Fast
// splittable pseudorandom number generators", OOPSLA 2014; the generator of
// Java's java.util.SplittableRandom), used as a keyed generator.
//
// SplitMix64 hashes a Weyl sequence: output c of a generator with state s
// and odd increment gamma is mix64(s + (c + 1) * gamma), with mix64 the
// 64-bit finalizer of Stafford's variant 13 (two multiplies and three
// xor-shifts per 64 bits). Output c is a pure function of (s, gamma, c), so
// the generator is counter-based. Its authors give each independent stream a
// state and a gamma of its own ("split"): stream k of a seed is the k-th
// split of a generator started at the seed with the golden gamma,
//   base  = seed + (2k + 1) * 0x9e3779b97f4a7c15
//   state = mix64(base), gamma = mix_gamma(base + 0x9e3779b97f4a7c15),
// exactly what new SplittableRandom(seed) gives after k earlier split()
// calls, so draw c of stream k is that split's c-th nextLong()
// (scripts/reference/splitmix.py checks it against Java's class).
// mixprec keys it as: stream = (seed, stream), counter = the call index.
//
// Why it is here: per random bit it costs a fraction of Philox-4x32-10 on
// the host's vector units (docs/performance.md: two 64-bit multiplies per
// 64 bits against ten rounds of 32x32->64 products per 128), and its
// authors report that it passes TestU01's BigCrush. Caveats, from the
// same literature: it is not cryptographic (two outputs reveal the state),
// and two streams whose (state, gamma) pairs are related (equal gammas and
// starts a multiple of gamma apart) overlap; derived from the seed and
// stream through mix64 and mix_gamma as above, that needs a 64-bit
// coincidence. The stochastic-rounding tests (tests/cast) test it as they
// test Philox.
#pragma once

#include <cstdint>
#include <cstring>

#include <mixprec/core/config.hpp>

namespace mixprec {

struct splitmix_words {
  std::uint32_t v[2];  // the low 32 bits of the 64-bit output, then the high
};

namespace detail {

inline constexpr std::uint64_t golden_gamma = 0x9e3779b97f4a7c15ull;

// Stafford's variant 13 finalizer: SplitMix64's output function.
MIXPREC_HOST_DEVICE std::uint64_t splitmix_mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

MIXPREC_HOST_DEVICE int popcount64(std::uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<int>((x * 0x0101010101010101ull) >> 56);
}

// A split stream's gamma: MurmurHash3's 64-bit finalizer, made odd; a gamma
// with fewer than 24 changes between neighbouring bits (a sparse or
// run-heavy one, which its authors found weaker) is flipped in every
// other bit.
MIXPREC_HOST_DEVICE std::uint64_t splitmix_gamma(std::uint64_t z) {
  z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
  z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
  z = (z ^ (z >> 33)) | 1ull;
  return popcount64(z ^ (z >> 1)) < 24 ? z ^ 0xaaaaaaaaaaaaaaaaull : z;
}

}  // namespace detail

// The generator policy (cast/generator.hpp): a call gives 64 bits as two
// 32-bit words.
struct splitmix_generator {
  static constexpr const char* name = "splitmix64";
  static constexpr int words = 2;
  using block = splitmix_words;
  struct key_type {
    std::uint64_t state, gamma;
  };
  MIXPREC_HOST_DEVICE static key_type key(std::uint64_t seed, std::uint64_t stream) {
    const std::uint64_t base = seed + (2 * stream + 1) * detail::golden_gamma;
    return {detail::splitmix_mix64(base), detail::splitmix_gamma(base + detail::golden_gamma)};
  }
  MIXPREC_HOST_DEVICE static block call(const key_type& k, std::uint64_t c) {
    const std::uint64_t z = detail::splitmix_mix64(k.state + (c + 1) * k.gamma);
    return block{{static_cast<std::uint32_t>(z), static_cast<std::uint32_t>(z >> 32)}};
  }
  // Calls [first, first + n) (host): call c's two words, low first, each in
  // the host's byte order, at byte 8 * (c - first) of `out`. The loop
  // carries the Weyl state, so it is an add, two multiplies and three
  // xor-shifts per call, and GCC vectorises it (8 calls per AVX-512 vector).
  static void calls(const key_type& k, std::uint64_t first, std::uint64_t n, void* out) {
    unsigned char* bytes = static_cast<unsigned char*>(out);
    const std::uint64_t gamma = k.gamma;
    std::uint64_t x = k.state + (first + 1) * gamma;
    for (std::uint64_t j = 0; j < n; ++j) {
      std::uint64_t z = detail::splitmix_mix64(x);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
      z = (z << 32) | (z >> 32);  // the low word first in memory
#endif
      std::memcpy(bytes + 8 * j, &z, sizeof z);
      x += gamma;
    }
  }
};

}  // namespace mixprec
