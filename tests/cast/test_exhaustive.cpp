// Exhaustive checks over all 2^32 float bit patterns: mixprec's narrowing
// against CUDA's own conversion functions, bit for bit (a NaN may differ in sign and payload: both NaN). The
// loop runs on the selected backend through mixprec's reduction primitive,
// so a CUDA build compares mixprec's device code with the GPU's conversion
// instructions. Label: exhaustive.
#include <cstdint>
#include <type_traits>

#include <doctest/doctest.h>

#include <mixprec/cast/all.hpp>
#include <mixprec/detail/reduce.hpp>

using namespace mixprec;

namespace {

template <class Check>
struct mismatch_op {
  using value_type = unsigned long long;
  Check check;
  MIXPREC_HOST_DEVICE value_type identity() const { return 0; }
  MIXPREC_HOST_DEVICE void accumulate(value_type& acc, std::size_t i) const {
    acc += check(detail::bit_cast<float>(static_cast<std::uint32_t>(i))) ? 0 : 1;
  }
  MIXPREC_HOST_DEVICE value_type combine(const value_type& a, const value_type& b) const { return a + b; }
};

template <class Check>
unsigned long long count_mismatches(Check check) {
  detail::workspace ws;
  thrust::device_vector<unsigned long long> out(1);
  detail::transform_reduce(stream{}, ws, std::size_t{1} << 32, mismatch_op<Check>{check},
                           thrust::raw_pointer_cast(out.data()));
  return out[0];
}

MIXPREC_HOST_DEVICE bool both_nan16(std::uint32_t a, std::uint32_t b, std::uint32_t inf) {
  return (a & 0x7fffu) > inf && (b & 0x7fffu) > inf;
}

// convert (the GPU's instruction in a CUDA build, cast/hardware_convert.hpp),
// the portable routine (detail::narrow_bits) and CUDA's function must agree.
template <class T, class R>
MIXPREC_HOST_DEVICE std::uint32_t portable(float x) {
  return detail::narrow_bits<T, R, overflow_to_infinity>(x, 0u);
}
struct half_rn {
  MIXPREC_HOST_DEVICE bool operator()(float x) const {
    const std::uint32_t a = to_bits(convert<half>(x)), b = to_bits(__float2half_rn(x));
    const std::uint32_t p = portable<half, round_nearest_even>(x);
    return (a == b || both_nan16(a, b, 0x7c00u)) && (p == b || both_nan16(p, b, 0x7c00u));
  }
};
struct half_rz {
  MIXPREC_HOST_DEVICE bool operator()(float x) const {
    const std::uint32_t a = to_bits(convert<half>(x, round_toward_zero{})), b = to_bits(__float2half_rz(x));
    const std::uint32_t p = portable<half, round_toward_zero>(x);
    return (a == b || both_nan16(a, b, 0x7c00u)) && (p == b || both_nan16(p, b, 0x7c00u));
  }
};
struct bf16_rn {
  MIXPREC_HOST_DEVICE bool operator()(float x) const {
    const std::uint32_t a = to_bits(convert<bfloat16>(x)), b = to_bits(__float2bfloat16_rn(x));
    const std::uint32_t p = portable<bfloat16, round_nearest_even>(x);
    return (a == b || both_nan16(a, b, 0x7f80u)) && (p == b || both_nan16(p, b, 0x7f80u));
  }
};
struct bf16_rz {
  MIXPREC_HOST_DEVICE bool operator()(float x) const {
    const std::uint32_t a = to_bits(convert<bfloat16>(x, round_toward_zero{})), b = to_bits(__float2bfloat16_rz(x));
    const std::uint32_t p = portable<bfloat16, round_toward_zero>(x);
    return (a == b || both_nan16(a, b, 0x7f80u)) && (p == b || both_nan16(p, b, 0x7f80u));
  }
};
// Stochastic rounding to bfloat16, from its definition: |x| lies between
// lo, CUDA's round-toward-zero of it, and the next bfloat16 up (infinity
// above the largest finite value), and rounds up when the 16-bit draw is
// below the fractional position scaled to 2^16 (gaps are powers of two, so
// the position is exact in double). The draw varies with the input, so
// every draw value meets every exponent.
struct bf16_sr {
  MIXPREC_HOST_DEVICE bool operator()(float x) const {
    const std::uint32_t u = detail::bit_cast<std::uint32_t>(x);
    const std::uint32_t draw = (u * 0x9e3779b1u) >> 16;
    const std::uint32_t got = to_bits(stochastic_round<bfloat16>(x, draw << 16));
    if (x != x) return (got & 0x7fffu) > 0x7f80u;
    const std::uint32_t lo = to_bits(__float2bfloat16_rz(x)) & 0x7fffu;
    const double a = x < 0 ? -static_cast<double>(x) : static_cast<double>(x);
    const double low = static_cast<double>(detail::bit_cast<float>(lo << 16));
    // The next value's magnitude: 2^128 past the largest finite bfloat16.
    const double high =
        lo == 0x7f7fu ? 3.4028236692093846e38 : static_cast<double>(detail::bit_cast<float>((lo + 1) << 16));
    const double position = lo == 0x7f80u ? 0.0 : (a - low) / (high - low) * 65536.0;
    const std::uint32_t want = (u & 0x80000000u ? 0x8000u : 0u) | (static_cast<double>(draw) < position ? lo + 1 : lo);
    return got == want;
  }
};
// E4M3 has one NaN per sign (S.1111.111); E5M2's NaNs have the top
// exponent and a non-zero mantissa. The hardware conversion (cvt.satfinite
// on sm_89+) need not give NaN the same sign or payload as the portable one.
template <class T>
MIXPREC_HOST_DEVICE bool is_nan8(std::uint32_t v) {
  if constexpr (std::is_same_v<T, fp8_e4m3>) return (v & 0x7fu) == 0x7fu;
  else return (v & 0x7fu) > 0x7cu;
}
template <class T, class O>
struct fp8_rn {
  MIXPREC_HOST_DEVICE bool operator()(float x) const {
    constexpr __nv_saturation_t sat = std::is_same_v<O, overflow_saturate> ? __NV_SATFINITE : __NV_NOSAT;
    constexpr __nv_fp8_interpretation_t kind = std::is_same_v<T, fp8_e4m3> ? __NV_E4M3 : __NV_E5M2;
    const std::uint32_t a = to_bits(convert<T, O>(x)), b = __nv_cvt_float_to_fp8(x, sat, kind);
    const std::uint32_t p = detail::narrow_bits<T, round_nearest_even, O>(x, 0u);
    return (a == b || (is_nan8<T>(a) && is_nan8<T>(b))) && (p == b || (is_nan8<T>(p) && is_nan8<T>(b)));
  }
};

// Whole-range conversion (convert_n: the CPU's F16C instructions on a host
// that has them), over all 2^32 floats in pieces of 2^24, against CUDA's
// functions; and all 2^16 halves widened.
struct float_patterns {
  float* out;
  std::uint32_t base;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const {
    out[i] = detail::bit_cast<float>(base + static_cast<std::uint32_t>(i));
  }
};
template <class R>
struct range_half_op {
  using value_type = unsigned long long;
  const half* converted;
  std::uint32_t base;
  MIXPREC_HOST_DEVICE value_type identity() const { return 0; }
  MIXPREC_HOST_DEVICE void accumulate(value_type& acc, std::size_t i) const {
    const float x = detail::bit_cast<float>(base + static_cast<std::uint32_t>(i));
    const std::uint32_t a = to_bits(converted[i]);
    const std::uint32_t b = to_bits(std::is_same_v<R, round_nearest_even> ? __float2half_rn(x) : __float2half_rz(x));
#if defined(MIXPREC_BACKEND_CUDA)
    acc += a == b || both_nan16(a, b, 0x7c00u) ? 0 : 1;
#else
    acc += a == b ? 0 : 1;  // the host's NaN is the canonical one, as CUDA's host function
#endif
  }
  MIXPREC_HOST_DEVICE value_type combine(const value_type& a, const value_type& b) const { return a + b; }
};
template <class R>
unsigned long long count_range_half_mismatches() {
  constexpr std::size_t piece = std::size_t{1} << 24;
  detail::workspace ws;
  thrust::device_vector<float> in(piece);
  thrust::device_vector<half> out(piece);
  thrust::device_vector<unsigned long long> count(1);
  unsigned long long total = 0;
  for (std::uint64_t base = 0; base < (std::uint64_t{1} << 32); base += piece) {
    const auto b = static_cast<std::uint32_t>(base);
    detail::for_each_index(stream{}, piece, float_patterns{thrust::raw_pointer_cast(in.data()), b});
    convert_n(thrust::raw_pointer_cast(in.data()), piece, thrust::raw_pointer_cast(out.data()), R{});
    detail::transform_reduce(stream{}, ws, piece, range_half_op<R>{thrust::raw_pointer_cast(out.data()), b},
                             thrust::raw_pointer_cast(count.data()));
    total += count[0];
  }
  return total;
}
struct widen_op {
  using value_type = unsigned long long;
  const float* widened;
  MIXPREC_HOST_DEVICE value_type identity() const { return 0; }
  MIXPREC_HOST_DEVICE void accumulate(value_type& acc, std::size_t i) const {
    const half h = from_bits<half>(static_cast<std::uint16_t>(i));
    const std::uint32_t a = detail::bit_cast<std::uint32_t>(widened[i]);
    const std::uint32_t b = detail::bit_cast<std::uint32_t>(__half2float(h));
    const bool nan = (i & 0x7fffu) > 0x7c00u;
    // A NaN keeps its sign and payload, quieted (CUDA's host function returns one canonical NaN).
    const std::uint32_t quiet = ((static_cast<std::uint32_t>(i) & 0x8000u) << 16) | 0x7fc00000u |
                                ((static_cast<std::uint32_t>(i) & 0x3ffu) << 13);
#if defined(MIXPREC_BACKEND_CUDA)
    (void)quiet;
    acc += (nan ? (a & 0x7fffffffu) > 0x7f800000u : a == b) ? 0 : 1;  // the GPU's NaN: any
#else
    acc += (nan ? a == quiet : a == b) ? 0 : 1;
#endif
  }
  MIXPREC_HOST_DEVICE value_type combine(const value_type& a, const value_type& b) const { return a + b; }
};
struct half_patterns {
  half* out;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { out[i] = from_bits<half>(static_cast<std::uint16_t>(i)); }
};

}  // namespace

TEST_SUITE("exhaustive") {
  TEST_CASE("all floats through convert_n -> half nearest-even equal __float2half_rn") {
    CHECK(count_range_half_mismatches<round_nearest_even>() == 0);
  }
  TEST_CASE("all floats through convert_n -> half toward-zero equal __float2half_rz") {
    CHECK(count_range_half_mismatches<round_toward_zero>() == 0);
  }
  TEST_CASE("all halves through convert_n -> float equal __half2float") {
    constexpr std::size_t n = std::size_t{1} << 16;
    thrust::device_vector<half> in(n);
    thrust::device_vector<float> out(n);
    detail::for_each_index(stream{}, n, half_patterns{thrust::raw_pointer_cast(in.data())});
    convert_n(thrust::raw_pointer_cast(in.data()), n, thrust::raw_pointer_cast(out.data()));
    detail::workspace ws;
    thrust::device_vector<unsigned long long> count(1);
    detail::transform_reduce(stream{}, ws, n, widen_op{thrust::raw_pointer_cast(out.data())},
                             thrust::raw_pointer_cast(count.data()));
    CHECK(count[0] == 0);
  }

  TEST_CASE("all floats -> half nearest-even equal __float2half_rn") { CHECK(count_mismatches(half_rn{}) == 0); }
  TEST_CASE("all floats -> half toward-zero equal __float2half_rz") { CHECK(count_mismatches(half_rz{}) == 0); }
  TEST_CASE("all floats -> bfloat16 nearest-even equal __float2bfloat16_rn") {
    CHECK(count_mismatches(bf16_rn{}) == 0);
  }
  TEST_CASE("all floats -> bfloat16 toward-zero equal __float2bfloat16_rz") { CHECK(count_mismatches(bf16_rz{}) == 0); }
  TEST_CASE("all floats -> bfloat16 stochastic round up exactly when the draw is below the position") {
    CHECK(count_mismatches(bf16_sr{}) == 0);
  }
  TEST_CASE("all floats -> fp8_e4m3 saturating equal __nv_cvt_float_to_fp8 SATFINITE") {
    CHECK(count_mismatches(fp8_rn<fp8_e4m3, overflow_saturate>{}) == 0);
  }
  TEST_CASE("all floats -> fp8_e4m3 non-saturating equal __nv_cvt_float_to_fp8 NOSAT") {
    CHECK(count_mismatches(fp8_rn<fp8_e4m3, overflow_to_infinity>{}) == 0);
  }
  TEST_CASE("all floats -> fp8_e5m2 saturating equal __nv_cvt_float_to_fp8 SATFINITE") {
    CHECK(count_mismatches(fp8_rn<fp8_e5m2, overflow_saturate>{}) == 0);
  }
  TEST_CASE("all floats -> fp8_e5m2 non-saturating equal __nv_cvt_float_to_fp8 NOSAT") {
    CHECK(count_mismatches(fp8_rn<fp8_e5m2, overflow_to_infinity>{}) == 0);
  }
}
