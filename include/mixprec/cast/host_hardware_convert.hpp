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

// The instructions are reached through the compiler's builtins on its
// vector types (GCC and clang name them alike) rather than <immintrin.h>:
// that header holds every x86 intrinsic and costs each translation unit
// about 0.25 s and 70 MB of g++ (docs/performance.md).
#if !defined(__CUDACC__) && !defined(MIXPREC_NO_HOST_F16C) && defined(__F16C__) && defined(__AVX__) && \
    (defined(__x86_64__) || defined(__i386__)) && defined(__has_builtin)
#if __has_builtin(__builtin_ia32_vcvtps2ph256) && __has_builtin(__builtin_ia32_vcvtph2ps256)
#define MIXPREC_HOST_F16C 1
#endif
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
namespace f16c {
typedef float floats8 __attribute__((vector_size(32)));
typedef std::int32_t ints8 __attribute__((vector_size(32)));
typedef short halves8 __attribute__((vector_size(16)));
// The instruction's rounding field: nearest even, or toward zero.
template <class R>
inline constexpr int rounding = std::is_same_v<R, round_nearest_even> ? 0 : 3;
}  // namespace f16c

// Eight floats to eight halves; NaN lanes take the canonical quiet NaN
// (found from the bits, so no compiler option can fold the test away).
template <class R>
inline f16c::halves8 f16c_narrow8(f16c::floats8 x) {
  const f16c::halves8 h = __builtin_ia32_vcvtps2ph256(x, f16c::rounding<R>);
  f16c::ints8 bits;
  std::memcpy(&bits, &x, sizeof bits);
  const f16c::halves8 nan = __builtin_convertvector((bits & 0x7fffffff) > 0x7f800000, f16c::halves8);
  const f16c::halves8 canonical = f16c::halves8{} + static_cast<short>(format_traits<half>::nan_bits);
  return nan ? canonical : h;
}

// dst[i] = the half nearest src[i] (or toward zero), for i < n.
template <class R>
inline void f16c_narrow_n(const float* src, std::size_t n, half* dst) {
  std::size_t i = 0;
  f16c::floats8 in;
  f16c::halves8 out;
  for (; i + 8 <= n; i += 8) {
    std::memcpy(&in, src + i, sizeof in);
    out = f16c_narrow8<R>(in);
    std::memcpy(static_cast<void*>(dst + i), &out, sizeof out);
  }
  if (i < n) {  // the last few through the same instruction, from a padded copy
    in = f16c::floats8{};
    std::memcpy(&in, src + i, (n - i) * sizeof(float));
    out = f16c_narrow8<R>(in);
    std::memcpy(static_cast<void*>(dst + i), &out, (n - i) * sizeof(std::uint16_t));
  }
}

// dst[i] = src[i] as float (exact), for i < n.
inline void f16c_widen_n(const half* src, std::size_t n, float* dst) {
  std::size_t i = 0;
  f16c::halves8 in;
  f16c::floats8 out;
  for (; i + 8 <= n; i += 8) {
    std::memcpy(&in, static_cast<const void*>(src + i), sizeof in);
    out = __builtin_ia32_vcvtph2ps256(in);
    std::memcpy(dst + i, &out, sizeof out);
  }
  if (i < n) {
    in = f16c::halves8{};
    std::memcpy(&in, static_cast<const void*>(src + i), (n - i) * sizeof(std::uint16_t));
    out = __builtin_ia32_vcvtph2ps256(in);
    std::memcpy(dst + i, &out, (n - i) * sizeof(float));
  }
}
#endif

}  // namespace mixprec::detail
