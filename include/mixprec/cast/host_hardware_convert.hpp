// The host CPU's half-precision conversion instructions (x86 F16C:
// vcvtps2ph, vcvtph2ps), used by convert_n (cast/convert_range.hpp) for
// whole ranges between float and half when the compiler targets them
// (-mf16c, or -march=native on an x86-64 core that has F16C). They give the
// portable routine's bits (cast/convert.hpp):
//   float -> half  nearest-even and toward zero, overflow to infinity, by
//                  the instruction's own rounding field (MXCSR is not read);
//                  a NaN becomes the canonical 0x7fff (the instruction keeps
//                  its sign and payload, so those lanes are replaced)
//   half -> float  exact
// tests/cast/test_exhaustive.cpp compares convert_n with CUDA's host
// conversion functions over all 2^32 floats and all 2^16 halves.
//
// The per-element converter stays portable on the host: GCC does not
// vectorise a loop of scalar vcvtps2ph, and the portable routine does.
// Define MIXPREC_NO_HOST_F16C to keep the portable routine everywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <mixprec/cast/round.hpp>
#include <mixprec/format/format_traits.hpp>

#if !defined(__CUDACC__) && !defined(MIXPREC_NO_HOST_F16C) && defined(__F16C__) && defined(__AVX__) && \
    (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define MIXPREC_HOST_F16C 1
#endif

namespace mixprec::detail {

#if defined(MIXPREC_HOST_F16C)
inline constexpr bool host_f16c = true;
#else
inline constexpr bool host_f16c = false;
#endif

// Whether convert_n narrows float to To under (R, O) by the host's
// instruction, or widens From to float by it.
// (clang-format 14 reads `x && (...) && y` here as a cast)
// clang-format off
template <class To, class R, class O>
inline constexpr bool host_hardware_narrowing =
    host_f16c && std::is_same_v<To, half> &&
    (std::is_same_v<R, round_nearest_even> || std::is_same_v<R, round_toward_zero>) &&
    std::is_same_v<O, overflow_to_infinity>;
template <class From>
inline constexpr bool host_hardware_widening = host_f16c && std::is_same_v<From, half>;
// clang-format on

#if defined(MIXPREC_HOST_F16C)
// Eight floats to eight halves; NaN lanes take the canonical quiet NaN.
template <class R>
inline __m128i f16c_narrow8(__m256 x) {
  constexpr int rounding = std::is_same_v<R, round_nearest_even> ? _MM_FROUND_TO_NEAREST_INT : _MM_FROUND_TO_ZERO;
  const __m128i h = _mm256_cvtps_ph(x, rounding);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  const __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(nan), _mm256_extractf128_si256(nan, 1));
  return _mm_blendv_epi8(h, _mm_set1_epi16(static_cast<short>(format_traits<half>::nan_bits)), nan16);
}

// dst[i] = the half nearest src[i] (or toward zero), for i < n.
template <class R>
inline void f16c_narrow_n(const float* src, std::size_t n, half* dst) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), f16c_narrow8<R>(_mm256_loadu_ps(src + i)));
  if (i < n) {  // the last few through the same instruction, from a padded copy
    float in[8] = {};
    std::uint16_t out[8];
    std::memcpy(in, src + i, (n - i) * sizeof(float));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), f16c_narrow8<R>(_mm256_loadu_ps(in)));
    std::memcpy(static_cast<void*>(dst + i), out, (n - i) * sizeof(std::uint16_t));
  }
}

// dst[i] = src[i] as float (exact), for i < n.
inline void f16c_widen_n(const half* src, std::size_t n, float* dst) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  if (i < n) {
    std::uint16_t in[8] = {};
    float out[8];
    std::memcpy(in, static_cast<const void*>(src + i), (n - i) * sizeof(std::uint16_t));
    _mm256_storeu_ps(out, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in))));
    std::memcpy(dst + i, out, (n - i) * sizeof(float));
  }
}
#endif

}  // namespace mixprec::detail
