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
#include <mixprec/component/protocol_check.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/square_sum.hpp>
#include <mixprec/detail/vector_access.hpp>
#include <mixprec/train/context.hpp>
#include <mixprec/train/environment.hpp>
#include <mixprec/train/plan.hpp>
#include <mixprec/train/reduction.hpp>
#include <mixprec/writers/round_model_nearest.hpp>

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
// Whether component K runs in pass Q, as a constant for __host__ __device__
// bodies (see scaling_of_v, train/reduction.hpp).
template <class Env, int K, int Q>
inline constexpr bool runs_in_v = runs_in(Env::plan::data, K, Q);
// Component K's variant in the passes instantiated for variant code Code.
template <class Env, std::size_t K, int Code>
inline constexpr int variant_v = Env::template variant<K>(Code);
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
// (a tile lies within one entry: global, per parameter, slice, matrix) or
// the scale (read per element: per row, column, block; train/scopes.hpp).
template <int Q, class Env, std::size_t... S>
MIXPREC_HOST_DEVICE void load_tile_stats(const Env& env, tile_values<Env>& v, std::index_sequence<S...>) {
  (load_tile_stat<Q, static_cast<int>(S), Env>(env, v), ...);
}
template <int Q, int S, class Env>
MIXPREC_HOST_DEVICE void load_tile_stat(const Env& env, tile_values<Env>& v) {
  constexpr plan_data d = Env::plan::data;
  constexpr stat_entry e = d.stats[S];
  // Read only where it is known: reduced by an earlier pass of this step.
  if constexpr (e.pass < Q && runs_in_v<Env, e.component, Q>) {
    const auto& comp = get<static_cast<std::size_t>(e.component)>(env.comps);
    const double scale = derived_scale<Env, S>(env.block->factor, power_of(comp, static_cast<std::size_t>(e.local)));
    v.stat_scale[S] = scale;
    const param_geometry& g = *v.geometry;
    if constexpr (read_per_element_v<e.decl.where>) {
      v.stat_value[S] = 0.0;
    } else {
      const scope_place at{0, v.batch, 0, v.slice, 0, 1};
      v.stat_value[S] = mul(env.stats[S][scope_policy<e.decl.where>::of_element(g, v.param, at)], scale);
    }
  } else {
    (void)env;
    v.stat_value[S] = 0.0;
    v.stat_scale[S] = 1.0;
  }
}

// Runs components [0, end of pass Q) on one element; calls
// capture(position, value) at every position a statistic of the pass reads.
template <int Q, class Env, int Code, class Access = direct_access>
struct chain_runner {
  using Lane = typename Access::lane;
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
  // What stage K does in this pass, computed at class scope: nvcc (without
  // --expt-relaxed-constexpr) warns about constexpr host functions called
  // inside a __host__ __device__ body, even in if constexpr.
  template <std::size_t K>
  struct stage_facts {
    static constexpr bool runs = runs_in(d, static_cast<int>(K), Q);
    static constexpr bool read_only = replays_in(d, static_cast<int>(K), Q);
    // Rules known before the statistics read the scalars of the step's
    // start: the current ones in the statistics pass (which runs before
    // this step's rules), the snapshot taken then in later passes.
    static constexpr bool snapshot = reads_start_scalars<Env, K>() && d.passes[Q].level > 0;
    static constexpr int variant = variant_v<Env, K, Code>;
  };
  template <std::size_t K, class Capture>
  MIXPREC_HOST_DEVICE void run_one([[maybe_unused]] std::uint64_t i, [[maybe_unused]] std::uint32_t r,
                                   [[maybe_unused]] std::uint32_t c, float& u, [[maybe_unused]] float w,
                                   [[maybe_unused]] float& decay, bool& stopped, Capture& capture) const {
    capture(std::integral_constant<int, static_cast<int>(K)>{}, u);
    if constexpr (d.holder >= 0 && static_cast<int>(K) > d.holder) {
      if (tile.hold) stopped = true;  // this step only accumulates up to the holder
    }
    using component = component_at<Env, K>;
    using facts = stage_facts<K>;
    if constexpr (facts::runs && has_update<component>::value && !traits_of<component>::writes_weights) {
      if (stopped) return;
      const auto& scalars = facts::snapshot ? get<K>(sc.at_start) : get<K>(sc.now);
      const element_context<Env, K, facts::read_only, facts::variant, typename Access::for_stage> ctx{
          env, tile, scalars, i, r, c, w, &decay, d.passes[Q].kind, nullptr, field_draws, lane};
      if constexpr (update_check<component, decltype((ctx))>::ok) u = get<K>(env.comps).update(u, ctx);
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
  using env_type = Env;
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

  // The values of every statistic for one element whose gradient and weight
  // are already loaded (also the GPU's groups: train/measure_groups.hpp).
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
// What one element computes (element(), run_element(), write()); how the
// elements of a tile are run is the strategy's (same bits):
//   the host's vectorised rows, the writer's and the drawn state fields'
//   bits drawn a row chunk at a time (train/host_row_draws.hpp, run by
//   train/pass_runner.hpp);
//   the GPU's groups of 8 consecutive elements moved 16 bytes at a time
//   (train/update_groups.hpp), also run on the host under host_gpu_order
//   (train/host_strategy.hpp).
template <bool ToGradients, class Env, class Arena, int Code>
struct update_body {
  static constexpr plan_data d = Env::plan::data;
  static constexpr int Q = d.npasses - 1;
  using context = tile_values<Env>;
  using grad_type = typename Arena::grad_type;
  using model_type = typename Arena::model_type;
  using env_type = Env;
  using arena_type = Arena;
  static constexpr bool to_gradients = ToGradients;
  Env env;

  MIXPREC_HOST_DEVICE context enter(std::size_t t) const { return enter_tile<Q>(env, t); }
  MIXPREC_HOST_DEVICE bool active(const context& ctx) const { return !ctx.skip; }

  // The host runner draws the writer's stochastic-rounding bits per row
  // and passes them to element(); a group draws its own.
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
  // The stochastically rounded per-element state fields (Env::field_drawn)
  // are drawn the same way, keyed on their own seed and entry index, each
  // with its component's generator.
  static constexpr std::size_t nfields = Env::nfields;
  static constexpr std::size_t drawn_fields = [] {
    std::size_t k = 0;
    for (std::size_t g = 0; g != nfields; ++g) k += Env::field_drawn(g) ? 1 : 0;
    return k;
  }();
  // Where one element's results go: memory (element) or a group's registers.
  struct to_memory {
    const arena_access<Arena>& arena;
    std::uint64_t i;
    MIXPREC_HOST_DEVICE void grad(grad_type v) const { arena.grad[i] = v; }
    MIXPREC_HOST_DEVICE void master(float v) const { arena.set_master(i, v); }
    MIXPREC_HOST_DEVICE void model(model_type v) const { arena.model[i] = v; }
  };
  // FieldDraws: field_draws holds the drawn state fields' draws (host
  // runner); else they are drawn per element. WriterDrawn: `draws` holds
  // the writer's (indexed by column); else the writer draws per element
  // (element_access, train/context.hpp).
  template <bool FieldDraws = false, bool WriterDrawn = false>
  MIXPREC_HOST_DEVICE void element(std::uint64_t i, std::uint32_t r, std::uint32_t c, const context& ctx,
                                   const tile_scalars<Env>& sc, const void* draws = nullptr,
                                   const std::uint16_t* const* field_draws = nullptr) const {
    run_element<element_access<FieldDraws, WriterDrawn>>(i, r, c, ctx, sc, to_float(env.arena.grad[i]),
                                                         env.arena.weight(i), draws, field_draws, nullptr,
                                                         to_memory{env.arena, i});
  }

  // One element with gradient g and weight w: the chain, then the writer.
  template <class Access, class Out>
  MIXPREC_HOST_DEVICE void run_element(std::uint64_t i, std::uint32_t r, std::uint32_t c, const context& ctx,
                                       const tile_scalars<Env>& sc, float g, float w, const void* draws,
                                       const std::uint16_t* const* field_draws, const typename Access::lane* lane,
                                       const Out& out) const {
    float decay = 1.0f;
    const chain_runner<Q, Env, Code, Access> runner{env, ctx, sc, field_draws, lane};
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
        const element_context<Env, W, false, variant_v<Env, W, Code>, typename Access::for_writer> wctx{
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
        if constexpr (decide_check<component, decltype((ctx))>::ok) get<K>(env.comps).decide(get<K>(block.comps), ctx);
      }
    }
    if constexpr (traits_of<component>::uniform_multiplier && d.level[K] == L) {
      if (!observers) block.factor[K] = static_cast<double>(get<K>(env.comps).multiplier(get<K>(block.comps)));
    }
  }
};

// Copies the combined statistics of the scopes gathered as tile fields of
// pass q (out[0]: the arena's, out[1 + p]: parameter p's) into the
// per-statistic arrays.
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
      if constexpr (!scope_policy<e.decl.where>::within_parameter) {  // the arena's one value
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
    using component = component_at<Env, K>;
    using A = decltype((ctx));
    if constexpr (E == extent::row) {
      if constexpr (decide_row_check<component, A>::ok) comp.decide_row(ctx);
    } else if constexpr (E == extent::column) {
      if constexpr (decide_column_check<component, A>::ok) comp.decide_column(ctx);
    } else {
      if constexpr (decide_parameter_check<component, A>::ok) comp.decide_parameter(ctx);
    }
  }
};

}  // namespace mixprec::detail

MIXPREC_PINNED_END
