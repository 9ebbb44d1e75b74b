// Bit-level reinterpretation usable in host and device code.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include <mixprec/core/config.hpp>

namespace mixprec::detail {

template <class To, class From>
MIXPREC_HOST_DEVICE To bit_cast(const From& from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast needs types of equal size");
  To to;
  memcpy(static_cast<void*>(&to), static_cast<const void*>(&from), sizeof(To));
  return to;
}

}  // namespace mixprec::detail
