// The converter against independent references: CUDA's own conversion
// functions for widening, and a table-search reference (exact arithmetic on
// the standard's value set) for round-to-nearest-even and round-toward-zero
// under both overflow policies, at every rounding boundary of each format.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/cast/all.hpp>

#include "../support/device.hpp"
#include "../support/formats.hpp"
#include "../support/reference_rounding.hpp"

using namespace mixprec;

namespace {

float cuda_widen(half x) { return __half2float(x); }
float cuda_widen(bfloat16 x) { return __bfloat162float(x); }
float cuda_widen(fp8_e4m3 x) { return static_cast<float>(x); }
float cuda_widen(fp8_e5m2 x) { return static_cast<float>(x); }

// The same half, bit for bit. A NaN may differ in sign and payload on the
// GPU (its conversion instructions); on the host it is the canonical 0x7fff.
bool same_half(half a, half b) {
  const std::uint32_t x = to_bits(a), y = to_bits(b);
#if defined(MIXPREC_BACKEND_CUDA)
  if ((x & 0x7fffu) > 0x7c00u && (y & 0x7fffu) > 0x7c00u) return true;
#endif
  return x == y;
}

template <class T, class O, class R>
std::uint32_t ours(float x, R r) {
  return test::bits_of(convert<T, O>(x, r));
}

}  // namespace

TEST_SUITE("cast") {
  TEST_CASE_TEMPLATE("every value widens to float exactly and narrows back unchanged", T, half, bfloat16, fp8_e4m3,
                     fp8_e5m2) {
    using F = format_traits<T>;
    const test::layout L = test::layout_of<T>();
    const std::uint32_t count = 1u << F::total_bits;
    std::uint32_t wrong_widen = 0, wrong_back = 0;
    for (std::uint32_t b = 0; b < count; ++b) {
      const T x = from_bits<T>(static_cast<bits_t<T>>(b));
      const float ours_f = to_float(x);
      const double defined = test::decode(L, b);
      if (std::isnan(defined)) {
        // A NaN keeps its sign and payload: bfloat16's bits as they are, the
        // other formats' quieted (as the host's F16C instruction does for
        // half: test_exhaustive.cpp).
        const std::uint32_t payload = b & ((1u << F::mantissa_bits) - 1u);
        const std::uint32_t nan = F::exponent_bits == 8 ? b << 16
                                                        : ((b >> (F::total_bits - 1)) << 31) | 0x7fc00000u |
                                                              (payload << (23 - F::mantissa_bits));
        wrong_widen += !std::isnan(ours_f) || !std::isnan(cuda_widen(x)) || test::bits_of(ours_f) != nan;
        wrong_back += !std::isnan(to_float(convert<T>(ours_f)));
        continue;
      }
      wrong_widen += static_cast<double>(ours_f) != defined || ours_f != cuda_widen(x) ||
                     std::signbit(ours_f) != std::signbit(defined);
      wrong_back += test::bits_of(convert<T>(ours_f)) != b;
      wrong_back += test::bits_of(convert<T>(ours_f, round_toward_zero{})) != b;
      wrong_back += test::bits_of(convert<T>(ours_f, round_stochastic{7, 3}, b)) != b;
      if (std::isfinite(ours_f)) wrong_back += test::bits_of(convert<T, overflow_saturate>(ours_f)) != b;
    }
    CHECK(wrong_widen == 0);
    CHECK(wrong_back == 0);
  }

  TEST_CASE_TEMPLATE("nearest-even and toward-zero match the reference at every rounding boundary", T, half, bfloat16,
                     fp8_e4m3, fp8_e5m2) {
    using test::ref_overflow;
    using test::ref_round;
    std::vector<float> inputs = test::boundary_inputs<T>();
    std::mt19937 gen(1234);
    for (int k = 0; k < 200000; ++k) {
      const float f = test::float_from_bits(static_cast<std::uint32_t>(gen()));
      if (!std::isnan(f)) inputs.push_back(f);
    }
    std::size_t wrong[4] = {0, 0, 0, 0};
    for (float x : inputs) {
      wrong[0] += ours<T, overflow_to_infinity>(x, round_nearest_even{}) !=
                  test::reference_round<T>(x, ref_round::nearest_even, ref_overflow::to_infinity);
      wrong[1] += ours<T, overflow_saturate>(x, round_nearest_even{}) !=
                  test::reference_round<T>(x, ref_round::nearest_even, ref_overflow::saturate);
      // IEEE 754: toward zero never turns a finite value into infinity.
      const ref_overflow rz_ov = std::isinf(x) ? ref_overflow::to_infinity : ref_overflow::saturate;
      wrong[2] += ours<T, overflow_to_infinity>(x, round_toward_zero{}) !=
                  test::reference_round<T>(x, ref_round::toward_zero, rz_ov);
      wrong[3] += ours<T, overflow_saturate>(x, round_toward_zero{}) !=
                  test::reference_round<T>(x, ref_round::toward_zero, ref_overflow::saturate);
    }
    INFO("inputs: " << inputs.size());
    CHECK(wrong[0] == 0);
    CHECK(wrong[1] == 0);
    CHECK(wrong[2] == 0);
    CHECK(wrong[3] == 0);
  }

  TEST_CASE("toward zero agrees with CUDA's __float2half_rz and __float2bfloat16_rz") {
    std::mt19937 gen(99);
    std::size_t wrong = 0;
    for (int k = 0; k < 1000000; ++k) {
      const float x = test::float_from_bits(static_cast<std::uint32_t>(gen()));
      if (std::isnan(x)) continue;
      wrong += test::bits_of(convert<half>(x, round_toward_zero{})) != test::bits_of(__float2half_rz(x));
      wrong += test::bits_of(convert<bfloat16>(x, round_toward_zero{})) != test::bits_of(__float2bfloat16_rz(x));
    }
    CHECK(wrong == 0);
  }

  TEST_CASE("NaN stays NaN and infinity and overflow follow the policy") {
    const float nan = std::nanf(""), inf = INFINITY, big = 1e30f;
    const round_stochastic sr{1, 2};
    SUBCASE("NaN under every style and policy") {
      CHECK(std::isnan(to_float(convert<half>(nan))));
      CHECK(std::isnan(to_float(convert<half, overflow_saturate>(-nan, round_toward_zero{}))));
      CHECK(std::isnan(to_float(convert<bfloat16, overflow_saturate>(nan, sr, 5))));
      CHECK(std::isnan(to_float(convert<fp8_e4m3, overflow_saturate>(nan))));
      CHECK(std::isnan(to_float(convert<fp8_e5m2>(nan, sr, 9))));
    }
    SUBCASE("to_infinity: overflow and inf give inf (E4M3: NaN)") {
      CHECK(to_float(convert<half>(big)) == inf);
      CHECK(to_float(convert<half>(-inf)) == -inf);
      CHECK(to_float(convert<bfloat16>(3.4e38f)) == inf);
      CHECK(to_float(convert<fp8_e5m2>(-big, sr, 4)) == -inf);
      CHECK(std::isnan(to_float(convert<fp8_e4m3>(500.0f))));
      CHECK(std::isnan(to_float(convert<fp8_e4m3>(inf))));
      CHECK(to_float(convert<fp8_e4m3>(464.0f)) == 448.0f);  // the tie rounds to even 448
    }
    SUBCASE("toward zero keeps finite values finite") {
      CHECK(to_float(convert<half>(big, round_toward_zero{})) == 65504.0f);
      CHECK(to_float(convert<half>(inf, round_toward_zero{})) == inf);
    }
    SUBCASE("saturate: overflow and inf give the largest finite value") {
      CHECK(to_float(convert<half, overflow_saturate>(inf)) == 65504.0f);
      CHECK(to_float(convert<half, overflow_saturate>(-big, sr, 1)) == -65504.0f);
      CHECK(to_float(convert<bfloat16, overflow_saturate>(inf)) == format_traits<bfloat16>::max());
      CHECK(to_float(convert<fp8_e4m3, overflow_saturate>(-inf)) == -448.0f);
      CHECK(to_float(convert<fp8_e5m2, overflow_saturate>(1e6f)) == 57344.0f);
    }
  }

  TEST_CASE("converting between narrow formats rounds once") {
    // Widening is exact, so half -> bfloat16/fp8 must equal CUDA's float -> target.
    for (unsigned b = 0; b < 0x7c00; b += 7) {
      const half h = from_bits<half>(static_cast<std::uint16_t>(b));
      CHECK(test::bits_of(convert<bfloat16>(h)) == test::bits_of(__float2bfloat16_rn(__half2float(h))));
      CHECK(test::bits_of(convert<fp8_e4m3, overflow_saturate>(h)) ==
            __nv_cvt_float_to_fp8(__half2float(h), __NV_SATFINITE, __NV_E4M3));
    }
  }

  TEST_CASE_TEMPLATE("range conversion on the device matches the scalar converter", T, half, bfloat16, fp8_e4m3,
                     fp8_e5m2) {
    std::mt19937 gen(5);
    std::normal_distribution<float> dist(0.0f, 100.0f);
    std::vector<float> src(100003);
    for (float& v : src) v = dist(gen);
    auto d_src = test::to_device(src);
    thrust::device_vector<T> d_nearest(src.size()), d_stochastic(src.size()), d_tail(src.size() - 1000);
    const round_stochastic sr{42, 7};
    convert_n(test::ptr(d_src), src.size(), test::ptr(d_nearest));
    convert_n<T, overflow_saturate>(test::ptr(d_src), src.size(), test::ptr(d_stochastic), sr);
    // A piece converted with its offset gets the same stochastic bits.
    convert_n<T, overflow_saturate>(test::ptr(d_src) + 1000, src.size() - 1000, test::ptr(d_tail), sr, stream{}, 1000);
    const auto nearest = test::to_host(d_nearest), stochastic = test::to_host(d_stochastic),
               tail = test::to_host(d_tail);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < src.size(); ++i) {
      wrong += test::bits_of(nearest[i]) != test::bits_of(convert<T>(src[i]));
      wrong += test::bits_of(stochastic[i]) != test::bits_of(convert<T, overflow_saturate>(src[i], sr, i));
      if (i >= 1000) wrong += test::bits_of(tail[i - 1000]) != test::bits_of(stochastic[i]);
    }
    CHECK(wrong == 0);
  }

  // Every length from 0 to 40, from an aligned and a misaligned start, so the
  // vector body and the padded tail of a range conversion (the CPU's F16C
  // instructions on a host that has them) both meet the special values.
  TEST_CASE("float and half ranges of every short length match CUDA's conversions") {
    std::vector<float> values = {0.0f,      -0.0f,   1.0f,     -1.5f,      65504.0f, 65520.0f,
                                 -65520.0f, 1e9f,    5.96e-8f, -2.98e-8f,  2.99e-8f, 6.1e-5f,
                                 1e-40f,    -1e-45f, 0.1f,     1.0009765f, 3.14159f, -2.7182818f};
    const std::uint32_t specials[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u,
                                      0x7f800001u, 0xff812345u, 0x7fbfffffu};
    for (std::uint32_t b : specials) values.push_back(detail::bit_cast<float>(b));
    std::vector<float> src;
    while (src.size() < 41) src.insert(src.end(), values.begin(), values.end());
    std::vector<half> hsrc(src.size());
    for (std::size_t i = 0; i < src.size(); ++i)
      hsrc[i] = from_bits<half>(static_cast<std::uint16_t>(i * 0x0ddbu ^ (i < 8 ? 0x7c00u + i : 0u)));
    const auto d_src = test::to_device(src);
    const auto d_hsrc = test::to_device(hsrc);
    std::size_t wrong = 0;
    for (std::size_t start : {0u, 1u}) {
      for (std::size_t n = 0; n + start <= 40; ++n) {
        thrust::device_vector<half> rn(n + 1, from_bits<half>(0x1234)), rz(n + 1, from_bits<half>(0x1234));
        thrust::device_vector<float> wide(n + 1, 7.0f);
        const float* in = thrust::raw_pointer_cast(d_src.data()) + start;
        convert_n(in, n, test::ptr(rn));
        convert_n(in, n, test::ptr(rz), round_toward_zero{});
        convert_n(thrust::raw_pointer_cast(d_hsrc.data()) + start, n, test::ptr(wide));
        const auto h_rn = test::to_host(rn), h_rz = test::to_host(rz);
        const auto h_wide = test::to_host(wide);
        for (std::size_t i = 0; i < n; ++i) {
          const float x = src[start + i];
          const half h = hsrc[start + i];
          wrong += !same_half(h_rn[i], __float2half_rn(x));
          wrong += !same_half(h_rz[i], __float2half_rz(x));
          const float w = __half2float(h);
          wrong += std::isnan(w) ? !std::isnan(h_wide[i]) || std::signbit(h_wide[i]) != std::signbit(w)
                                 : test::bits_of(h_wide[i]) != test::bits_of(w);
        }
        // Nothing written past the end.
        wrong += test::bits_of(h_rn[n]) != 0x1234u || test::bits_of(h_rz[n]) != 0x1234u || h_wide[n] != 7.0f;
      }
    }
    CHECK(wrong == 0);
#if defined(__F16C__) && defined(__AVX__) && !defined(MIXPREC_BACKEND_CUDA) && !defined(MIXPREC_NO_HOST_F16C)
    CHECK(detail::host_f16c);  // compiled for F16C: the ranges above went through it
#endif
  }
}
