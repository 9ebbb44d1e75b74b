// The passes of a step, as tiled bodies over the arena (the plan,
// train/plan.hpp, says which passes there are):
//
//   measure_body<Q>   a statistics or measuring pass: runs the components
//                     the plan gives it (stages write their state the first
//                     time a pass runs them; later passes recompute them
//                     read-only) and returns, per tile, the values its
//                     statistics are reduced from;
//   update_body       the last pass: every component, then the weights (or,
//                     transform_gradients, the gradients) are written;
//   decide_body<L>    one device thread: the scalar rules of level L;
//   entry_body<K, E>  one thread per row, column or parameter: component
//                     K's entry rule.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <mixprec/cast/convert.hpp>
#include <mixprec/component/component.hpp>
#include <mixprec/component/pod_tuple.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/square_sum.hpp>
#include <mixprec/detail/vector_access.hpp>
#include <mixprec/train/context.hpp>
#include <mixprec/train/environment.hpp>
#include <mixprec/train/plan.hpp>
#include <mixprec/train/reduction.hpp>
#include <mixprec/train/writers.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

template <class Env>
struct tile_scalars {
  typename Env::scalars_tuple now, at_start;
};
template <class Env>
MIXPREC_HOST_DEVICE tile_scalars<Env> load_scalars(const Env& env) {
  return {env.block->comps, env.block->at_start};
}

template <int Q, class Env, std::size_t... S>
MIXPREC_HOST_DEVICE void load_tile_stats(const Env& env, tile_values<Env>& v, std::index_sequence<S...>);
template <int Q, int S, class Env>
MIXPREC_HOST_DEVICE void load_tile_stat(const Env& env, tile_values<Env>& v);

// The per-tile values of pass Q.
template <int Q, class Env>
MIXPREC_HOST_DEVICE tile_values<Env> enter_tile(const Env& env, std::size_t t) {
  constexpr plan_data d = Env::plan::data;
  const step_tile& tile = env.tiles[t];
  tile_values<Env> v;
  v.geometry = env.geometry + tile.param;
  v.param = tile.param;
  v.row0 = tile.row0;
  v.col0 = tile.col0;
  v.batch = tile.batch;
  v.slice = tile.slice;
  v.group = env.groups[env.groups_of[tile.param]];
  v.t = env.block->step.t;
  v.skip = env.block->step.skip != 0;
  v.hold = env.block->step.hold != 0;
  for (std::size_t f = 0; f != Env::nfields; ++f)
    v.field_base[f] = env.fields[f].data != nullptr ? env.fields[f].base[tile.param] : 0;
  load_tile_stats<Q>(env, v, std::make_index_sequence<static_cast<std::size_t>(d.nstats)>{});
  return v;
}

// Statistics that components running in pass Q read per tile: the value
// (global, per parameter, per slice) or the scale (per row, per column).
template <int Q, class Env, std::size_t... S>
MIXPREC_HOST_DEVICE void load_tile_stats(const Env& env, tile_values<Env>& v, std::index_sequence<S...>) {
  (load_tile_stat<Q, static_cast<int>(S), Env>(env, v), ...);
}
template <int Q, int S, class Env>
MIXPREC_HOST_DEVICE void load_tile_stat(const Env& env, tile_values<Env>& v) {
  constexpr plan_data d = Env::plan::data;
  constexpr stat_entry e = d.stats[S];
  // Read only where it is known: reduced by an earlier pass of this step.
  if constexpr (e.pass < Q && runs_in(d, e.component, Q)) {
    const auto& comp = get<static_cast<std::size_t>(e.component)>(env.comps);
    const double scale = derived_scale<Env, S>(env.block->factor, power_of(comp, static_cast<std::size_t>(e.local)));
    v.stat_scale[S] = scale;
    const param_geometry& g = *v.geometry;
    if constexpr (e.decl.where == scope::row || e.decl.where == scope::column || e.decl.where == scope::block) {
      v.stat_value[S] = 0.0;
    } else {
      v.stat_value[S] = mul(env.stats[S][stat_offset(e.decl.where, g, v.param, 0, 0, 0, v.slice)], scale);
    }
  } else {
    (void)env;
    v.stat_value[S] = 0.0;
    v.stat_scale[S] = 1.0;
  }
}

// Elements per run of stochastic-rounding draws on the host (measured:
// 256-1024 equally good, a whole 4096-element row 5-10% slower).
inline constexpr std::uint32_t draw_chunk = 1024;

// Runs components [0, end of pass Q) on one element; calls
// capture(position, value) at every position a statistic of the pass reads.
template <int Q, class Env, int Code, bool FieldDraws = false, class Lane = no_lane>
struct chain_runner {
  static constexpr plan_data d = Env::plan::data;
  static constexpr int end = d.passes[Q].end;
  static constexpr bool update_pass = d.passes[Q].kind == pass_kind::update;

  const Env& env;
  const tile_values<Env>& tile;
  const tile_scalars<Env>& sc;
  const std::uint16_t* const* field_draws = nullptr;  // the state fields' draws, if drawn ahead
  const Lane* lane = nullptr;                         // the grouped update pass: the element's lane

  template <class Capture>
  MIXPREC_HOST_DEVICE float run(std::uint64_t i, std::uint32_t r, std::uint32_t c, float u, float w, float& decay,
                                Capture&& capture) const {
    bool stopped = false;
    run_all(i, r, c, u, w, decay, stopped, capture, std::make_index_sequence<static_cast<std::size_t>(end)>{});
    capture(std::integral_constant<int, end>{}, u);
    return u;
  }

 private:
  template <class Capture, std::size_t... K>
  MIXPREC_HOST_DEVICE void run_all([[maybe_unused]] std::uint64_t i, [[maybe_unused]] std::uint32_t r,
                                   [[maybe_unused]] std::uint32_t c, [[maybe_unused]] float& u,
                                   [[maybe_unused]] float w, [[maybe_unused]] float& decay,
                                   [[maybe_unused]] bool& stopped, [[maybe_unused]] Capture& capture,
                                   std::index_sequence<K...>) const {
    (run_one<K>(i, r, c, u, w, decay, stopped, capture), ...);
  }
  template <std::size_t K, class Capture>
  MIXPREC_HOST_DEVICE void run_one([[maybe_unused]] std::uint64_t i, [[maybe_unused]] std::uint32_t r,
                                   [[maybe_unused]] std::uint32_t c, float& u, [[maybe_unused]] float w,
                                   [[maybe_unused]] float& decay, bool& stopped, Capture& capture) const {
    capture(std::integral_constant<int, static_cast<int>(K)>{}, u);
    if constexpr (d.holder >= 0 && static_cast<int>(K) > d.holder) {
      if (tile.hold) stopped = true;  // this step only accumulates up to the holder
    }
    using component = component_at<Env, K>;
    if constexpr (runs_in(d, static_cast<int>(K), Q) && has_update<component>::value &&
                  !traits_of<component>::writes_weights) {
      if (stopped) return;
      constexpr bool read_only = replays_in(d, static_cast<int>(K), Q);
      // Rules known before the statistics read the scalars of the step's
      // start: the current ones in the statistics pass (which runs before
      // this step's rules), the snapshot taken then in later passes.
      constexpr bool snapshot = reads_start_scalars<Env, K>() && d.passes[Q].level > 0;
      const auto& scalars = snapshot ? get<K>(sc.at_start) : get<K>(sc.now);
      constexpr int variant = Env::template variant<K>(Code);
      const element_context<Env, K, read_only, variant, FieldDraws, Lane> ctx{
          env, tile, scalars, i, r, c, w, &decay, d.passes[Q].kind, nullptr, field_draws, lane};
      u = get<K>(env.comps).update(u, ctx);
    }
  }
};

template <std::size_t F>
struct pass_partial {
  static constexpr std::size_t fields = F > 0 ? F : 1;
  double v[fields];
};

// Statistics pass or measuring pass Q. Squares: every power_sum has p = 2
// (instantiated apart so the element loop does not branch on p).
template <int Q, bool Squares, class Env, int Code>
struct measure_body {
  static constexpr plan_data d = Env::plan::data;
  static constexpr pass_entry pass = d.passes[Q];
  static constexpr int F = pass.fields, NR = pass.row_stats, NC = pass.column_stats, NB = pass.block_stats;
  static constexpr int NS = NR + NC + NB;  // statistics reduced apart from the tile partials (staged on CUDA)
  // The statistics of this pass, in plan order, with the value each reads.
  static constexpr int nstats = F + NS;
  struct stat_list {
    int s[nstats > 0 ? nstats : 1];
  };
  static constexpr stat_list list = [] {
    stat_list l{};
    int k = 0;
    for (int s = 0; s < d.nstats; ++s)
      if (d.stats[s].pass == Q) l.s[k++] = s;
    return l;
  }();
  using value_type = pass_partial<static_cast<std::size_t>(F)>;
  using context = tile_values<Env>;
  // No stage runs in it (the statistics pass): values() has no side effects.
  static constexpr bool pure = pass.level == 0;

  Env env;
  float power[nstats > 0 ? nstats : 1];  // p of each statistic (power_sum)
  float min_normal;                      // of the gradients' format
  double* row_partials[NR > 0 ? NR : 1];
  double* column_partials[NC > 0 ? NC : 1];

  MIXPREC_HOST_DEVICE std::size_t tiles_begin() const { return 0; }
  MIXPREC_HOST_DEVICE context enter(std::size_t t) const { return enter_tile<Q>(env, t); }
  // The statistics pass runs before this step's skip is decided (the flag is
  // the last step's); later passes leave a skipped step alone.
  MIXPREC_HOST_DEVICE bool active(const context& ctx) const { return pass.level == 0 || !ctx.skip; }
  MIXPREC_HOST_DEVICE value_type identity() const {
    value_type v{};
    for (int k = 0; k < F; ++k) v.v[k] = 0.0;
    return v;
  }

  // The value statistic k of the pass reads, for one element (running the
  // components up to its position).
  template <int k>
  MIXPREC_HOST_DEVICE float value(std::uint64_t i, std::uint32_t r, std::uint32_t c, const context& ctx,
                                  const tile_scalars<Env>& sc) const {
    constexpr int pos = d.stats[list.s[k]].position;
    if constexpr (pos == weights_position) {
      return env.arena.weight(i);
    } else if constexpr (pos == gradient_position) {
      return to_float(env.arena.grad[i]);
    } else {
      const float g = to_float(env.arena.grad[i]);
      const float w = env.arena.weight(i);
      float decay = 1.0f, out = 0.0f;
      const chain_runner<Q, Env, Code> runner{env, ctx, sc};
      runner.run(i, r, c, g, w, decay, [&](auto position, float u) {
        if constexpr (decltype(position)::value == pos) out = u;
      });
      return out;
    }
  }
  // The values of every statistic of the pass, for one element (running the
  // components once; stages write their state here if this pass is their first).
  MIXPREC_HOST_DEVICE void values(std::uint64_t i, std::uint32_t r, std::uint32_t c, const context& ctx,
                                  const tile_scalars<Env>& sc, float (&out)[nstats > 0 ? nstats : 1]) const {
    values_of(i, r, c, ctx, sc, to_float(env.arena.grad[i]), env.arena.weight(i), out);
  }

  // The GPU's way through tiles without positions (as update_body's): a
  // thread loads the gradients and weights of 8 consecutive elements 16
  // bytes at a time, then computes their values.
  static constexpr std::uint32_t group = 8;
  using arena_type = typename Env::arena_type;
  using grad_type = typename arena_type::grad_type;
  using model_type = typename arena_type::model_type;
  MIXPREC_HOST_DEVICE bool groups_fit(std::uint64_t begin) const {
    bool ok = begin % group == 0 && piece_aligned<sizeof(grad_type) * group>(env.arena.grad + begin);
    if constexpr (arena_type::has_master)
      ok = ok && piece_aligned<sizeof(float) * group>(env.arena.master + (begin - env.arena.master_begin));
    else ok = ok && piece_aligned<sizeof(model_type) * group>(env.arena.model + begin);
    return ok;
  }
  MIXPREC_HOST_DEVICE void values_group(std::uint64_t i0, std::uint32_t c0, const context& ctx,
                                        const tile_scalars<Env>& sc,
                                        float (&out)[group][nstats > 0 ? nstats : 1]) const {
    alignas(16) grad_type g[group];
    alignas(16) float w[group];
    copy_pieces<sizeof(g)>(env.arena.grad + i0, g);
    if constexpr (arena_type::has_master) {
      copy_pieces<sizeof(w)>(env.arena.master + (i0 - env.arena.master_begin), w);
    } else {
      alignas(16) model_type m[group];
      copy_pieces<sizeof(m)>(env.arena.model + i0, m);
      for (std::uint32_t j = 0; j < group; ++j) w[j] = to_float(m[j]);
    }
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (std::uint32_t j = 0; j < group; ++j) values_of(i0 + j, 0, c0 + j, ctx, sc, to_float(g[j]), w[j], out[j]);
  }

  MIXPREC_HOST_DEVICE void values_of(std::uint64_t i, std::uint32_t r, std::uint32_t c, const context& ctx,
                                     const tile_scalars<Env>& sc, float g, float w,
                                     float (&out)[nstats > 0 ? nstats : 1]) const {
    float decay = 1.0f;
    const chain_runner<Q, Env, Code> runner{env, ctx, sc};
    runner.run(i, r, c, g, w, decay, [&](auto position, float u) {
      store_at<decltype(position)::value>(out, u, std::make_integer_sequence<int, nstats>{});
    });
    store_at<weights_position>(out, w, std::make_integer_sequence<int, nstats>{});
    store_at<gradient_position>(out, g, std::make_integer_sequence<int, nstats>{});
  }
  template <int pos, int... k>
  MIXPREC_HOST_DEVICE static void store_at(float (&out)[nstats > 0 ? nstats : 1], float u,
                                           std::integer_sequence<int, k...>) {
    (store_one<pos, k>(out, u), ...);
  }
  template <int pos, int k>
  MIXPREC_HOST_DEVICE static void store_one(float (&out)[nstats > 0 ? nstats : 1], float u) {
    if constexpr (d.stats[list.s[k]].position == pos) out[k] = u;
  }

  // Statistic k is a non-finite count that a sum of squares of this pass
  // reveals (plan.hpp): in the squares instantiation it is not swept, and
  // finish() sets it from the sum. Host and device: the device passes ask
  // too (a consumer's nvcc need not pass --expt-relaxed-constexpr).
  template <int k>
  MIXPREC_HOST_DEVICE static constexpr bool revealed() {
    return Squares && d.stats[list.s[k]].revealed_by >= 0;
  }
  MIXPREC_HOST_DEVICE void finish(value_type& v) const { finish_each(v, std::make_integer_sequence<int, nstats>{}); }
  template <int... k>
  MIXPREC_HOST_DEVICE void finish_each(value_type& v, std::integer_sequence<int, k...>) const {
    (finish_one<k>(v), ...);
  }
  template <int k>
  MIXPREC_HOST_DEVICE void finish_one(value_type& v) const {
    if constexpr (revealed<k>()) {
      constexpr stat_entry e = d.stats[list.s[k]];
      v.v[e.slot] = finite(v.v[d.stats[e.revealed_by].slot]) ? 0.0 : 1.0;
    }
  }

  template <int k>
  MIXPREC_HOST_DEVICE double contribution_of(float v) const {
    constexpr reduction op = d.stats[list.s[k]].decl.op;
    if constexpr (Squares && op == reduction::power_sum) {
      const double a = static_cast<double>(v);
      return mul(a, a);
    } else {
      return reduction_policy<op>::contribution(v, power[k], min_normal);
    }
  }
  // acc + contribution_of<k>(v), for a statistic that adds (a square by
  // add_square: the same bits in fewer instructions).
  template <int k>
  MIXPREC_HOST_DEVICE double add_contribution(double acc, float v) const {
    constexpr reduction op = d.stats[list.s[k]].decl.op;
    if constexpr (Squares && op == reduction::power_sum) return add_square(acc, v);
    else return acc + contribution_of<k>(v);
  }
  template <int k>
  MIXPREC_HOST_DEVICE bool is_max() const {
    constexpr reduction op = d.stats[list.s[k]].decl.op;
    if constexpr (Squares && op == reduction::power_sum) return false;
    else return reduction_policy<op>::combines_by_max(power[k]);
  }
  MIXPREC_HOST_DEVICE bool field_is_max(int f) const {
    return field_is_max_of(f, std::make_integer_sequence<int, F>{});
  }
  template <int... k>
  MIXPREC_HOST_DEVICE bool field_is_max_of(int f, std::integer_sequence<int, k...>) const {
    bool m = false;
    ((m = (k == f) ? is_max<k>() : m), ...);
    return m;
  }
  MIXPREC_HOST_DEVICE value_type combine(const value_type& a, const value_type& b) const {
    value_type r{};  // zero: a pass of per-block statistics alone has no fields (F = 0)
    for (int k = 0; k < F; ++k) r.v[k] = combine_values(a.v[k], b.v[k], field_is_max(k));
    return r;
  }
};

// The last pass: every component, then the weights (or the gradients).
//
// Two ways to run it over a tile's elements, with the same bits:
//   element()        one element, reading and writing memory as it goes
//                    (the host's vectorised loops; tails and tiles that are
//                    not aligned);
//   element_group()  `group` consecutive elements of an aligned tile (the GPU):
//                    every role and per-element state field of the group is
//                    loaded first, 16 bytes at a time, the elements run on
//                    register copies, then what changed is stored 16 bytes at
//                    a time; the group's draws take one generator call per
//                    2 * words (or words) of them.
template <bool ToGradients, class Env, class Arena, int Code>
struct update_body {
  static constexpr plan_data d = Env::plan::data;
  static constexpr int Q = d.npasses - 1;
  using context = tile_values<Env>;
  using grad_type = typename Arena::grad_type;
  using model_type = typename Arena::model_type;
  Env env;

  MIXPREC_HOST_DEVICE context enter(std::size_t t) const { return enter_tile<Q>(env, t); }
  MIXPREC_HOST_DEVICE bool active(const context& ctx) const { return !ctx.skip; }

  // The host runner draws the writer's stochastic-rounding bits per row
  // (fill_draws) and passes them to element(); element_group draws its own.
  template <class W, class = void>
  struct draws_of : std::false_type {};
  template <class W>
  struct draws_of<W, std::void_t<decltype(W::draws_per_row)>> : std::bool_constant<W::draws_per_row> {};
  static constexpr bool writer_draws = [] {
    if constexpr (ToGradients || d.writer < 0) return false;
    else return draws_of<component_at<Env, static_cast<std::size_t>(d.writer)>>::value;
  }();
  // A draw: a 16-bit slice for 16-bit models, a 32-bit word for 8-bit ones.
  using draw_type = std::conditional_t<format_traits<model_type>::total_bits == 16, std::uint16_t, std::uint32_t>;
  template <class D>
  static constexpr int draw_bits = std::is_same_v<D, std::uint16_t> ? 16 : 8;
  // The generator of the writer, and of global field G's component.
  template <bool Draws, class = void>
  struct writer_generator_of {
    using type = default_generator;
  };
  template <class Void>
  struct writer_generator_of<true, Void> {
    using type = generator_of<component_at<Env, static_cast<std::size_t>(d.writer)>>;
  };
  using writer_generator = typename writer_generator_of<writer_draws>::type;
  template <std::size_t G>
  using field_generator = generator_of<component_at<Env, Env::field_component(G)>>;
  // A generator call's draws in stochastic_draw's layout: 2 * words slices
  // (low half of each word first) or `words` words.
  template <class D, class Block>
  MIXPREC_HOST_DEVICE static void unpack_call(const Block& blk, D* o) {
    constexpr int words = sizeof(blk.v) / sizeof(blk.v[0]);
    for (int k = 0; k < words; ++k) {
      if constexpr (std::is_same_v<D, std::uint16_t>) {
        o[2 * k] = static_cast<std::uint16_t>(blk.v[k]);
        o[2 * k + 1] = static_cast<std::uint16_t>(blk.v[k] >> 16);
      } else {
        o[k] = blk.v[k];
      }
    }
  }
  // The draws of `group` consecutive keys from key0 (a multiple of the
  // group) under `seed` at step t: group / draws_per_call calls of Gen.
  template <class Gen, class D>
  MIXPREC_HOST_DEVICE static void draw_group(std::uint64_t seed, std::uint64_t t, std::uint64_t key0, D* out) {
    constexpr std::uint64_t per = draws_per_call<Gen, draw_bits<D>>;
    static_assert(group % per == 0, "mixprec: a group holds whole generator calls");
    const typename Gen::key_type key = Gen::key(seed, t);
    for (std::uint32_t b = 0; b < group / per; ++b) unpack_call(Gen::call(key, key0 / per + b), out + b * per);
  }
  // The writer's draws of elements [first, first + n) of this tile row.
  const draw_type* fill_draws(const context& ctx, std::uint64_t first, std::uint32_t n, draw_type* out) const {
    if constexpr (writer_draws) {
      return mixprec::fill_draws<writer_generator>(get<static_cast<std::size_t>(d.writer)>(env.comps).seed, ctx.t,
                                                   first, n, out);
    } else {
      (void)ctx, (void)first, (void)n;
      return out;
    }
  }
  // The stochastically rounded per-element state fields (Env::field_drawn)
  // are drawn the same way, keyed on their own seed and entry index, each
  // with its component's generator.
  static constexpr std::size_t nfields = Env::nfields;
  static constexpr std::size_t drawn_fields = [] {
    std::size_t k = 0;
    for (std::size_t g = 0; g != nfields; ++g) k += Env::field_drawn(g) ? 1 : 0;
    return k;
  }();
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
      out[G] =
          mixprec::fill_draws<field_generator<G>>(env.fields[G].seed, ctx.t, first - env.shard_begin, n, buffers[j++]) -
          c0;
    else (void)ctx, (void)first, (void)c0, (void)n, (void)buffers, (void)j;
  }

  // Where one element's results go: memory (element) or a group's registers.
  struct to_memory {
    const arena_access<Arena>& arena;
    std::uint64_t i;
    MIXPREC_HOST_DEVICE void grad(grad_type v) const { arena.grad[i] = v; }
    MIXPREC_HOST_DEVICE void master(float v) const { arena.set_master(i, v); }
    MIXPREC_HOST_DEVICE void model(model_type v) const { arena.model[i] = v; }
  };
  struct to_lane {
    grad_type* grads;
    float* masters;
    model_type* models;
    std::uint32_t j;
    MIXPREC_HOST_DEVICE void grad(grad_type v) const { grads[j] = v; }
    MIXPREC_HOST_DEVICE void master(float v) const { masters[j] = v; }
    MIXPREC_HOST_DEVICE void model(model_type v) const { models[j] = v; }
  };

  // FieldDraws: field_draws holds the drawn state fields' draws (host
  // runner); else they are drawn per element. WriterDrawn: `draws` holds
  // the writer's (indexed by column); else the writer draws per element.
  template <bool FieldDraws = false, bool WriterDrawn = false>
  MIXPREC_HOST_DEVICE void element(std::uint64_t i, std::uint32_t r, std::uint32_t c, const context& ctx,
                                   const tile_scalars<Env>& sc, const void* draws = nullptr,
                                   const std::uint16_t* const* field_draws = nullptr) const {
    run_element<FieldDraws, no_lane, WriterDrawn>(i, r, c, ctx, sc, to_float(env.arena.grad[i]), env.arena.weight(i),
                                                  draws, field_draws, nullptr, to_memory{env.arena, i});
  }

  // One element with gradient g and weight w: the chain, then the writer.
  template <bool FieldDraws, class Lane, bool WriterDrawn, class Out>
  MIXPREC_HOST_DEVICE void run_element(std::uint64_t i, std::uint32_t r, std::uint32_t c, const context& ctx,
                                       const tile_scalars<Env>& sc, float g, float w, const void* draws,
                                       const std::uint16_t* const* field_draws, const Lane* lane,
                                       const Out& out) const {
    float decay = 1.0f;
    const chain_runner<Q, Env, Code, FieldDraws, Lane> runner{env, ctx, sc, field_draws, lane};
    const float u = runner.run(i, r, c, g, w, decay, [](auto, float) {});
    if constexpr (d.holder >= 0) {
      if (ctx.hold) return;  // accumulated only: nothing to write
    }
    if constexpr (ToGradients) {
      out.grad(convert<grad_type>(u));
    } else {
      const float decayed = mul(w, decay);
      const float updated = decayed + u;
      if constexpr (d.writer >= 0) {
        constexpr std::size_t W = static_cast<std::size_t>(d.writer);
        const element_context<Env, W, false, Env::template variant<W>(Code), false, Lane, WriterDrawn> wctx{
            env, ctx, get<W>(sc.now), i, r, c, w, &decay, pass_kind::update, draws, nullptr, lane};
        write(get<W>(env.comps), wctx, w, updated, decayed - w + u, out);
      } else {
        const no_writer_context none{i, ctx.t};
        write(round_model_nearest{}, none, w, updated, decayed - w + u, out);
      }
    }
  }
  struct no_writer_context {
    std::uint64_t i, t_;
    MIXPREC_HOST_DEVICE std::uint64_t index() const { return i; }
    MIXPREC_HOST_DEVICE std::uint64_t t() const { return t_; }
  };
  template <class Writer, class Ctx, class Out>
  MIXPREC_HOST_DEVICE void write(const Writer& writer, const Ctx& wctx, float w, float updated, float step,
                                 const Out& out) const {
    static_assert(!(Writer::needs_narrow_model && std::is_same_v<model_type, float>),
                  "mixprec: round_model_stochastic rounds the model copy to a narrower format (bfloat16, half, fp8), "
                  "but this arena's model is float; use it with parameters<bfloat16, ...> or drop it");
    if constexpr (Arena::has_master) {
      static_assert(Writer::works_with_master,
                    "mixprec: this weight writer (kahan_summation, say) is for arenas without master weights (Master "
                    "= void); with fp32 master weights use round_model_nearest or round_model_stochastic");
      out.master(updated);
      if constexpr (!Arena::model_is_master) out.model(writer.template round_weight<model_type>(updated, wctx));
    } else {
      out.model(writer.template write_weight<model_type>(w, updated, step, wctx));
    }
  }

  // ---- element_group ----
  static constexpr std::uint32_t group = 8;
  using lane_type = group_lane<group>;
  static constexpr bool writes_model = !ToGradients && (!Arena::has_master || !Arena::model_is_master);
  static constexpr bool reads_model = !Arena::has_master;
  // Per-element fields the update pass touches (those of components with an
  // element rule, and the writer's), and those it may change (not replayed
  // read-only).
  template <std::size_t G>
  static constexpr bool field_touched() {
    constexpr std::size_t K = Env::field_component(G);
    return Env::field_info(G).where == extent::element &&
           (has_update<component_at<Env, K>>::value || static_cast<int>(K) == d.writer);
  }
  template <std::size_t G>
  static constexpr bool field_changed() {
    constexpr int K = static_cast<int>(Env::field_component(G));
    return field_touched<G>() && (K == d.writer || !replays_in(d, K, Q));
  }
  template <std::size_t G>
  static constexpr std::size_t field_group_bytes() {
    return std::size_t{group} * (Env::field_info(G).format == format_id::f32 ? 4 : 2);
  }
  // Field G's entry for element i of the tile's parameter, or null where
  // the field has no entries.
  template <std::size_t G>
  MIXPREC_HOST_DEVICE unsigned char* field_place(const context& ctx, std::uint64_t i) const {
    const field_storage& fs = env.fields[G];
    if (fs.data == nullptr || ctx.field_base[G] == no_entry) return nullptr;
    constexpr state_field f = Env::field_info(G);
    const std::uint64_t at =
        f.on == parameter_set::all ? i - env.shard_begin : ctx.field_base[G] + (i - ctx.geometry->offset);
    return static_cast<unsigned char*>(fs.data) + at * (f.format == format_id::f32 ? 4 : 2);
  }

  // Whether element_group may run on the tile's groups from element
  // `begin`: every role and field at a 16-byte boundary (or the group's
  // size when smaller), and the draws' keys at a block boundary.
  MIXPREC_HOST_DEVICE bool groups_fit(const context& ctx, std::uint64_t begin) const {
    bool ok = begin % group == 0 && (begin - env.shard_begin) % group == 0;
    ok = ok && piece_aligned<sizeof(grad_type) * group>(env.arena.grad + begin);
    if constexpr (Arena::has_master)
      ok = ok && piece_aligned<sizeof(float) * group>(env.arena.master + (begin - env.arena.master_begin));
    if constexpr (reads_model || writes_model)
      ok = ok && piece_aligned<sizeof(model_type) * group>(env.arena.model + begin);
    fields_fit(ctx, begin, ok, std::make_index_sequence<nfields>{});
    return ok;
  }
  template <std::size_t... G>
  MIXPREC_HOST_DEVICE void fields_fit([[maybe_unused]] const context& ctx, [[maybe_unused]] std::uint64_t begin,
                                      [[maybe_unused]] bool& ok, std::index_sequence<G...>) const {
    ((field_touched<G>() ? void(ok = ok && piece_aligned<field_group_bytes<G>()>(field_place<G>(ctx, begin))) : void()),
     ...);
  }
  template <std::size_t... G>
  MIXPREC_HOST_DEVICE void move_fields([[maybe_unused]] const context& ctx, [[maybe_unused]] std::uint64_t i0,
                                       [[maybe_unused]] unsigned char* cache, [[maybe_unused]] bool store,
                                       std::index_sequence<G...>) const {
    (move_field<G>(ctx, i0, cache, store), ...);
  }
  template <std::size_t G>
  MIXPREC_HOST_DEVICE void move_field(const context& ctx, std::uint64_t i0, unsigned char* cache, bool store) const {
    if constexpr (field_touched<G>()) {
      if (store && !field_changed<G>()) return;
      unsigned char* place = field_place<G>(ctx, i0);
      if (place == nullptr) return;
      constexpr std::size_t offset = group_field_offset<Env, group>(G);
      unsigned char* copy = cache + offset;
      if (store) copy_pieces<field_group_bytes<G>()>(copy, place);
      else copy_pieces<field_group_bytes<G>()>(place, copy);
    }
  }
  // Each drawn field's draws of the group (keys from key0) into draws[j],
  // the j-th drawn field; at[g] points at field g's (null if not drawn).
  // (Field tables are read at compile time only: device code cannot read
  // the components' constexpr arrays at run time.)
  template <std::size_t... G>
  MIXPREC_HOST_DEVICE void draw_fields([[maybe_unused]] const context& ctx, [[maybe_unused]] std::uint64_t key0,
                                       [[maybe_unused]] std::uint16_t (*draws)[group],
                                       [[maybe_unused]] const std::uint16_t** at, std::index_sequence<G...>) const {
    [[maybe_unused]] std::size_t j = 0;
    (draw_field<G>(ctx, key0, draws, at, j), ...);
  }
  template <std::size_t G>
  MIXPREC_HOST_DEVICE void draw_field(const context& ctx, std::uint64_t key0, std::uint16_t (*draws)[group],
                                      const std::uint16_t** at, std::size_t& j) const {
    at[G] = nullptr;
    if constexpr (Env::field_drawn(G)) {
      draw_group<field_generator<G>>(env.fields[G].seed, ctx.t, key0, draws[j]);
      at[G] = draws[j++];
    }
  }

  // Elements [i0, i0 + group) of the tile, columns [c0, c0 + group) of its
  // only row (tiles without positions); groups_fit() holds.
  MIXPREC_HOST_DEVICE void element_group(std::uint64_t i0, std::uint32_t c0, const context& ctx,
                                         const tile_scalars<Env>& sc) const {
    constexpr bool hold_possible = d.holder >= 0;
    // Loads first: the whole group's gradients, weights and fields.
    alignas(16) grad_type grads[group];
    alignas(16) float masters[group];
    alignas(16) model_type models[group];
    alignas(16) unsigned char cache[group_cache_bytes<Env, group>()];
    copy_pieces<sizeof(grads)>(env.arena.grad + i0, grads);
    if constexpr (Arena::has_master)
      copy_pieces<sizeof(masters)>(env.arena.master + (i0 - env.arena.master_begin), masters);
    if constexpr (reads_model) copy_pieces<sizeof(models)>(env.arena.model + i0, models);
    move_fields(ctx, i0, cache, false, std::make_index_sequence<nfields>{});
    // One generator call per 2 * words (or words) draws, keyed as stochastic_draw.
    alignas(16) draw_type draws[group];
    if constexpr (writer_draws)
      draw_group<writer_generator>(get<static_cast<std::size_t>(d.writer)>(env.comps).seed, ctx.t, i0, draws);
    constexpr std::size_t nd = drawn_fields > 0 ? drawn_fields : 1;
    std::uint16_t field_draw_values[nd][group];
    const std::uint16_t* field_draws[nfields > 0 ? nfields : 1];
    if constexpr (drawn_fields > 0)
      draw_fields(ctx, i0 - env.shard_begin, field_draw_values, field_draws, std::make_index_sequence<nfields>{});
      // The elements, on the copies.
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (std::uint32_t j = 0; j < group; ++j) {
      const lane_type lane{cache, j};
      const float w = Arena::has_master ? masters[j] : to_float(models[j]);
      run_element<(drawn_fields > 0), lane_type, writer_draws>(
          i0 + j, 0, c0 + j, ctx, sc, to_float(grads[j]), w, writer_draws ? draws : nullptr,
          drawn_fields > 0 ? field_draws : nullptr, &lane, to_lane{grads, masters, models, j});
    }
    // Then the stores.
    move_fields(ctx, i0, cache, true, std::make_index_sequence<nfields>{});
    if (hold_possible && ctx.hold) return;
    if constexpr (ToGradients) {
      copy_pieces<sizeof(grads)>(grads, env.arena.grad + i0);
    } else {
      if constexpr (Arena::has_master)
        copy_pieces<sizeof(masters)>(masters, env.arena.master + (i0 - env.arena.master_begin));
      if constexpr (writes_model) copy_pieces<sizeof(models)>(models, env.arena.model + i0);
    }
  }
};

// One thread: the scalar rules of level L (in chain order; observers last
// at the last level). Level 0 also starts the step: the start snapshot,
// the step number, skip and hold, and (once skip and hold are known) the
// counters.
template <int L, class Env>
struct decide_body {
  static constexpr plan_data d = Env::plan::data;
  using block_type = typename Env::block_type;
  Env env;

  MIXPREC_HOST_DEVICE void operator()(std::size_t) const {
    block_type block = *env.block;
    if constexpr (L == 0) {
      block.at_start = block.comps;
      block.step.t = block.step.count + 1;
      block.step.skip = 0;
      block.step.hold = 0;
    }
    if (L == 0 || !block.step.skip) run(block, std::make_index_sequence<Env::n>{}, false);
    if constexpr (L == 0) {
      if (block.step.skip) block.step.skipped_total += 1;
      else if (!block.step.hold) block.step.count = block.step.t;
    }
    if constexpr (L == d.max_level) run(block, std::make_index_sequence<Env::n>{}, true);
    *env.block = block;
  }
  template <std::size_t... K>
  MIXPREC_HOST_DEVICE void run(block_type& block, std::index_sequence<K...>, bool observers) const {
    (run_one<K>(block, observers), ...);
  }
  template <std::size_t K>
  MIXPREC_HOST_DEVICE void run_one(block_type& block, bool observers) const {
    using component = component_at<Env, K>;
    if constexpr (has_decide<component>::value) {
      constexpr bool observer = traits_of<component>::observes;
      if (observer != observers) return;
      if constexpr (observer || d.level[K] == L) {
        const decide_context<Env, block_type, K> ctx{env, block};
        get<K>(env.comps).decide(get<K>(block.comps), ctx);
      }
    }
    if constexpr (traits_of<component>::uniform_multiplier && d.level[K] == L) {
      if (!observers) block.factor[K] = static_cast<double>(get<K>(env.comps).multiplier(get<K>(block.comps)));
    }
  }
};

// Copies the combined global and per-parameter statistics of pass q (out[0]:
// global, out[1 + p]: parameter p) into the per-statistic arrays.
template <int q, class Value, class Env>
struct scatter_fields {
  static constexpr plan_data d = Env::plan::data;
  Env env;
  const Value* out;
  std::size_t params;
  MIXPREC_HOST_DEVICE void operator()(std::size_t p) const { scatter(p, std::make_integer_sequence<int, d.nstats>{}); }
  template <int... J>
  MIXPREC_HOST_DEVICE void scatter(std::size_t p, std::integer_sequence<int, J...>) const {
    (scatter_one<J>(p), ...);
  }
  template <int J>
  MIXPREC_HOST_DEVICE void scatter_one(std::size_t p) const {
    constexpr stat_entry e = d.stats[J];
    if constexpr (e.pass == q && e.field) {
      if constexpr (e.decl.where == scope::global) {
        if (p == 0) env.stats[J][0] = out[0].v[e.slot];
      } else {
        if (p < params) env.stats[J][p] = out[1 + p].v[e.slot];
      }
    }
  }
};

// The parameter of a global row (or column) number: a search of the bases.
template <extent E>
MIXPREC_HOST_DEVICE std::uint32_t parameter_of(const param_geometry* g, std::size_t params, std::uint64_t entry) {
  std::size_t lo = 0, hi = params;
  while (hi - lo > 1) {
    const std::size_t mid = (lo + hi) / 2;
    const std::uint64_t base = E == extent::row ? g[mid].row_base : g[mid].column_base;
    if (base <= entry) lo = mid;
    else hi = mid;
  }
  return static_cast<std::uint32_t>(lo);
}

// One thread per entry: component K's rule for extent E.
template <std::size_t K, extent E, class Env>
struct entry_body {
  Env env;
  MIXPREC_HOST_DEVICE void operator()(std::size_t e) const {
    const auto& block = *env.block;
    if (block.step.skip) return;
    std::uint32_t param = 0;
    std::uint64_t local = 0;
    if constexpr (E == extent::parameter) {
      param = static_cast<std::uint32_t>(e);
    } else {
      param = parameter_of<E>(env.geometry, env.params, e);
      // Skip empty parameters that share a base with the next.
      while (param + 1 < env.params &&
             (E == extent::row ? env.geometry[param + 1].row_base : env.geometry[param + 1].column_base) <= e)
        ++param;
      local = e - (E == extent::row ? env.geometry[param].row_base : env.geometry[param].column_base);
    }
    const entry_context<Env, K, E> ctx{env, get<K>(block.comps), e, param, local, block.step.t};
    const auto& comp = get<K>(env.comps);
    if constexpr (E == extent::row) comp.decide_row(ctx);
    else if constexpr (E == extent::column) comp.decide_column(ctx);
    else comp.decide_parameter(ctx);
  }
};

}  // namespace mixprec::detail

MIXPREC_PINNED_END
