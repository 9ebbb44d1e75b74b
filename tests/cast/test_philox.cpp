// Philox-4x32-10 against the known-answer vectors published with Random123
// (Salmon et al., SC 2011; kat_vectors), and the keying mixprec builds on it.
#include <cstdint>
#include <set>

#include <doctest/doctest.h>

#include <mixprec/cast/philox.hpp>

using namespace mixprec;

TEST_SUITE("cast") {
  TEST_CASE("philox4x32_10 matches the Random123 known-answer vectors") {
    struct kat {
      philox_block counter;
      std::uint32_t key0, key1;
      philox_block expected;
    };
    const kat cases[] = {
        {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
        {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
         0xffffffffu,
         0xffffffffu,
         {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
        {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
         0xa4093822u,
         0x299f31d0u,
         {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
    };
    for (const kat& k : cases) {
      const philox_block r = philox4x32_10(k.counter, k.key0, k.key1);
      for (int w = 0; w < 4; ++w) CHECK(r.v[w] == k.expected.v[w]);
    }
  }

  TEST_CASE("random_blocks gives the known-answer blocks inside a batch and in its tail") {
    // Random123's third vector as block `index` of `stream` under `seed`.
    const std::uint64_t seed = (std::uint64_t{0x299f31d0u} << 32) | 0xa4093822u;
    const std::uint64_t index = (std::uint64_t{0x85a308d3u} << 32) | 0x243f6a88u;
    const std::uint64_t stream = (std::uint64_t{0x03707344u} << 32) | 0x13198a2eu;
    const std::uint32_t expected[4] = {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u};
    // Lane 7 of a 32-block batch, and the single block of the scalar tail.
    for (const std::uint64_t before : {std::uint64_t{7}, std::uint64_t{0}}) {
      const std::uint64_t n = before == 7 ? 40 : 1;
      std::uint32_t words[4 * 40];
      random_blocks(seed, stream, index - before, n, words);
      for (int w = 0; w < 4; ++w) CHECK(words[4 * before + static_cast<std::uint64_t>(w)] == expected[w]);
    }
    // The all-ones vector: the last index, reached from a batch that wraps.
    std::uint32_t wrap[4 * 32];
    random_blocks(~std::uint64_t{0}, ~std::uint64_t{0}, ~std::uint64_t{0} - 3, 32, wrap);
    const std::uint32_t ones[4] = {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu};
    for (int w = 0; w < 4; ++w) CHECK(wrap[12 + w] == ones[w]);
  }

  TEST_CASE("random_blocks equals random_block for every count and across the 2^32 index boundary") {
    const std::uint64_t seed = 0x0123456789abcdefull, stream = 0xfedcba9876543210ull;
    for (const std::uint64_t first : {std::uint64_t{0}, (std::uint64_t{1} << 32) - 40, std::uint64_t{12345}}) {
      for (const std::uint64_t n : {0, 1, 31, 32, 33, 64, 95, 129}) {
        std::uint32_t words[4 * 129 + 4];
        words[4 * n] = 0xdeadbeefu;  // one past the end stays untouched
        random_blocks(seed, stream, first, n, words);
        int wrong = 0;
        for (std::uint64_t b = 0; b < n; ++b) {
          const philox_block r = random_block(seed, stream, first + b);
          for (int w = 0; w < 4; ++w) wrong += words[4 * b + static_cast<std::uint64_t>(w)] != r.v[w] ? 1 : 0;
        }
        CHECK_MESSAGE(wrong == 0, "first ", first, " n ", n);
        CHECK(words[4 * n] == 0xdeadbeefu);
      }
    }
  }

  TEST_CASE("random_bits is keyed on seed and stream and the full 64-bit index") {
    const std::uint64_t big = (1ull << 32) + 5;
    CHECK(random_bits(1, 2, 3) == random_bits(1, 2, 3));
    // Each of the 64 bits of seed, stream and index changes the output.
    std::set<std::uint32_t> seen;
    seen.insert(random_bits(0, 0, 0));
    for (int b = 0; b < 64; ++b) {
      seen.insert(random_bits(1ull << b, 0, 0));
      seen.insert(random_bits(0, 1ull << b, 0));
      seen.insert(random_bits(0, 0, 1ull << b));
    }
    CHECK(seen.size() == 1 + 3 * 64);
    CHECK(random_bits(9, 9, big) != random_bits(9, 9, 5));
  }

  TEST_CASE("uniform_from_bits covers the unit interval with 24-bit resolution") {
    CHECK(uniform_from_bits(0) == 0.0f);
    CHECK(uniform_from_bits(0xffffffffu) == 1.0f - 5.9604644775390625e-08f);
    CHECK(uniform_from_bits(0x80000000u) == 0.5f);
  }
}
