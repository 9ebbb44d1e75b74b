// format_traits against the standards' definitions: IEEE 754 binary16 and
// binary32, bfloat16, OCP FP8 E4M3/E5M2. Expected values are computed here
// from the field layouts (support/formats.hpp), and the special patterns are
// decoded with CUDA's own conversion functions.
#include <cmath>
#include <limits>
#include <string>

#include <doctest/doctest.h>

#include <mixprec/format/all.hpp>

#include "../support/formats.hpp"

using namespace mixprec;

namespace {

// Decoding through CUDA's headers, independent of mixprec's converter.
float cuda_to_float(half x) { return __half2float(x); }
float cuda_to_float(bfloat16 x) { return __bfloat162float(x); }
float cuda_to_float(fp8_e4m3 x) { return static_cast<float>(x); }
float cuda_to_float(fp8_e5m2 x) { return static_cast<float>(x); }

template <class T>
T cuda_from_bits(unsigned bits) {
  return from_bits<T>(static_cast<bits_t<T>>(bits));
}

}  // namespace

TEST_SUITE("format") {
  TEST_CASE_TEMPLATE("format_traits follow the standard's field layout", T, half, bfloat16, fp8_e4m3, fp8_e5m2) {
    using F = format_traits<T>;
    const test::layout L = test::layout_of<T>();
    CHECK(F::exponent_bits == L.exponent_bits);
    CHECK(F::mantissa_bits == L.mantissa_bits);
    CHECK(F::bias == L.bias);
    CHECK(F::total_bits == 1 + L.exponent_bits + L.mantissa_bits);
    CHECK(sizeof(T) * 8 == static_cast<std::size_t>(F::total_bits));
    CHECK(sizeof(bits_t<T>) == sizeof(T));
    CHECK(F::has_infinity == L.ieee_specials);
    CHECK(F::has_nan);

    // Magnitudes from the definition.
    const test::value_table table = test::finite_values<T>();
    const double largest = table.values.back();
    CHECK(static_cast<double>(F::max()) == largest);
    CHECK(F::max_bits == table.bits.back());
    CHECK(F::lowest() == -F::max());
    CHECK(static_cast<double>(F::min_normal()) == std::ldexp(1.0, 1 - L.bias));
    CHECK(static_cast<double>(F::denorm_min()) == std::ldexp(1.0, 1 - L.bias - L.mantissa_bits));
    CHECK(static_cast<double>(F::denorm_min()) == table.values[1]);
    CHECK(static_cast<double>(F::epsilon()) == std::ldexp(1.0, -L.mantissa_bits));
    CHECK(static_cast<double>(F::unit_roundoff()) == std::ldexp(1.0, -L.mantissa_bits - 1));

    // Special patterns, decoded by CUDA.
    CHECK(cuda_to_float(cuda_from_bits<T>(F::max_bits)) == F::max());
    CHECK(std::isnan(cuda_to_float(cuda_from_bits<T>(F::nan_bits))));
    if constexpr (F::has_infinity) {
      CHECK(cuda_to_float(cuda_from_bits<T>(F::inf_bits)) == std::numeric_limits<float>::infinity());
    } else {
      // E4M3: no pattern decodes to infinity.
      for (unsigned b = 0; b < 256; ++b) CHECK_FALSE(std::isinf(cuda_to_float(cuda_from_bits<T>(b))));
    }
  }

  TEST_CASE("standard constants") {
    CHECK(format_traits<half>::max() == 65504.0f);
    CHECK(format_traits<bfloat16>::max() == std::ldexp(255.0f, 120));  // 0x7f7f: 1.1111111b * 2^127
    CHECK(format_traits<fp8_e4m3>::max() == 448.0f);
    CHECK(format_traits<fp8_e5m2>::max() == 57344.0f);
    CHECK(format_traits<float>::max() == std::numeric_limits<float>::max());
    CHECK(format_traits<float>::min_normal() == std::numeric_limits<float>::min());
    CHECK(format_traits<float>::denorm_min() == std::numeric_limits<float>::denorm_min());
    CHECK(format_traits<float>::epsilon() == std::numeric_limits<float>::epsilon());
    CHECK(std::string(format_traits<bfloat16>::name) == "bfloat16");
    CHECK(std::string(format_name(format_traits<fp8_e4m3>::id)) == "fp8_e4m3");
  }

  TEST_CASE("bits round-trip through the storage types") {
    CHECK(to_bits(__float2half_rn(1.0f)) == 0x3c00);
    CHECK(to_bits(__float2bfloat16_rn(1.0f)) == 0x3f80);
    CHECK(to_bits(fp8_e4m3(1.0f)) == 0x38);
    CHECK(to_bits(fp8_e5m2(1.0f)) == 0x3c);
    CHECK(to_bits(from_bits<half>(0x1234)) == 0x1234);
  }
}
