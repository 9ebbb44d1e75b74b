// The host's way of drawing stochastic-rounding bits in the update pass
// (train/passes.hpp, update_body): the weight writer's and the drawn state
// fields' bits of a chunk of a tile row, a generator call per 2 * words (or
// words) elements (cast/generator.hpp, fill_draws), before the row's
// vectorised element loop reads them (train/pass_runner.hpp). The same bits
// as drawing per element.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include <mixprec/cast/generator.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/train/passes.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

// Elements per run of stochastic-rounding draws on the host (measured:
// 256-1024 equally good, a whole 4096-element row 5-10% slower).
inline constexpr std::uint32_t draw_chunk = 1024;

template <class Body>
struct host_row_draws {
  using Env = typename Body::env_type;
  using context = typename Body::context;
  using draw_type = typename Body::draw_type;
  static constexpr plan_data d = Body::d;
  static constexpr std::size_t nfields = Body::nfields;
  static constexpr bool writer_draws = Body::writer_draws;
  using writer_generator = typename Body::writer_generator;
  template <std::size_t G>
  using field_generator = typename Body::template field_generator<G>;

  const Body& body;

  // The writer's draws of elements [first, first + n) of this tile row.
  const draw_type* fill_draws(const context& ctx, std::uint64_t first, std::uint32_t n, draw_type* out) const {
    if constexpr (writer_draws) {
      return mixprec::fill_draws<writer_generator>(get<static_cast<std::size_t>(d.writer)>(body.env.comps).seed, ctx.t,
                                                   first, n, out);
    } else {
      (void)ctx, (void)first, (void)n;
      return out;
    }
  }
  // Fills the drawn fields' draws of elements [first, first + n) of a tile
  // row into buffers[j] (room for n + draw_slack each) and points out[g] at
  // each field's draw of column 0 (`first` is column c0 of the row).
  void fill_field_draws(const context& ctx, std::uint64_t first, std::uint32_t c0, std::uint32_t n,
                        std::uint16_t (*buffers)[draw_chunk + draw_slack], const std::uint16_t** out) const {
    std::size_t j = 0;
    fill_field_draws_of(ctx, first, c0, n, buffers, out, j, std::make_index_sequence<nfields>{});
  }
  template <std::size_t... G>
  void fill_field_draws_of([[maybe_unused]] const context& ctx, [[maybe_unused]] std::uint64_t first,
                           [[maybe_unused]] std::uint32_t c0, [[maybe_unused]] std::uint32_t n,
                           [[maybe_unused]] std::uint16_t (*buffers)[draw_chunk + draw_slack],
                           [[maybe_unused]] const std::uint16_t** out, [[maybe_unused]] std::size_t& j,
                           std::index_sequence<G...>) const {
    (fill_field_draw<G>(ctx, first, c0, n, buffers, out, j), ...);
  }
  template <std::size_t G>
  void fill_field_draw(const context& ctx, std::uint64_t first, std::uint32_t c0, std::uint32_t n,
                       std::uint16_t (*buffers)[draw_chunk + draw_slack], const std::uint16_t** out,
                       std::size_t& j) const {
    out[G] = nullptr;
    if constexpr (Env::field_drawn(G))
      out[G] = mixprec::fill_draws<field_generator<G>>(body.env.fields[G].seed, ctx.t, first - body.env.shard_begin, n,
                                                       buffers[j++]) -
               c0;
    else (void)ctx, (void)first, (void)c0, (void)n, (void)buffers, (void)j;
  }
};

}  // namespace mixprec::detail

MIXPREC_PINNED_END
