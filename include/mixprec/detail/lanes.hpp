// The host's fixed-order reduction of a run of values: sixteen interleaved
// accumulators (independent chains, so the lane loop vectorises without
// reassociating any sum), combined by one fixed tree. Every host reduction
// that must give the same bits whatever the thread count uses these.
#pragma once

#include <mixprec/core/config.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

inline constexpr int interleaved_lanes = 16;

// Lane l absorbs lane l + width, for width 8, 4, 2, 1; the result is lane 0.
template <class T, class Combine>
MIXPREC_HOST_DEVICE T fold_lanes(T (&lane)[interleaved_lanes], const Combine& combine) {
  for (int width = interleaved_lanes / 2; width > 0; width /= 2)
    for (int l = 0; l < width; ++l) lane[l] = combine(lane[l], lane[l + width]);
  return lane[0];
}

}  // namespace mixprec::detail

MIXPREC_PINNED_END
