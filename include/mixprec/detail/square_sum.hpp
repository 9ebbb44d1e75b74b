// One step of a sum of squares of floats in double: acc + a * a, where a is
// a float widened to double. The square of a float is exact in double (24
// significant bits squared need 48 of the 53; float's range squared stays
// inside double's normal range), so a fused multiply-add gives the same
// bits as the multiply and the add. It is used where the target has one:
// one instruction instead of two, in loops that are bound by instructions
// rather than memory (the host's statistics sweep over bf16 gradients).
#pragma once

#include <cmath>

#include <mixprec/core/config.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

MIXPREC_HOST_DEVICE double add_square(double acc, float v) {
  const double a = static_cast<double>(v);
#if defined(__CUDA_ARCH__)
  return ::fma(a, a, acc);
#elif defined(__FMA__)
  return std::fma(a, a, acc);
#else
  return acc + a * a;
#endif
}

}  // namespace mixprec::detail

MIXPREC_PINNED_END
