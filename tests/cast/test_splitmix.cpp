// SplitMix64 (splitmix_generator) against known answers computed by an
// independent implementation (scripts/reference/splitmix.py, from the
// generator's definition, checked there against Java's SplittableRandom):
// the key of (seed, stream), single calls, the host's batched calls, and
// the draw layout stochastic rounding takes from them.
#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/cast/generator.hpp>

#include "../support/reference_file.hpp"

using namespace mixprec;

namespace {

std::uint64_t hex(const std::string& s) { return std::stoull(s, nullptr, 16); }

struct splitmix_case {
  std::string name;
  std::uint64_t seed, stream, state, gamma;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> calls;  // (c, output)
};

std::vector<splitmix_case> splitmix_cases() {
  std::vector<splitmix_case> out;
  for (const test::reference_case& c : test::read_reference("splitmix_reference.txt")) {
    splitmix_case s;
    s.name = c.name;
    s.seed = hex(c.text("seed"));
    s.stream = hex(c.text("stream"));
    s.state = hex(c.get("key").values.at(0));
    s.gamma = hex(c.get("key").values.at(1));
    for (const test::reference_line* l : c.all("call"))
      s.calls.emplace_back(hex(l->values.at(0)), hex(l->values.at(1)));
    out.push_back(s);
  }
  return out;
}

std::uint64_t output_of(const splitmix_words& w) { return (std::uint64_t{w.v[1]} << 32) | w.v[0]; }
std::uint64_t out_of_key(std::uint64_t seed, std::uint64_t stream) {
  return output_of(splitmix_generator::call(splitmix_generator::key(seed, stream), 0));
}

}  // namespace

TEST_SUITE("cast") {
  TEST_CASE("splitmix_generator gives the reference keys and outputs") {
    const std::vector<splitmix_case> cases = splitmix_cases();
    REQUIRE(cases.size() == 63);
    std::size_t wrong_keys = 0, wrong_calls = 0, calls = 0;
    for (const splitmix_case& c : cases) {
      const splitmix_generator::key_type k = splitmix_generator::key(c.seed, c.stream);
      wrong_keys += (k.state != c.state || k.gamma != c.gamma) ? 1 : 0;
      for (const auto& [index, expected] : c.calls) {
        wrong_calls += output_of(splitmix_generator::call(k, index)) != expected ? 1 : 0;
        ++calls;
      }
    }
    INFO("cases " << cases.size() << ", calls " << calls);
    CHECK(calls == 63 * 15);
    CHECK(wrong_keys == 0);
    CHECK(wrong_calls == 0);
  }

  TEST_CASE("splitmix_generator::calls gives the reference outputs in a batch with the low word first") {
    // Every reference call reached from batches that start 0..9 calls before
    // it (where the index allows), and the batch ends one past it.
    std::size_t wrong = 0, checked = 0;
    for (const splitmix_case& c : splitmix_cases()) {
      const splitmix_generator::key_type k = splitmix_generator::key(c.seed, c.stream);
      for (const auto& [index, expected] : c.calls) {
        for (std::uint64_t before = 0; before < 10 && before <= index; ++before) {
          const std::uint64_t n = before + 1;
          std::uint32_t words[2 * 10 + 2];
          words[2 * n] = 0xdeadbeefu;
          splitmix_generator::calls(k, index - before, n, words);
          wrong += ((std::uint64_t{words[2 * before + 1]} << 32 | words[2 * before]) != expected) ? 1 : 0;
          wrong += words[2 * n] != 0xdeadbeefu ? 1 : 0;  // one past the end untouched
          ++checked;
        }
      }
    }
    INFO("batches checked: " << checked);
    CHECK(wrong == 0);
  }

  TEST_CASE("splitmix_generator::calls equals call for every count and across the 2^32 index boundary") {
    const splitmix_generator::key_type k = splitmix_generator::key(0x0123456789abcdefull, 0xfedcba9876543210ull);
    for (const std::uint64_t first :
         {std::uint64_t{0}, (std::uint64_t{1} << 32) - 40, std::uint64_t{12345}, ~std::uint64_t{0} - 70}) {
      for (const std::uint64_t n : {0, 1, 7, 8, 9, 15, 16, 17, 64, 95, 129}) {
        std::uint32_t words[2 * 129 + 2];
        words[2 * n] = 0xdeadbeefu;
        splitmix_generator::calls(k, first, n, words);
        int wrong = 0;
        for (std::uint64_t c = 0; c < n; ++c) {
          const splitmix_words r = splitmix_generator::call(k, first + c);
          for (int w = 0; w < 2; ++w) wrong += words[2 * c + static_cast<std::uint64_t>(w)] != r.v[w] ? 1 : 0;
        }
        CHECK_MESSAGE(wrong == 0, "first ", first, " n ", n);
        CHECK(words[2 * n] == 0xdeadbeefu);
      }
    }
  }

  TEST_CASE("stochastic rounding takes the reference outputs' 16-bit slices and 32-bit words in order") {
    // A 16-bit format: element 4c + j gets bits [16j, 16j + 16) of output c
    // as the top half of its 32 bits; an 8-bit format: element 2c + j gets
    // bits [32j, 32j + 32).
    std::size_t wrong = 0, checked = 0;
    for (const splitmix_case& c : splitmix_cases()) {
      for (const auto& [index, z] : c.calls) {
        if (index > (~std::uint64_t{0}) / 4) continue;  // the element index would wrap
        for (std::uint64_t j = 0; j < 4; ++j) {
          const std::uint32_t want = static_cast<std::uint32_t>((z >> (16 * j)) & 0xffffu) << 16;
          wrong += stochastic_draw<16, splitmix_generator>(c.seed, c.stream, 4 * index + j) != want ? 1 : 0;
          ++checked;
        }
        for (std::uint64_t j = 0; j < 2; ++j) {
          const std::uint32_t want = static_cast<std::uint32_t>(z >> (32 * j));
          wrong += stochastic_draw<8, splitmix_generator>(c.seed, c.stream, 2 * index + j) != want ? 1 : 0;
          ++checked;
        }
      }
    }
    INFO("draws checked: " << checked);
    CHECK(checked == 63 * 13 * 6);  // the 13 calls per case below 2^62, 4 + 2 draws each
    CHECK(wrong == 0);
  }

  TEST_CASE("splitmix_generator is keyed on every bit of seed and stream and call index but for its aliases") {
    std::set<std::uint64_t> seen;
    auto out = [](std::uint64_t seed, std::uint64_t stream, std::uint64_t c) {
      return output_of(splitmix_generator::call(splitmix_generator::key(seed, stream), c));
    };
    seen.insert(out(0, 0, 0));
    for (int b = 0; b < 64; ++b) {
      seen.insert(out(1ull << b, 0, 0));
      seen.insert(out(0, 1ull << b, 0));
      seen.insert(out(0, 0, 1ull << b));
    }
    // The key depends on seed + 2 * stream * golden (mod 2^64): (seed,
    // stream) and (seed + 2k * golden, stream - k) alias, and stream 2^63 is
    // stream 0. Among these 193 keys that makes three pairs; the other
    // outputs all differ.
    CHECK(out(0, 1ull << 63, 0) == out(0, 0, 0));
    CHECK(out(1ull << 62, 0, 0) == out(0, 1ull << 61, 0));
    CHECK(out(1ull << 63, 0, 0) == out(0, 1ull << 62, 0));
    CHECK(seen.size() == 1 + 3 * 64 - 3);
  }

  TEST_CASE("seeds less than 4000 apart share no stream below 2^51") {
    // (s, t) and (s + d, t - k) alias when d = 2k * golden (mod 2^64): none
    // for odd d; for even d, k = (d / 2) / golden mod 2^63. The inverse of
    // golden mod 2^64 by Newton's iteration (each step doubles the correct
    // low bits).
    const std::uint64_t g = detail::golden_gamma;
    std::uint64_t inv = g;  // correct to 3 bits for odd g
    for (int i = 0; i < 6; ++i) inv *= 2 - g * inv;
    REQUIRE(g * inv == 1);
    std::uint64_t nearest = ~std::uint64_t{0};
    for (std::uint64_t d = 2; d < 4000; d += 2) {
      const std::uint64_t k = ((d / 2) * inv) & ((std::uint64_t{1} << 63) - 1);
      nearest = std::min(nearest, std::min(k, (std::uint64_t{1} << 63) - k));
    }
    INFO("smallest stream shift that aliases two seeds less than 4000 apart: " << nearest);
    CHECK(nearest >= (std::uint64_t{1} << 51));
    // And the aliasing itself, as the definition says.
    const std::uint64_t shift = (1000 * inv) & ((std::uint64_t{1} << 63) - 1);
    CHECK(out_of_key(7, shift + 5) == out_of_key(7 + 2000, 5));
  }

  TEST_CASE("every split gamma is odd and has at least 24 bit changes") {
    for (std::uint64_t stream = 0; stream < 100000; ++stream) {
      const std::uint64_t g = splitmix_generator::key(stream * 0x2545f4914f6cdd1dull, stream).gamma;
      REQUIRE((g & 1u) == 1u);
      REQUIRE(detail::popcount64(g ^ (g >> 1)) >= 24);
    }
    CHECK(detail::popcount64(0) == 0);
    CHECK(detail::popcount64(~std::uint64_t{0}) == 64);
    CHECK(detail::popcount64(0x8000000000000001ull) == 2);
  }
}
