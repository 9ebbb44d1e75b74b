// Raw bit access to the storage formats.
//
// CUDA's format types keep their bits in a protected member; memcpy-based
// reinterpretation is the portable way in and compiles to a plain load.
#pragma once

#include <mixprec/core/bit.hpp>
#include <mixprec/format/format_traits.hpp>

namespace mixprec {

template <class T>
using bits_t = typename format_traits<T>::bits_type;

template <class T>
MIXPREC_HOST_DEVICE bits_t<T> to_bits(T value) {
  return detail::bit_cast<bits_t<T>>(value);
}

template <class T>
MIXPREC_HOST_DEVICE T from_bits(bits_t<T> bits) {
  return detail::bit_cast<T>(bits);
}

}  // namespace mixprec
