// The GPU's own conversion instructions, used by the converter in device
// code wherever they give the portable routine's bits (cast/convert.hpp):
//   float -> half      nearest-even and toward zero (cvt.rn/rz.f16.f32)
//   float -> bfloat16  nearest-even and toward zero (cvt.rn/rz.bf16.f32,
//                      sm_80 and later; CUDA's software path before)
//   float -> fp8       nearest-even, saturating (cvt.rn.satfinite.e4m3x2 /
//                      e5m2x2.f32, sm_89 and later)
//   half -> float      exact (cvt.f32.f16)
// Overflow to infinity in fp8 has no instruction and keeps the portable
// routine. tests/cast/test_exhaustive.cpp compares these, on the GPU, with
// the portable routine and with CUDA's functions over all 2^32 floats (a
// NaN may differ in sign and payload). Host code never uses this header's
// functions: the host's own instructions serve whole ranges
// (cast/host_hardware_convert.hpp).
#pragma once

#include <type_traits>

#include <mixprec/cast/round.hpp>
#include <mixprec/format/bits.hpp>
#include <mixprec/format/format_traits.hpp>

namespace mixprec::detail {

// The architecture being compiled for (0 in host code).
#if defined(__CUDA_ARCH__)
inline constexpr int compiled_arch = __CUDA_ARCH__;
#else
inline constexpr int compiled_arch = 0;
#endif

// (clang-format 14 reads `x && (...) && y` here as a cast)
// clang-format off
// Whether device code narrows float to To under (R, O) by an instruction.
template <class To, class R, class O>
inline constexpr bool hardware_narrowing =
    compiled_arch > 0 &&
    (std::is_same_v<To, half> ? (std::is_same_v<R, round_nearest_even> || std::is_same_v<R, round_toward_zero>) &&
                                    std::is_same_v<O, overflow_to_infinity>
     : std::is_same_v<To, bfloat16>
         ? compiled_arch >= 800 &&
               (std::is_same_v<R, round_nearest_even> || std::is_same_v<R, round_toward_zero>) &&
               std::is_same_v<O, overflow_to_infinity>
         : (std::is_same_v<To, fp8_e4m3> || std::is_same_v<To, fp8_e5m2>) && compiled_arch >= 890 &&
               std::is_same_v<R, round_nearest_even> && std::is_same_v<O, overflow_saturate>);
// Whether device code widens From to float by an instruction.
template <class From>
inline constexpr bool hardware_widening = compiled_arch > 0 && std::is_same_v<From, half>;
// clang-format on

#if defined(__CUDA_ARCH__)
template <class To, class R, class O>
__device__ inline To hardware_narrow(float f) {
  static_assert(hardware_narrowing<To, R, O>, "hardware_narrow: no instruction for this conversion");
  if constexpr (std::is_same_v<To, half>) {
    if constexpr (std::is_same_v<R, round_nearest_even>) return __float2half_rn(f);
    else return __float2half_rz(f);
  } else if constexpr (std::is_same_v<To, bfloat16>) {
    if constexpr (std::is_same_v<R, round_nearest_even>) return __float2bfloat16_rn(f);
    else return __float2bfloat16_rz(f);
  } else {
    constexpr __nv_fp8_interpretation_t kind = std::is_same_v<To, fp8_e4m3> ? __NV_E4M3 : __NV_E5M2;
    return from_bits<To>(__nv_cvt_float_to_fp8(f, __NV_SATFINITE, kind));
  }
}
template <class From>
__device__ inline float hardware_widen(From x) {
  static_assert(hardware_widening<From>, "hardware_widen: no instruction for this conversion");
  return __half2float(x);
}
#endif

}  // namespace mixprec::detail
