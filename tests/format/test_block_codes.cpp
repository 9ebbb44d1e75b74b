// The host's table-driven search for the nearest dynamic-map code
// (format/block_codes.hpp) against the binary search that defines it (and
// that the device runs): at every map value and the float just below it
// (where the code at or below a value changes), at both ends and the middle
// of every bucket of the table, at the midpoints between neighbouring map
// values and their neighbours (where the nearest code changes), and at the
// specials. (The map values themselves are checked against the independent
// reference in tests/optim/test_block_quantized.cpp.)
#include <cmath>
#include <cstdint>
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
    bad += detail::nearest_dynamic_code_by_index<Signed>(x, detail::dynamic_code_index_of<Signed>()) ==
                   detail::nearest_dynamic_code_by_search<Signed>(x)
               ? 0
               : 1;
  return bad;
}

}  // namespace

TEST_SUITE("format") {
  TEST_CASE("the host's code table finds the same dynamic-map codes as the binary search") {
    CHECK(index_mismatches<true>() == 0);
    CHECK(index_mismatches<false>() == 0);
  }
}
