// The number formats mixprec stores tensors in, and their properties.
//
// Storage types are CUDA's own (cuda_fp16.h, cuda_bf16.h, cuda_fp8.h), so
// tensors interoperate with cuBLAS, cuDNN and user kernels without copies.
// The properties follow the standards: IEEE 754-2008 binary16 (half) and
// binary32 (float), bfloat16 (float with 16 bits of mantissa dropped), and
// the OCP 8-bit floating point specification v1.0 (E4M3: no infinity, one NaN
// pattern per sign, max 448; E5M2: IEEE-like, max 57344).
#pragma once

#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <mixprec/core/config.hpp>

namespace mixprec {

using half = ::__half;
using bfloat16 = ::__nv_bfloat16;
using fp8_e4m3 = ::__nv_fp8_e4m3;
using fp8_e5m2 = ::__nv_fp8_e5m2;

// Stable identifiers of the formats, used in checkpoints. For
// block-scaled state fields only (format/block_codes.hpp): dynamic8s and
// dynamic8u, 8-bit codes of the signed and unsigned dynamic quantization
// maps; e4m3u, e4m3 codes of a non-negative field (e4m3 itself is a signed
// one).
enum class format_id : std::uint8_t {
  f32 = 1,
  f16 = 2,
  bf16 = 3,
  e4m3 = 4,
  e5m2 = 5,
  dynamic8s = 6,
  dynamic8u = 7,
  e4m3u = 8
};

namespace detail {
template <class T>
inline constexpr bool always_false = false;
}

template <class T>
struct format_traits {
  static_assert(detail::always_false<T>,
                "mixprec: unsupported number format; use float, mixprec::half, mixprec::bfloat16, "
                "mixprec::fp8_e4m3 or mixprec::fp8_e5m2");
};

// Every field of a format_traits specialisation:
//   bits_type                 unsigned integer of the format's width
//   total_bits, exponent_bits, mantissa_bits (explicit fraction bits), bias
//   has_infinity, has_nan
//   max_bits, inf_bits, nan_bits   magnitude bit patterns (sign bit clear);
//                              inf_bits is 0 for formats without infinity,
//                              nan_bits is the canonical NaN the converters write
//   max(), lowest(), min_normal(), denorm_min()
//   epsilon()                 distance from 1 to the next larger value, 2^-mantissa_bits
//   unit_roundoff()           epsilon / 2, the relative error bound of round-to-nearest
//   name, id

template <>
struct format_traits<float> {
  using bits_type = std::uint32_t;
  static constexpr int total_bits = 32, exponent_bits = 8, mantissa_bits = 23, bias = 127;
  static constexpr bool has_infinity = true, has_nan = true;
  static constexpr bits_type max_bits = 0x7f7fffffu, inf_bits = 0x7f800000u, nan_bits = 0x7fffffffu;
  static constexpr float max() { return 3.40282346638528859812e+38f; }
  static constexpr float lowest() { return -max(); }
  static constexpr float min_normal() { return 1.17549435082228750797e-38f; }  // 2^-126
  static constexpr float denorm_min() { return 1.40129846432481707092e-45f; }  // 2^-149
  static constexpr float epsilon() { return 1.1920928955078125e-07f; }         // 2^-23
  static constexpr float unit_roundoff() { return epsilon() / 2; }
  static constexpr const char* name = "float";
  static constexpr format_id id = format_id::f32;
};

template <>
struct format_traits<half> {
  using bits_type = std::uint16_t;
  static constexpr int total_bits = 16, exponent_bits = 5, mantissa_bits = 10, bias = 15;
  static constexpr bool has_infinity = true, has_nan = true;
  static constexpr bits_type max_bits = 0x7bff, inf_bits = 0x7c00, nan_bits = 0x7fff;
  static constexpr float max() { return 65504.0f; }  // (2 - 2^-10) * 2^15
  static constexpr float lowest() { return -max(); }
  static constexpr float min_normal() { return 6.103515625e-05f; }         // 2^-14
  static constexpr float denorm_min() { return 5.9604644775390625e-08f; }  // 2^-24
  static constexpr float epsilon() { return 9.765625e-04f; }               // 2^-10
  static constexpr float unit_roundoff() { return epsilon() / 2; }
  static constexpr const char* name = "half";
  static constexpr format_id id = format_id::f16;
};

template <>
struct format_traits<bfloat16> {
  using bits_type = std::uint16_t;
  static constexpr int total_bits = 16, exponent_bits = 8, mantissa_bits = 7, bias = 127;
  static constexpr bool has_infinity = true, has_nan = true;
  static constexpr bits_type max_bits = 0x7f7f, inf_bits = 0x7f80, nan_bits = 0x7fff;
  static constexpr float max() { return 3.38953138925153547590e+38f; }  // (2 - 2^-7) * 2^127
  static constexpr float lowest() { return -max(); }
  static constexpr float min_normal() { return 1.17549435082228750797e-38f; }  // 2^-126
  static constexpr float denorm_min() { return 9.18354961579912115600e-41f; }  // 2^-133
  static constexpr float epsilon() { return 7.8125e-03f; }                     // 2^-7
  static constexpr float unit_roundoff() { return epsilon() / 2; }
  static constexpr const char* name = "bfloat16";
  static constexpr format_id id = format_id::bf16;
};

template <>
struct format_traits<fp8_e4m3> {
  using bits_type = std::uint8_t;
  static constexpr int total_bits = 8, exponent_bits = 4, mantissa_bits = 3, bias = 7;
  static constexpr bool has_infinity = false, has_nan = true;
  static constexpr bits_type max_bits = 0x7e, inf_bits = 0x00, nan_bits = 0x7f;
  static constexpr float max() { return 448.0f; }  // 1.75 * 2^8 (S.1111.111 is NaN)
  static constexpr float lowest() { return -max(); }
  static constexpr float min_normal() { return 0.015625f; }     // 2^-6
  static constexpr float denorm_min() { return 0.001953125f; }  // 2^-9
  static constexpr float epsilon() { return 0.125f; }           // 2^-3
  static constexpr float unit_roundoff() { return epsilon() / 2; }
  static constexpr const char* name = "fp8_e4m3";
  static constexpr format_id id = format_id::e4m3;
};

template <>
struct format_traits<fp8_e5m2> {
  using bits_type = std::uint8_t;
  static constexpr int total_bits = 8, exponent_bits = 5, mantissa_bits = 2, bias = 15;
  static constexpr bool has_infinity = true, has_nan = true;
  static constexpr bits_type max_bits = 0x7b, inf_bits = 0x7c, nan_bits = 0x7f;
  static constexpr float max() { return 57344.0f; }  // 1.75 * 2^15
  static constexpr float lowest() { return -max(); }
  static constexpr float min_normal() { return 6.103515625e-05f; }    // 2^-14
  static constexpr float denorm_min() { return 1.52587890625e-05f; }  // 2^-16
  static constexpr float epsilon() { return 0.25f; }                  // 2^-2
  static constexpr float unit_roundoff() { return epsilon() / 2; }
  static constexpr const char* name = "fp8_e5m2";
  static constexpr format_id id = format_id::e5m2;
};

// True for the formats above.
template <class T>
inline constexpr bool is_narrow_format_v = std::is_same_v<T, half> || std::is_same_v<T, bfloat16> ||
                                           std::is_same_v<T, fp8_e4m3> || std::is_same_v<T, fp8_e5m2>;

template <class T>
inline constexpr bool is_format_v = std::is_same_v<T, float> || is_narrow_format_v<T>;

inline const char* format_name(format_id id) {
  switch (id) {
    case format_id::f32:
      return "float";
    case format_id::f16:
      return "half";
    case format_id::bf16:
      return "bfloat16";
    case format_id::e4m3:
      return "fp8_e4m3";
    case format_id::e5m2:
      return "fp8_e5m2";
    case format_id::dynamic8s:
      return "dynamic8 (signed)";
    case format_id::dynamic8u:
      return "dynamic8 (unsigned)";
    case format_id::e4m3u:
      return "fp8_e4m3 (unsigned)";
  }
  return "unknown";
}

}  // namespace mixprec
