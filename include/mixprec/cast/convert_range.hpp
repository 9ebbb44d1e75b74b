// Conversion of whole device ranges under a rounding style and overflow
// policy: one element-wise launch. Stochastic rounding keys element i on its
// position i + index_offset, so converting a range in pieces (with matching
// offsets) gives the same bits as converting it whole.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <mixprec/cast/convert.hpp>
#include <mixprec/cast/host_hardware_convert.hpp>
#include <mixprec/detail/for_each.hpp>

namespace mixprec {
namespace detail {

template <class To, class From, class R, class O>
struct convert_body {
  const From* src;
  To* dst;
  converter<To, R, O> conv;
  std::uint64_t index_offset;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { dst[i] = conv(src[i], index_offset + i); }
};

#if !defined(MIXPREC_BACKEND_CUDA)
// Stochastic rounding on the host, a chunk of elements per call: the
// chunk's draws are made at once (fill_draws, one generator call per 2 *
// words or words elements) rather than one call per element, then each
// element takes its draw as stochastic_draw would. Same bits as convert_body.
inline constexpr std::size_t convert_chunk = 1024;
template <class To, class From, class O, class G>
struct convert_stochastic_chunk {
  static constexpr int bits = format_traits<To>::total_bits;
  using draw_type = std::conditional_t<bits == 16, std::uint16_t, std::uint32_t>;
  const From* src;
  To* dst;
  std::size_t n;
  round_stochastic<G> round;
  std::uint64_t index_offset;
  void operator()(std::size_t chunk) const {
    const std::size_t i0 = chunk * convert_chunk, i1 = std::min(n, i0 + convert_chunk);
    alignas(64) draw_type draws[convert_chunk + draw_slack];
    const draw_type* d = fill_draws<G>(round.seed, round.stream, index_offset + i0, i1 - i0, draws);
    for (std::size_t i = i0; i < i1; ++i) {
      const std::uint32_t r =
          bits == 16 ? static_cast<std::uint32_t>(d[i - i0]) << 16 : static_cast<std::uint32_t>(d[i - i0]);
      float f;
      if constexpr (std::is_same_v<From, double>) f = round_to_odd(src[i]);
      else f = to_float(src[i]);
      dst[i] = stochastic_round<To, O>(f, r);
    }
  }
};
#endif

#if defined(MIXPREC_HOST_F16C) && !defined(MIXPREC_BACKEND_CUDA)
// float <-> half on the host, a chunk of elements per call through the
// CPU's conversion instructions (cast/host_hardware_convert.hpp).
inline constexpr std::size_t f16c_chunk = 8192;
template <class To, class From, class R>
struct f16c_convert_chunk {
  const From* src;
  To* dst;
  std::size_t n;
  void operator()(std::size_t chunk) const {
    const std::size_t i0 = chunk * f16c_chunk, m = std::min(n - i0, f16c_chunk);
    if constexpr (std::is_same_v<To, half>) f16c_narrow_n<R>(src + i0, m, dst + i0);
    else f16c_widen_n(src + i0, m, dst + i0);
  }
};
#endif

}  // namespace detail

// dst[i] = convert<To, O>(src[i], round, index_offset + i) for i < n.
// src and dst are device pointers; they may not overlap unless equal in type.
template <class To, class O = overflow_to_infinity, class From, class R = round_nearest_even>
void convert_n(const From* src, std::size_t n, To* dst, R round = {}, stream s = {}, std::uint64_t index_offset = 0) {
#if !defined(MIXPREC_BACKEND_CUDA)
  if constexpr (is_round_stochastic_v<R> && !std::is_same_v<To, float>) {
    const std::size_t chunks = (n + detail::convert_chunk - 1) / detail::convert_chunk;
    detail::for_each_index(
        s, chunks,
        detail::convert_stochastic_chunk<To, From, O, typename R::generator>{src, dst, n, round, index_offset});
    return;
  }
#endif
#if defined(MIXPREC_HOST_F16C) && !defined(MIXPREC_BACKEND_CUDA)
  if constexpr ((std::is_same_v<From, float> && detail::host_hardware_narrowing<To, R, O>) ||
                (std::is_same_v<To, float> && detail::host_hardware_widening<From>)) {
    const std::size_t chunks = (n + detail::f16c_chunk - 1) / detail::f16c_chunk;
    detail::for_each_index(s, chunks, detail::f16c_convert_chunk<To, From, R>{src, dst, n});
    return;
  }
#endif
  detail::for_each_index(s, n,
                         detail::convert_body<To, From, R, O>{src, dst, converter<To, R, O>{round}, index_offset});
}

}  // namespace mixprec
