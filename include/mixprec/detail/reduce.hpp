// Reductions over [0, n) whose result is written to device memory: nothing
// comes back to the host unless the caller reads it explicitly.
//
// An op O provides:
//   using value_type = ...;
//   MIXPREC_HOST_DEVICE value_type identity() const;
//   MIXPREC_HOST_DEVICE void accumulate(value_type&, std::size_t i) const;
//   MIXPREC_HOST_DEVICE value_type combine(const value_type&, const value_type&) const;
// The partials live in the caller's workspace, so repeated reductions
// allocate nothing.
#pragma once

#include <cstddef>

#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/tiles.hpp>
#include <mixprec/detail/workspace.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

template <class Op>
struct uniform_reduce_body {
  using value_type = typename Op::value_type;
  using context = no_context;
  Op op;
  uniform_tiling tiling;
  MIXPREC_HOST_DEVICE index_range range(std::size_t t) const { return tiling.range(t); }
  MIXPREC_HOST_DEVICE context enter(std::size_t) const { return {}; }
  MIXPREC_HOST_DEVICE value_type identity() const { return op.identity(); }
  MIXPREC_HOST_DEVICE void accumulate(value_type& acc, std::size_t i, const context&) const { op.accumulate(acc, i); }
  MIXPREC_HOST_DEVICE value_type combine(const value_type& a, const value_type& b) const { return op.combine(a, b); }
};

// Workspace bytes transform_reduce needs for n elements.
template <class Op>
std::size_t transform_reduce_bytes(std::size_t n) {
  using T = typename Op::value_type;
  return workspace::round_up(tile_count(n) * sizeof(T)) + combine_scratch_bytes<T>(tile_count(n));
}

// *out (device memory) = the reduction of op over [0, n).
template <class Op>
void transform_reduce(stream s, workspace& ws, std::size_t n, const Op& op, typename Op::value_type* out) {
  using T = typename Op::value_type;
  const std::size_t ntiles = tile_count(n);
  ws.reserve(transform_reduce_bytes<Op>(n));
  T* partials = ws.slice<T>(0, ntiles);
  T* scratch = ws.slice<T>(workspace::round_up(ntiles * sizeof(T)), combine_blocks(ntiles));
  const uniform_reduce_body<Op> body{op, uniform_tiling{n}};
  reduce_tiles(s, ntiles, body, partials);
  combine_all(s, body, static_cast<const T*>(partials), ntiles, out, scratch);
}

}  // namespace mixprec::detail

MIXPREC_PINNED_END
