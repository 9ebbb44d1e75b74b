// Per-parameter reductions over the arena (one value per segment), in one
// tiled pass plus a per-segment combination of the tile partials: sums of
// squares and L2 norms, accumulated in double. Empty parameters give 0.
#pragma once

#include <cstddef>

#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/for_each.hpp>
#include <mixprec/detail/square_sum.hpp>
#include <mixprec/detail/tiles.hpp>
#include <mixprec/detail/workspace.hpp>
#include <mixprec/tensor/arena_layout.hpp>
#include <mixprec/tensor/reductions.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {
namespace detail {

template <class T>
struct segment_squares_body : tiled {
  using value_type = double;
  using context = no_context;
  const T* data;
  MIXPREC_HOST_DEVICE context enter(std::size_t) const { return {}; }
  MIXPREC_HOST_DEVICE double identity() const { return 0.0; }
  MIXPREC_HOST_DEVICE void accumulate(double& acc, std::size_t i, const context&) const {
    acc = add_square(acc, to_float(data[i]));
  }
  MIXPREC_HOST_DEVICE double combine(const double& a, const double& b) const { return a + b; }
};

}  // namespace detail

// out[k] = sum of squares of segment k of `data` (an arena role), for every
// segment; `out` is device memory with layout.segment_count() entries.
template <class T>
void segment_sum_of_squares(const arena_layout& layout, const T* data, double* out, workspace& ws, stream s = {}) {
  const tiling& tiles = layout.tiling();
  const std::size_t ntiles = tiles.tile_count();
  ws.reserve(workspace::round_up(ntiles * sizeof(double)));
  double* partials = ws.slice<double>(0, ntiles);
  const detail::segment_squares_body<T> body{{tiles.tiles()}, data};
  detail::reduce_tiles(s, ntiles, body, partials);
  detail::combine_segments(s, body, static_cast<const double*>(partials), tiles.segment_offsets(),
                           layout.segment_count(), out);
}

// out[k] = L2 norm of segment k.
template <class T>
void segment_l2_norms(const arena_layout& layout, const T* data, double* out, workspace& ws, stream s = {}) {
  segment_sum_of_squares(layout, data, out, ws, s);
  detail::for_each_index(s, layout.segment_count(), detail::sqrt_in_place{out});
}

}  // namespace mixprec

MIXPREC_PINNED_END
