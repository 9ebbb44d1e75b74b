// The GPU's way through a tile without positions in a measuring pass
// (train/passes.hpp, measure_body), as update_groups is for the update pass:
// a thread loads the gradients and weights of `group` consecutive elements
// 16 bytes at a time, then computes each element's values with
// measure_body::values_of. The same values as one element at a time. The
// host runs it under host_gpu_order (train/host_strategy.hpp), so that this
// code is tested without a GPU.
#pragma once

#include <cstdint>

#include <mixprec/cast/convert.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/vector_access.hpp>
#include <mixprec/train/passes.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

template <class Body>
struct measure_groups {
  using Env = typename Body::env_type;
  using arena_type = typename Env::arena_type;
  using grad_type = typename arena_type::grad_type;
  using model_type = typename arena_type::model_type;
  using context = typename Body::context;
  static constexpr int N = Body::nstats > 0 ? Body::nstats : 1;
  static constexpr std::uint32_t group = 8;

  const Body& body;

  // The tile starting at element `begin` can be loaded in groups: its first
  // element and the weights it reads lie on 16-byte boundaries.
  MIXPREC_HOST_DEVICE bool fits(std::uint64_t begin) const {
    const auto& a = body.env.arena;
    bool ok = begin % group == 0 && piece_aligned<sizeof(grad_type) * group>(a.grad + begin);
    if constexpr (arena_type::has_master)
      ok = ok && piece_aligned<sizeof(float) * group>(a.master + (begin - a.master_begin));
    else ok = ok && piece_aligned<sizeof(model_type) * group>(a.model + begin);
    return ok;
  }

  // The values of every statistic of the pass for elements i0 .. i0 + group
  // (columns c0 .. c0 + group of the tile's only row).
  MIXPREC_HOST_DEVICE void values(std::uint64_t i0, std::uint32_t c0, const context& ctx, const tile_scalars<Env>& sc,
                                  float (&out)[group][N]) const {
    const auto& a = body.env.arena;
    alignas(16) grad_type g[group];
    alignas(16) float w[group];
    copy_pieces<sizeof(g)>(a.grad + i0, g);
    if constexpr (arena_type::has_master) {
      copy_pieces<sizeof(w)>(a.master + (i0 - a.master_begin), w);
    } else {
      alignas(16) model_type m[group];
      copy_pieces<sizeof(m)>(a.model + i0, m);
      for (std::uint32_t j = 0; j < group; ++j) w[j] = to_float(m[j]);
    }
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (std::uint32_t j = 0; j < group; ++j) body.values_of(i0 + j, 0, c0 + j, ctx, sc, to_float(g[j]), w[j], out[j]);
  }
};

}  // namespace mixprec::detail

MIXPREC_PINNED_END
