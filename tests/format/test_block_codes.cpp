// The host's table-driven searches for the nearest code
// (format/block_codes.hpp) against what defines them: for the dynamic map,
// the binary search the device runs, at every map value and its neighbours
// (where the code at or below a value changes), at the midpoints between
// neighbouring map values and their neighbours (where the nearest code
// changes), at both ends and the middle of every bucket of the table, and
// at the specials; for the host's e4m3 arithmetic, the converter (convert<fp8_e4m3,
// overflow_saturate>) at every e4m3 value, every midpoint and their
// neighbours, the bucket probes, and past 448. (The map values themselves are checked against the independent
// reference in tests/optim/test_block_quantized.cpp.) And the host's
// whole-block decoding (decode_n: in registers with AVX-512) against the
// map entry times the scale, for every code at every position of a vector,
// and whole-block encoding (encode_n) against the binary search.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/format/block_codes.hpp>

using namespace mixprec;

namespace {

template <bool Signed>
std::vector<float> block_code_probes() {
  std::vector<float> xs = {0.0f,
                           -0.0f,
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN(),
                           std::numeric_limits<float>::denorm_min(),
                           -std::numeric_limits<float>::denorm_min()};
  const float* map = detail::dynamic_map<Signed>();
  const float inf = std::numeric_limits<float>::infinity();
  for (int k = 0; k < 256; ++k) {
    xs.push_back(map[k]);
    xs.push_back(std::nextafter(map[k], -inf));
    xs.push_back(std::nextafter(map[k], inf));
    if (k < 255) {
      const float mid = static_cast<float>((static_cast<double>(map[k]) + map[k + 1]) / 2);
      xs.push_back(mid);
      xs.push_back(std::nextafter(mid, -inf));
      xs.push_back(std::nextafter(mid, inf));
    }
  }
  for (std::uint32_t key = 0; key < 65536; ++key)
    for (std::uint32_t low : {0x0000u, 0x8000u, 0xffffu}) xs.push_back(detail::bit_cast<float>((key << 16) | low));
  return xs;
}

template <bool Signed>
int index_mismatches() {
  int bad = 0;
  for (const float x : block_code_probes<Signed>())
    bad += detail::nearest_dynamic_code_by_table(x, detail::dynamic_code_search_of<Signed>()) ==
                   detail::nearest_dynamic_code_by_search<Signed>(x)
               ? 0
               : 1;
  return bad;
}

std::vector<float> e4m3_code_probes() {
  std::vector<float> xs = block_code_probes<true>();
  const float inf = std::numeric_limits<float>::infinity();
  for (std::uint32_t c = 0; c < 0x7f; ++c) {
    const float v = detail::widen_bits<fp8_e4m3>(static_cast<std::uint8_t>(c));
    const float mid = (v + detail::widen_bits<fp8_e4m3>(static_cast<std::uint8_t>(c + 1))) / 2.0f;
    for (const float y : {v, mid}) {
      for (const float z : {y, std::nextafter(y, -inf), std::nextafter(y, inf)}) {
        xs.push_back(z);
        xs.push_back(-z);
      }
    }
  }
  for (const float big : {449.0f, 463.9f, 464.0f, 480.0f, 1e30f}) {
    xs.push_back(big);
    xs.push_back(-big);
  }
  // And a sweep over every float, in steps of 251 patterns.
  for (std::uint64_t b = 0; b < (1ull << 32); b += 251)
    xs.push_back(detail::bit_cast<float>(static_cast<std::uint32_t>(b)));
  return xs;
}

int e4m3_mismatches() {
  int bad = 0;
  for (const float x : e4m3_code_probes())
    bad += detail::e4m3_code_by_arithmetic(x) == to_bits(convert<fp8_e4m3, overflow_saturate>(x)) ? 0 : 1;
  return bad;
}

// Whole blocks of dynamic-map codes (encode_n: the table, in a loop that
// vectorises) against the binary search: the probes above, divided by three
// scales, in blocks of 256, 255, 17, 16 and 1 values (the vector loop and
// its tail).
template <format_id F>
int encode_mismatches() {
  constexpr bool Signed = F == format_id::dynamic8s;
  const std::vector<float> xs = block_code_probes<Signed>();
  const std::uint32_t lengths[] = {256, 255, 17, 16, 1};
  int bad = 0;
  for (const float scale : {1.0f, 0.37f, 2.5f}) {
    std::size_t at = 0;
    for (std::size_t b = 0; at < xs.size(); ++b) {
      const std::uint32_t n = static_cast<std::uint32_t>(std::min<std::size_t>(lengths[b % 5], xs.size() - at));
      std::vector<std::uint8_t> out(n + 1, 0xa5);
      detail::block_code<F>::encode_n(xs.data() + at, n, scale, out.data());
      for (std::uint32_t j = 0; j < n; ++j)
        bad += out[j] == detail::block_code<F>::kept(detail::nearest_dynamic_code_by_search<Signed>(xs[at + j] / scale))
                   ? 0
                   : 1;
      bad += out[n] == 0xa5 ? 0 : 1;  // nothing past n
      at += n;
    }
  }
  return bad;
}

// Every code, in a scrambled order over 288 positions (so the codes meet
// different lanes), n from 0 to all of them (the vector loops' tails
// included: 16 codes at a time with AVX-512, 64 with VBMI), at scales that
// make subnormal, normal and large products, and 0. `value` is what code c
// stands for: the map entry, or the e4m3 value by the converter.
template <format_id F, class Value>
int decode_mismatches(Value value) {
  std::vector<std::uint8_t> codes(272 + 16);
  for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<std::uint8_t>((i * 37 + i / 256) & 0xff);
  int bad = 0;
  for (const float scale : {0.0f, 1.0f, 3.0e-39f, 0.37f, 1.0e30f, 3.0e38f}) {
    for (std::uint32_t n : {0u, 1u, 15u, 16u, 17u, 63u, 64u, 65u, 127u, 128u, 192u, 255u, 256u, 272u, 288u}) {
      std::vector<float> out(n + 1, -7.0f);
      detail::block_code<F>::decode_n(codes.data(), n, scale, out.data());
      for (std::uint32_t j = 0; j < n; ++j) {
        const float want = value(codes[j]) * scale;
        bad += std::memcmp(&out[j], &want, sizeof want) == 0 ? 0 : 1;
      }
      bad += out[n] == -7.0f ? 0 : 1;  // nothing past n
    }
  }
  return bad;
}

}  // namespace

TEST_SUITE("format") {
  TEST_CASE("decoding a block of dynamic-map codes gives each code's map value times the scale") {
    CHECK(decode_mismatches<format_id::dynamic8s>([](std::uint8_t c) { return detail::dynamic_map<true>()[c]; }) == 0);
    CHECK(decode_mismatches<format_id::dynamic8u>([](std::uint8_t c) { return detail::dynamic_map<false>()[c]; }) == 0);
#if defined(__AVX512F__) && defined(__x86_64__) && !defined(__CUDACC__) && !defined(MIXPREC_NO_HOST_AVX512) && \
    (defined(__GNUC__) || defined(__clang__)) && defined(__has_builtin)
#if !defined(MIXPREC_HOST_AVX512)
#error "compiled for AVX-512 but block_code::decode_n does not look its map up in registers"
#endif
#if defined(__AVX512VBMI__) && defined(__AVX512BW__) && !defined(MIXPREC_HOST_AVX512_VBMI)
#error "compiled for AVX-512 VBMI but block_code::decode_n does not look its codes up by byte planes"
#endif
#endif
  }
  TEST_CASE("decoding a block of e4m3 codes gives each code's value times the scale") {
    const auto e4m3 = [](std::uint8_t c) { return to_float(from_bits<fp8_e4m3>(c)); };
    CHECK(decode_mismatches<format_id::e4m3>(e4m3) == 0);
    CHECK(decode_mismatches<format_id::e4m3u>(e4m3) == 0);
  }
  TEST_CASE("encoding a block of dynamic-map codes gives each value's nearest code") {
    CHECK(encode_mismatches<format_id::dynamic8s>() == 0);
    CHECK(encode_mismatches<format_id::dynamic8u>() == 0);
  }
  TEST_CASE("the host's code table finds the same dynamic-map codes as the binary search") {
    CHECK(index_mismatches<true>() == 0);
    CHECK(index_mismatches<false>() == 0);
  }
  TEST_CASE("the host's e4m3 encoder rounds as the converter does") { CHECK(e4m3_mismatches() == 0); }
}
