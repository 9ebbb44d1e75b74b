// Conversion of whole device ranges under a rounding style and overflow
// policy: one element-wise launch. Stochastic rounding keys element i on its
// position i + index_offset, so converting a range in pieces (with matching
// offsets) gives the same bits as converting it whole.
#pragma once

#include <cstddef>
#include <cstdint>

#include <mixprec/cast/convert.hpp>
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

}  // namespace detail

// dst[i] = convert<To, O>(src[i], round, index_offset + i) for i < n.
// src and dst are device pointers; they may not overlap unless equal in type.
template <class To, class O = overflow_to_infinity, class From, class R = round_nearest_even>
void convert_n(const From* src, std::size_t n, To* dst, R round = {}, stream s = {},
               std::uint64_t index_offset = 0) {
  detail::for_each_index(s, n, detail::convert_body<To, From, R, O>{src, dst, converter<To, R, O>{round}, index_offset});
}

}  // namespace mixprec
