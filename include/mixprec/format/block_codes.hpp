// Block-scaled 8-bit codes for optimizer state (Dettmers et al., "8-bit
// Optimizers via Block-wise Quantization"): a state field of N elements is
// stored as one byte per element and one float scale per block of `Block`
// consecutive elements of a parameter (its last block may be shorter).
//
//   block_quantized<dynamic8>   codes of the dynamic quantization map: 256
//                               values in [-1, 1] (signed map, for first
//                               moments) or [0, 1] (unsigned, for second
//                               moments), dense near 0; scale = max |x| of
//                               the block, x = map[code] * scale.
//   block_quantized<fp8_e4m3>   fp8 e4m3 values; scale = max |x| / 448, the
//                               block's largest value lands on e4m3's
//                               largest; x = float(code) * scale.
//
// Encoding a block: its scale from its max |x| (0 when the block is all
// zeros: every code then decodes to 0), then each x / scale to the nearest
// code (dynamic8: nearest map value, ties to the lower code; e4m3: round to
// nearest even, saturating at 448). The codes of a non-negative field
// (second moments) never stand for zero (Li et al., "Memory Efficient
// Optimizers with 4-bit States", 2023: the zero point): a value that would
// become 0 is stored as the smallest non-zero code. Else a second moment
// far below its block's largest decodes to 0, and a step whose gradient is
// 0 while the first moment is not divides that moment by eps alone. The
// digits example (20 epochs) with bitsandbytes' maps as they are: 8-bit
// moments end at training loss 0.143 against fp32's 0.057 (after 4
// epochs: 90.8% test accuracy against 94.2%), e4m3 moments diverge to NaN;
// with the zero point excluded, 0.053 and 0.049 (docs/design.md). Used as the StateFormat of adam, adamw, sgd and lion
// (optim/optimizers.hpp); the engine keeps the new values of a block in
// fp32 until the block's scale is known (train/coded_blocks.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>

#include <mixprec/cast/convert.hpp>
#include <mixprec/core/config.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/format/bits.hpp>
#include <mixprec/format/format_traits.hpp>

// The host's AVX-512 map lookup (block_code::decode_n); define
// MIXPREC_NO_HOST_AVX512 to keep the portable loop. Written on the
// compiler's vector types, not <immintrin.h> (see
// cast/host_hardware_convert.hpp): g++'s two-vector shuffle and clang's
// permute builtin both become vpermt2ps/vpermi2ps.
#if !defined(__CUDACC__) && !defined(MIXPREC_NO_HOST_AVX512) && defined(__AVX512F__) && defined(__x86_64__) && \
    defined(__has_builtin)
#if defined(__clang__) && __has_builtin(__builtin_ia32_vpermi2varps512)
#define MIXPREC_HOST_AVX512 1
#elif !defined(__clang__) && defined(__GNUC__) && __has_builtin(__builtin_ia32_pmovzxbd512_mask)
#define MIXPREC_HOST_AVX512 1
#endif
#endif

MIXPREC_PINNED_BEGIN

namespace mixprec {

// Codes of the dynamic quantization map (see above).
struct dynamic8 {};

template <class Code = dynamic8, std::uint32_t Block = 256>
struct block_quantized {
  static_assert(std::is_same_v<Code, dynamic8> || std::is_same_v<Code, fp8_e4m3>,
                "block_quantized: codes are mixprec::dynamic8 or mixprec::fp8_e4m3");
  static_assert(Block >= 16 && Block <= 4096 && (Block & (Block - 1)) == 0,
                "block_quantized: the block is a power of two from 16 to 4096 elements");
  using code = Code;
  static constexpr std::uint32_t block = Block;
};

namespace detail {

// The format of a state field of signed values (first moments, momentum)
// and of non-negative ones (second moments) under StateFormat F, and its
// block (0: not block-scaled).
template <class F>
struct state_format {
  static constexpr format_id signed_id = format_traits<F>::id;
  static constexpr format_id unsigned_id = format_traits<F>::id;
  static constexpr std::uint32_t block = 0;
};
template <class C, std::uint32_t B>
struct state_format<block_quantized<C, B>> {
  static constexpr bool dynamic = std::is_same_v<C, dynamic8>;
  static constexpr format_id signed_id = dynamic ? format_id::dynamic8s : format_id::e4m3;
  static constexpr format_id unsigned_id = dynamic ? format_id::dynamic8u : format_id::e4m3u;
  static constexpr std::uint32_t block = B;
};
template <class F>
inline constexpr bool is_block_quantized_v = false;
template <class C, std::uint32_t B>
inline constexpr bool is_block_quantized_v<block_quantized<C, B>> = true;

// Whether a state field of format f is stored as block-scaled codes.
MIXPREC_HOST_DEVICE constexpr bool is_coded(format_id f) {
  return f == format_id::dynamic8s || f == format_id::dynamic8u || f == format_id::e4m3 || f == format_id::e4m3u;
}
// Elements per scale of a coded field that declares `block` (0: the default).
inline constexpr std::uint32_t default_code_block = 256;

struct code_table {
  float v[256];
};

// The dynamic map: for decades i = 0..6, the midpoints of 2^i (signed) or
// 2^(i+1) (unsigned) equal steps over [0.1, 1], times 10^(i-6), with their
// negatives when signed; then 0 and 1. Computed in double, each value
// rounded once to float, ascending. The positive values come out ascending
// (each decade's largest is below the next one's smallest), so they are
// placed, not sorted (every translation unit evaluates this at compile
// time).
constexpr code_table make_dynamic_map(bool is_signed) {
  constexpr double decades[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0};
  code_table out{};
  // Signed: 127 negatives (mirrored), 0 at 127, positives from 128, 1 at 255.
  // Unsigned: 0 at 0, 254 positives from 1, 1 at 255.
  const int first_positive = is_signed ? 128 : 1;
  int n = 0;
  for (int i = 0; i < 7; ++i) {
    const int means = is_signed ? (1 << i) : (1 << (i + 1));
    const double step = 0.9 / static_cast<double>(means);
    for (int k = 0; k < means; ++k, ++n) {
      const double lo = 0.1 + static_cast<double>(k) * step, hi = 0.1 + static_cast<double>(k + 1) * step;
      const float x = static_cast<float>(decades[i] * ((lo + hi) / 2.0));
      out.v[first_positive + n] = x;
      if (is_signed) out.v[126 - n] = -x;
    }
  }
  out.v[first_positive - 1] = 0.0f;
  out.v[255] = 1.0f;
  return out;
}
inline constexpr code_table dynamic_map_signed = make_dynamic_map(true);
inline constexpr code_table dynamic_map_unsigned = make_dynamic_map(false);
static_assert(dynamic_map_signed.v[127] == 0.0f && dynamic_map_signed.v[255] == 1.0f &&
                  dynamic_map_unsigned.v[0] == 0.0f && dynamic_map_unsigned.v[255] == 1.0f,
              "dynamic map layout");
#if defined(__CUDACC__)
// Device copies (a namespace-scope constexpr array is not readable at run
// time in device code), in global memory: the threads of a warp read
// different entries, which constant memory would serialize. Internal
// linkage, one per translation unit.
static __device__ const code_table dynamic_map_signed_device = make_dynamic_map(true);
static __device__ const code_table dynamic_map_unsigned_device = make_dynamic_map(false);
#endif

template <bool Signed>
MIXPREC_HOST_DEVICE const float* dynamic_map() {
#if defined(__CUDA_ARCH__)
  return Signed ? dynamic_map_signed_device.v : dynamic_map_unsigned_device.v;
#else
  return Signed ? dynamic_map_signed.v : dynamic_map_unsigned.v;
#endif
}

// The code of the map value nearest to n (a distance tie: the lower code),
// by binary search: the definition, and the device's way.
template <bool Signed>
MIXPREC_HOST_DEVICE std::uint8_t nearest_dynamic_code_by_search(float n) {
  const float* map = dynamic_map<Signed>();
  // lo: the last code whose value is <= n (0 when n is below them all).
  int lo = 0, hi = 256;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (map[mid] <= n) lo = mid;
    else hi = mid;
  }
  if (lo < 255) {
    const double below = static_cast<double>(n) - static_cast<double>(map[lo]);
    const double above = static_cast<double>(map[lo + 1]) - static_cast<double>(n);
    if (above < (below < 0 ? -below : below)) return static_cast<std::uint8_t>(lo + 1);
  }
  return static_cast<std::uint8_t>(lo);
}

// The host's way (the search's eight dependent loads cost about 25 ns a
// value and do not vectorise): the index of the nearest of a sorted list
// of values is the number of thresholds below x, a threshold between each
// two neighbours (the largest float that rounds to the lower one). A table
// over a float's top 16 bits (sign, exponent, 7 mantissa bits) holds, for
// each bucket, how many thresholds lie below it and the low 16 bits of the
// one inside it: no bucket holds two (neighbours are at least 1.4% apart,
// a bucket at most 0.8% wide), and x, in the same bucket, is above it when
// its own low bits are (below, in a negative bucket: there both are
// flipped). So one load and integer arithmetic per value. Exponents are
// clamped to [KeyLo, KeyHi] (keys without the sign), a range that holds
// every threshold: values past either end count alike, and the table stays
// small (about 27 KB).
template <std::uint32_t KeyLo, std::uint32_t KeyHi>
struct bucket_search {
  static constexpr std::uint32_t span = KeyHi - KeyLo + 1;
  // [sign][key - KeyLo]: thresholds below (bits 0-7), then the inner
  // threshold's low bits, flipped when negative (0xffff when none).
  std::uint32_t bucket[2 * span];
  // How many thresholds are below x (x not NaN).
  int count(float x) const {
    const std::uint32_t bits = bit_cast<std::uint32_t>(x);
    const std::uint32_t k = (bits >> 16) & 0x7fffu;
    const std::uint32_t clamped = k < KeyLo ? KeyLo : (k > KeyHi ? KeyHi : k);
    const std::uint32_t b = bucket[(bits >> 31) * span + (clamped - KeyLo)];
    const std::uint32_t low = (bits & 0xffffu) ^ ((bits >> 31) * 0xffffu);
    return static_cast<int>((b & 0xffu) + (low > (b >> 8) ? 1u : 0u));
  }
};
// The table for `n` (at most 255) ascending finite thresholds.
template <std::uint32_t KeyLo, std::uint32_t KeyHi>
bucket_search<KeyLo, KeyHi> make_bucket_search(const float* thresholds, int n) {
  bucket_search<KeyLo, KeyHi> s{};
  for (std::uint32_t sign = 0; sign < 2; ++sign)
    for (std::uint32_t key = KeyLo; key <= KeyHi; ++key) {
      // The bucket's smallest and largest floats.
      const std::uint32_t top = (sign << 31) | (key << 16);
      const float least = bit_cast<float>(sign != 0 ? top | 0xffffu : top);
      const float most = bit_cast<float>(sign != 0 ? top : top | 0xffffu);
      int below = 0;
      while (below < n && thresholds[below] < least) ++below;
      std::uint32_t inner = 0xffffu;
      if (below < n && thresholds[below] <= most) {
        if (below + 1 < n && thresholds[below + 1] <= most)
          throw std::logic_error("mixprec: bucket_search: two thresholds in one bucket");
        inner = (bit_cast<std::uint32_t>(thresholds[below]) & 0xffffu) ^ (sign != 0 ? 0xffffu : 0u);
      }
      s.bucket[sign * bucket_search<KeyLo, KeyHi>::span + (key - KeyLo)] =
          static_cast<std::uint32_t>(below) | (inner << 8);
    }
  return s;
}
// The largest float at or below x.
inline float float_at_or_below(double x) {
  const float f = static_cast<float>(x);
  return static_cast<double>(f) > x ? std::nextafter(f, -std::numeric_limits<float>::infinity()) : f;
}

// Dynamic-map codes: the map's midpoints rounded down (a tie goes to the
// lower code). Keys from 2^-26 (below every threshold's magnitude, the
// smallest 1.6e-7) to 1 (x / scale is at most 1 in magnitude).
using dynamic_code_search = bucket_search<(127u - 26u) << 7, 127u << 7>;
template <bool Signed>
inline const dynamic_code_search& dynamic_code_search_of() {
  static const dynamic_code_search search = [] {
    const float* map = Signed ? dynamic_map_signed.v : dynamic_map_unsigned.v;
    float t[255];
    for (int k = 0; k < 255; ++k) t[k] = float_at_or_below((static_cast<double>(map[k]) + map[k + 1]) / 2.0);
    return make_bucket_search<(127u - 26u) << 7, 127u << 7>(t, 255);
  }();
  return search;
}
inline std::uint8_t nearest_dynamic_code_by_table(float n, const dynamic_code_search& s) {
  const int c = s.count(n);
  return static_cast<std::uint8_t>(n != n ? 0 : c);  // as the search: no value is <= NaN
}

// The e4m3 code of x, rounded to nearest even and saturating, as
// convert<fp8_e4m3, overflow_saturate> (NaN gives 0x7f), by integer and
// float arithmetic without branches or loads, so that the host's loop
// vectorises: a normal result rounds the float's bits to 3 mantissa bits
// and rebiases them; a subnormal one (below 2^-6) is |x| + 2^14 (whose ulp,
// 2^-9, is e4m3's subnormal step: the addition rounds to nearest even) less
// 2^14's bits. Both give code 8 at 2^-6; past 448 saturates.
MIXPREC_HOST_DEVICE std::uint8_t e4m3_code_by_arithmetic(float x) {
  const std::uint32_t bits = bit_cast<std::uint32_t>(x);
  const std::uint32_t a = bits & 0x7fffffffu;
  const std::uint32_t normal = ((a + 0x7ffffu + ((a >> 20) & 1u)) >> 20) - (120u << 3);
  const std::uint32_t subnormal = bit_cast<std::uint32_t>(bit_cast<float>(a) + 16384.0f) - 0x46800000u;
  std::uint32_t c = a < 0x3c800000u ? subnormal : normal;
  c = c > 0x7eu ? 0x7eu : c;
  return static_cast<std::uint8_t>(a > 0x7f800000u ? 0x7fu : ((bits >> 24) & 0x80u) | c);
}

template <bool Signed>
MIXPREC_HOST_DEVICE std::uint8_t nearest_dynamic_code(float n) {
#if defined(__CUDA_ARCH__)
  return nearest_dynamic_code_by_search<Signed>(n);
#else
  return nearest_dynamic_code_by_table(n, dynamic_code_search_of<Signed>());
#endif
}

#if defined(MIXPREC_HOST_AVX512)
namespace avx512 {
typedef float floats16 __attribute__((vector_size(64)));
typedef std::int32_t ints16 __attribute__((vector_size(64)));
typedef std::uint8_t bytes16 __attribute__((vector_size(16)));
// {lo, hi}[idx[i] % 32] for each lane i.
inline floats16 pick32(floats16 lo, ints16 idx, floats16 hi) {
#if defined(__clang__)
  return __builtin_ia32_vpermi2varps512(lo, idx, hi);
#else
  return __builtin_shuffle(lo, hi, idx);
#endif
}
// 16 bytes widened to 16 ints (vpmovzxbd: g++ 12 builds the generic
// conversion from 16 scalar extracts).
inline ints16 widen(bytes16 c) {
#if defined(__clang__)
  return __builtin_convertvector(c, ints16);
#else
  typedef char chars16 __attribute__((vector_size(16)));
  return __builtin_ia32_pmovzxbd512_mask(reinterpret_cast<chars16>(c), ints16{}, 0xffff);
#endif
}
}  // namespace avx512

// map[codes[j]] * scale for the first n - n % 16 codes (returned): the map's
// 256 floats in 16 registers, each code's value picked by 8 two-register
// permutes (its low 5 bits) and three blends (bits 5, 6 and 7).
inline std::uint32_t decode_dynamic_avx512(const float* map, const std::uint8_t* codes, std::uint32_t n, float scale,
                                           float* out) {
  using avx512::floats16;
  using avx512::ints16;
  floats16 t[16];
  for (int k = 0; k < 16; ++k) std::memcpy(&t[k], map + 16 * k, sizeof t[k]);
  std::uint32_t j = 0;
  for (; j + 16 <= n; j += 16) {
    avx512::bytes16 c;
    std::memcpy(&c, codes + j, sizeof c);
    const ints16 idx = avx512::widen(c);
    floats16 p[8];
    for (int k = 0; k < 8; ++k) p[k] = avx512::pick32(t[2 * k], idx, t[2 * k + 1]);
    const ints16 b5 = (idx & 32) != 0, b6 = (idx & 64) != 0, b7 = (idx & 128) != 0;
    for (int k = 0; k < 4; ++k) p[k] = b5 ? p[2 * k + 1] : p[2 * k];
    for (int k = 0; k < 2; ++k) p[k] = b6 ? p[2 * k + 1] : p[2 * k];
    const floats16 v = (b7 ? p[1] : p[0]) * scale;
    std::memcpy(out + j, &v, sizeof v);
  }
  return j;
}
#endif

// (MIXPREC_HOST_AVX512 implies that __has_builtin exists; the test is
// nested so that compilers without it never parse it.)
#if defined(MIXPREC_HOST_AVX512) && defined(__AVX512VBMI__) && defined(__AVX512BW__)
#if __has_builtin(__builtin_shufflevector) && (!defined(__clang__) || __has_builtin(__builtin_ia32_vpermi2varqi512))
#define MIXPREC_HOST_AVX512_VBMI 1
#endif
#endif
#if defined(MIXPREC_HOST_AVX512_VBMI)
// With AVX-512 VBMI, 64 codes are looked up at once, a byte of each value
// at a time: a 128-entry byte table fits two registers and one vpermt2b
// reads it for 64 indices. A value's bytes (its byte planes) are then
// interleaved into 32-bit lanes. About 25 vector instructions for 64
// dynamic-map codes (four planes, 256 entries), where the float permutes
// above take 52, and 13 for 64 e4m3 codes (a float of an e4m3 value has
// its low 16 bits zero, and the sign is the code's bit 7, so two planes of
// 128 entries).
namespace avx512 {
typedef std::uint8_t bytes64 __attribute__((vector_size(64)));
typedef std::uint16_t words32 __attribute__((vector_size(64)));
typedef char chars64 __attribute__((vector_size(64)));
typedef signed char signed_bytes64 __attribute__((vector_size(64)));
// {lo, hi}[idx[i] % 128] for each byte i.
inline bytes64 pick128(bytes64 lo, bytes64 idx, bytes64 hi) {
#if defined(__clang__)
  return reinterpret_cast<bytes64>(__builtin_ia32_vpermi2varqi512(
      reinterpret_cast<chars64>(lo), reinterpret_cast<chars64>(idx), reinterpret_cast<chars64>(hi)));
#else
  return __builtin_shuffle(lo, hi, idx);
#endif
}
// The shuffles below work within 128-bit lanes as the unpack instructions
// do: element i of the result, in lane L = i / (16 / size) at position k,
// comes from a (k even) or b (k odd) at lane L's element k / 2, from the
// lane's low half (Hi = 0) or its high half.
constexpr int interleaved(int i, int per_lane, int count, bool hi) {
  return (i % per_lane) % 2 * count + (i / per_lane) * per_lane + (hi ? per_lane / 2 : 0) + (i % per_lane) / 2;
}
template <bool Hi, std::size_t... I>
inline bytes64 interleave_bytes(bytes64 a, bytes64 b, std::index_sequence<I...>) {
  return __builtin_shufflevector(a, b, interleaved(static_cast<int>(I), 16, 64, Hi)...);
}
template <bool Hi, std::size_t... I>
inline words32 interleave_words(words32 a, words32 b, std::index_sequence<I...>) {
  return __builtin_shufflevector(a, b, interleaved(static_cast<int>(I), 8, 32, Hi)...);
}
// The codes' order that makes the interleaving's four results hold
// elements 0-15, 16-31, 32-47 and 48-63: byte q = 16 L + 4 r + t of the
// interleaving's input ends in result r at dword 4 L + t, so it takes code
// 16 r + 4 L + t (q's bit fields L and r swapped).
constexpr int plane_order(int q) { return (q & 0x30) >> 2 | (q & 0x0c) << 2 | (q & 3); }
template <std::size_t... I>
inline bytes64 to_plane_order(bytes64 c, std::index_sequence<I...>) {
  return __builtin_shufflevector(c, c, plane_order(static_cast<int>(I))...);
}
// 64 floats from their byte planes (p[k]: byte k of each, in plane order),
// as 4 vectors of 16.
inline void assemble(const bytes64 (&p)[4], floats16 (&out)[4]) {
  using seq64 = std::make_index_sequence<64>;
  using seq32 = std::make_index_sequence<32>;
  const words32 lo01 = reinterpret_cast<words32>(interleave_bytes<false>(p[0], p[1], seq64{}));
  const words32 hi01 = reinterpret_cast<words32>(interleave_bytes<true>(p[0], p[1], seq64{}));
  const words32 lo23 = reinterpret_cast<words32>(interleave_bytes<false>(p[2], p[3], seq64{}));
  const words32 hi23 = reinterpret_cast<words32>(interleave_bytes<true>(p[2], p[3], seq64{}));
  out[0] = reinterpret_cast<floats16>(interleave_words<false>(lo01, lo23, seq32{}));
  out[1] = reinterpret_cast<floats16>(interleave_words<true>(lo01, lo23, seq32{}));
  out[2] = reinterpret_cast<floats16>(interleave_words<false>(hi01, hi23, seq32{}));
  out[3] = reinterpret_cast<floats16>(interleave_words<true>(hi01, hi23, seq32{}));
}
}  // namespace avx512

// The byte planes of a table of 256 floats: plane[k][q] holds byte k of
// entries 64 q .. 64 q + 63.
struct byte_planes {
  avx512::bytes64 plane[4][4];
};
inline byte_planes make_byte_planes(const float* table, int entries) {
  byte_planes out{};
  for (int c = 0; c < entries; ++c) {
    std::uint32_t bits;
    std::memcpy(&bits, table + c, sizeof bits);
    for (int k = 0; k < 4; ++k) out.plane[k][c / 64][c % 64] = static_cast<std::uint8_t>(bits >> (8 * k));
  }
  return out;
}
template <bool Signed>
inline const byte_planes& dynamic_map_planes() {
  static const byte_planes planes = make_byte_planes(Signed ? dynamic_map_signed.v : dynamic_map_unsigned.v, 256);
  return planes;
}
// The e4m3 magnitudes 0..127 as floats (from widen_bits, as decode).
inline const byte_planes& e4m3_planes() {
  static const byte_planes planes = [] {
    float v[128];
    for (int c = 0; c < 128; ++c) v[c] = widen_bits<fp8_e4m3>(static_cast<std::uint8_t>(c));
    return make_byte_planes(v, 128);
  }();
  return planes;
}

// table[codes[j]] * scale for the first n - n % 64 codes (returned), by
// byte planes. Fp8: the table holds the 128 e4m3 magnitudes, whose low two
// bytes are 0, and bit 7 of a code is its sign.
template <bool Fp8>
inline std::uint32_t decode_by_planes(const byte_planes& t, const std::uint8_t* codes, std::uint32_t n, float scale,
                                      float* out) {
  using avx512::bytes64;
  constexpr int first = Fp8 ? 2 : 0;  // the planes that are not all 0
  bytes64 tab[4][4];
  for (int k = first; k < 4; ++k)
    for (int q = 0; q < (Fp8 ? 2 : 4); ++q) tab[k][q] = t.plane[k][q];
  std::uint32_t j = 0;
  for (; j + 64 <= n; j += 64) {
    bytes64 c;
    std::memcpy(&c, codes + j, sizeof c);
    c = avx512::to_plane_order(c, std::make_index_sequence<64>{});
    bytes64 p[4] = {};
    if constexpr (Fp8) {
      p[2] = avx512::pick128(tab[2][0], c, tab[2][1]);
      p[3] = avx512::pick128(tab[3][0], c, tab[3][1]) | (c & 0x80);
    } else {
      const auto upper = reinterpret_cast<avx512::signed_bytes64>(c) < 0;  // codes 128..255
      p[0] = upper ? avx512::pick128(tab[0][2], c, tab[0][3]) : avx512::pick128(tab[0][0], c, tab[0][1]);
      p[1] = upper ? avx512::pick128(tab[1][2], c, tab[1][3]) : avx512::pick128(tab[1][0], c, tab[1][1]);
      p[2] = upper ? avx512::pick128(tab[2][2], c, tab[2][3]) : avx512::pick128(tab[2][0], c, tab[2][1]);
      p[3] = upper ? avx512::pick128(tab[3][2], c, tab[3][3]) : avx512::pick128(tab[3][0], c, tab[3][1]);
    }
    avx512::floats16 v[4];
    avx512::assemble(p, v);
    v[0] *= scale;
    v[1] *= scale;
    v[2] *= scale;
    v[3] *= scale;
    std::memcpy(out + j, v, sizeof v);
  }
  return j;
}
#endif

// Encoding and decoding of one entry of a coded field of format F.
template <format_id F>
struct block_code {
  static_assert(is_coded(F), "block_code: a block-scaled 8-bit state format");
  static constexpr bool fp8 = F == format_id::e4m3 || F == format_id::e4m3u;
  // Codes of a non-negative field: never zero (a zero block aside).
  static constexpr bool non_negative = F == format_id::dynamic8u || F == format_id::e4m3u;
  // The code of every entry of an all-zero block (scale 0): 0 (dynamic8
  // signed: 127).
  static constexpr std::uint8_t zero_code = fp8 || non_negative ? 0 : 127;
  // The code stored for the nearest code c: a non-negative field's zero
  // (+0, or -0 from rounding) is its smallest non-zero code (e4m3: 2^-9;
  // dynamic8: map[0] is 0).
  MIXPREC_HOST_DEVICE static std::uint8_t kept(std::uint8_t c) {
    if constexpr (!non_negative) return c;
    else if constexpr (fp8) return (c & 0x7f) == 0 ? 1 : c;
    else return c == 0 ? 1 : c;
  }
  // The scale of a block whose largest magnitude is absmax.
  MIXPREC_HOST_DEVICE static float scale_of(float absmax) {
    if constexpr (fp8) return absmax / 448.0f;
    else return absmax;
  }
  MIXPREC_HOST_DEVICE static std::uint8_t encode(float x, float scale) {
    if (scale == 0.0f) return zero_code;
    if constexpr (fp8) {
#if defined(__CUDA_ARCH__)
      return kept(to_bits(convert<fp8_e4m3, overflow_saturate>(x / scale)));
#else
      return kept(e4m3_code_by_arithmetic(x / scale));
#endif
    } else {
      return kept(nearest_dynamic_code<!non_negative>(x / scale));
    }
  }
  // The codes of n values of a block whose scale is `scale`, as encode
  // gives them: on the host a loop without branches, which vectorises.
  MIXPREC_HOST_DEVICE static void encode_n(const float* x, std::uint32_t n, float scale, std::uint8_t* out) {
#if defined(__CUDA_ARCH__)
    for (std::uint32_t j = 0; j < n; ++j) out[j] = encode(x[j], scale);
#else
    if (scale == 0.0f) {
      for (std::uint32_t j = 0; j < n; ++j) out[j] = zero_code;
    } else if constexpr (fp8) {
      MIXPREC_PRAGMA_SIMD
      for (std::uint32_t j = 0; j < n; ++j) out[j] = kept(e4m3_code_by_arithmetic(x[j] / scale));
    } else {
      const dynamic_code_search& s = dynamic_code_search_of<!non_negative>();
      MIXPREC_PRAGMA_SIMD
      for (std::uint32_t j = 0; j < n; ++j) out[j] = kept(nearest_dynamic_code_by_table(x[j] / scale, s));
    }
#endif
  }
  MIXPREC_HOST_DEVICE static float decode(std::uint8_t code, float scale) {
    if constexpr (fp8) return to_float(from_bits<fp8_e4m3>(code)) * scale;
    else return dynamic_map<!non_negative>()[code] * scale;
  }
  // The values of n codes of a block, as decode gives them. With AVX-512 on
  // the host, the codes are looked up in registers: by byte planes with
  // VBMI (both formats), else dynamic8 by float permutes (g++ builds a table
  // gather from 16 scalar loads and inserts, about half the 8-bit step's
  // decoding time; e4m3's arithmetic vectorises as it is).
  MIXPREC_HOST_DEVICE static void decode_n(const std::uint8_t* codes, std::uint32_t n, float scale, float* out) {
    std::uint32_t j = 0;
#if defined(MIXPREC_HOST_AVX512_VBMI)
    if constexpr (fp8) j = decode_by_planes<true>(e4m3_planes(), codes, n, scale, out);
    else j = decode_by_planes<false>(dynamic_map_planes<!non_negative>(), codes, n, scale, out);
#elif defined(MIXPREC_HOST_AVX512)
    if constexpr (!fp8) j = decode_dynamic_avx512(dynamic_map<!non_negative>(), codes, n, scale, out);
#endif
    for (; j < n; ++j) out[j] = decode(codes[j], scale);
  }
};

}  // namespace detail
}  // namespace mixprec

MIXPREC_PINNED_END
