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
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
  };
  for (const kat& k : cases) {
    const philox_block r = philox4x32_10(k.counter, k.key0, k.key1);
    for (int w = 0; w < 4; ++w) CHECK(r.v[w] == k.expected.v[w]);
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
