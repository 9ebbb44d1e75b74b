// The passes of a step, as tiled bodies over the arena (detail/tiles.hpp):
//
//   statistics_body  pass 1: reads the gradients once (and the weights when
//                    unit-wise clipping asks), applies the elementwise rules
//                    known before the step, and accumulates the non-finite
//                    flag, each measuring component's |u|^p (or max |u|), and
//                    per-unit sums of squares;
//   decide_body      one device thread: every component's scalar rule, in
//                    chain order, and the step count;
//   update_body      pass 2: gradient, weights and state in, update out;
//                    in `measure` mode (split chains) it runs the stages up to
//                    the split and accumulates their output's statistics, in
//                    `finish` mode it replays them from stored state and
//                    completes the chain; `to_gradients` writes the
//                    transformed gradient back instead of updating weights.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <mixprec/cast/convert.hpp>
#include <mixprec/component/component.hpp>
#include <mixprec/component/pod_tuple.hpp>
#include <mixprec/detail/tiles.hpp>
#include <mixprec/tensor/reductions.hpp>
#include <mixprec/tensor/tiling.hpp>
#include <mixprec/train/analysis.hpp>
#include <mixprec/train/writers.hpp>

namespace mixprec::detail {

// Device-resident scalar state of a chain.
template <class... C>
struct chain_block {
  step_scalars step;
  pod_tuple<typename C::scalars...> comps;
};

// Statistics of pass 1 (per tile, per unit, global). All fields are doubles
// (the non-finite flag counts), so the host's interleaved accumulators
// vectorise: [non_finite, acc[0..Slots), unit input^2, unit weight^2].
template <std::size_t Slots, bool Units>
struct first_pass_stats {
  static constexpr std::size_t fields = 1 + Slots + (Units ? 2 : 0);
  static constexpr std::size_t non_finite_field = 0;
  static constexpr std::size_t acc_field(std::size_t s) { return 1 + s; }
  static constexpr std::size_t unit_input_field = 1 + Slots, unit_weight_field = 2 + Slots;
  double v[fields];
  MIXPREC_HOST_DEVICE double non_finite() const { return v[0]; }
  MIXPREC_HOST_DEVICE double& acc(std::size_t s) { return v[1 + s]; }
  MIXPREC_HOST_DEVICE double acc(std::size_t s) const { return v[1 + s]; }
  MIXPREC_HOST_DEVICE double unit_input_sq() const { return Units ? v[1 + Slots] : 0.0; }
  MIXPREC_HOST_DEVICE double unit_weight_sq() const { return Units ? v[2 + Slots] : 0.0; }
};

// Statistics of the measuring half of a split update pass.
struct split_stats {
  static constexpr std::size_t fields = 4;
  double v[fields];  // non-finite count, sum |u|^p (max |u| for p = inf), sum u^2, sum w^2
  MIXPREC_HOST_DEVICE double non_finite() const { return v[0]; }
  MIXPREC_HOST_DEVICE double input_p() const { return v[1]; }
  MIXPREC_HOST_DEVICE double input_sq() const { return v[2]; }
  MIXPREC_HOST_DEVICE double weight_sq() const { return v[3]; }
};


MIXPREC_HOST_DEVICE double power_of(float u, float p) {
  const double a = fabs(static_cast<double>(u));
  if (p == 2.0f) return a * a;
  if (p == 1.0f) return a;
  return pow(a, static_cast<double>(p));
}
// |u|^p, or |u| for p = infinity (combined by max).
MIXPREC_HOST_DEVICE double power_or_abs(float u, float p) {
  return p == infinity_norm ? fabs(static_cast<double>(u)) : power_of(u, p);
}
MIXPREC_HOST_DEVICE void add_power(double& acc, float u, float p) {
  if (p == infinity_norm) {
    const double a = fabs(static_cast<double>(u));
    acc = (acc != acc || a != a) ? acc + a : (a > acc ? a : acc);
  } else {
    acc += power_of(u, p);
  }
}
MIXPREC_HOST_DEVICE double combine_power(double a, double b, float p) {
  if (p == infinity_norm) return (a != a || b != b) ? a + b : (a > b ? a : b);
  return a + b;
}
MIXPREC_HOST_DEVICE double root_of(double acc, float p) {
  if (p == 2.0f) return sqrt(acc);
  if (p == 1.0f || p == infinity_norm) return acc;
  return pow(acc, 1.0 / static_cast<double>(p));
}

// Device pointers to the arena's roles.
template <class Arena>
struct arena_access {
  using model_type = typename Arena::model_type;
  using grad_type = typename Arena::grad_type;
  static constexpr bool has_master = Arena::has_master;
  static constexpr bool model_is_master = Arena::model_is_master;
  float* master;
  model_type* model;
  grad_type* grad;
  MIXPREC_HOST_DEVICE float weight(std::size_t i) const {
    if constexpr (has_master) return master[i];
    else return to_float(model[i]);
  }
};

// Everything a pass needs, passed to kernels by value.
template <class Arena, class... C>
struct step_env {
  using analysis = chain_analysis<C...>;
  static constexpr std::size_t n = sizeof...(C);
  static constexpr std::size_t slots = analysis::norm_slots;

  pod_tuple<C...> comps;
  pod_tuple<state_arrays<typename C::state_format>...> states;
  float slot_order[slots > 0 ? slots : 1];
  chain_block<C...>* block;
  arena_access<Arena> arena;
  const tile_desc* tiles;
  const std::uint32_t* segment_groups;
  const group_hyper* groups;
  using first_stats = first_pass_stats<slots, analysis::any_units>;
  const first_stats* first_global;
  const first_stats* unit_stats;  // per unit, when a component needs units
  const split_stats* split_global;
  const split_stats* segment_stats;           // per segment, when the chain splits
};

// Squares: every measured norm has order 2 (instantiated apart so that the
// element loop has no branch on the order and vectorises).
template <bool Squares, class Arena, class... C>
struct statistics_body : tiled {
  static constexpr bool additive = Squares;
  static constexpr bool pure_contribution = true;
  using env_type = step_env<Arena, C...>;
  using analysis = typename env_type::analysis;
  using value_type = typename env_type::first_stats;
  struct context {
    pod_tuple<typename C::scalars...> scalars;
  };
  env_type env;

  MIXPREC_HOST_DEVICE context enter(std::size_t) const { return {env.block->comps}; }
  MIXPREC_HOST_DEVICE value_type identity() const {
    value_type v{};
    return v;
  }
  MIXPREC_HOST_DEVICE value_type contribution(std::size_t i, const context& ctx) const {
    value_type c{};
    const float g = to_float(env.arena.grad[i]);
    if constexpr (analysis::any_non_finite && !analysis::norm_reveals_non_finite && !analysis::flag_at_guard)
      c.v[value_type::non_finite_field] = non_finite_flag(g);
    float w = 0.0f;
    if constexpr (analysis::any_units) w = env.arena.weight(i);
    measure(c, g, w, ctx, std::make_index_sequence<analysis::prefix>{});
    return c;
  }
  // The non-finite count is left at 0 when a norm reveals inf/NaN anyway.
  static constexpr bool unused_field(std::size_t f) {
    return f == value_type::non_finite_field && (!analysis::any_non_finite || analysis::norm_reveals_non_finite);
  }
  MIXPREC_HOST_DEVICE bool field_is_max(std::size_t f) const {
    if constexpr (env_type::slots > 0)
      for (std::size_t s = 0; s < env_type::slots; ++s)
        if (f == value_type::acc_field(s)) return env.slot_order[s] == infinity_norm;
    return false;
  }
  template <std::size_t... K>
  MIXPREC_HOST_DEVICE void measure(value_type& c, float u, float w, const context& ctx, std::index_sequence<K...>) const {
    (measure_one<K>(c, u, w, ctx), ...);
  }
  template <std::size_t K>
  MIXPREC_HOST_DEVICE void measure_one(value_type& c, float& u, float w, const context& ctx) const {
    const auto& comp = get<K>(env.comps);
    using component = std::remove_cv_t<std::remove_reference_t<decltype(comp)>>;
    if constexpr (component::needs_global_norm) {
      double& a = c.v[value_type::acc_field(analysis::norm_slot(K))];
      if constexpr (Squares) a = static_cast<double>(u) * u;
      else a = power_or_abs(u, comp.norm_order());
    }
    if constexpr (component::needs_unit_norms) {
      c.v[value_type::unit_input_field] = static_cast<double>(u) * u;
      c.v[value_type::unit_weight_field] = static_cast<double>(w) * w;
    }
    if constexpr (component::kind == rule_kind::elementwise) u = comp.prepass(u, get<K>(ctx.scalars));
    if constexpr (K == analysis::guard && analysis::flag_at_guard && !analysis::norm_reveals_non_finite)
      c.v[value_type::non_finite_field] = non_finite_flag(u);
  }
  // Widening keeps inf and NaN, so the flag is read off the float's exponent.
  MIXPREC_HOST_DEVICE static double non_finite_flag(float u) {
    return (bit_cast<std::uint32_t>(u) & 0x7f800000u) == 0x7f800000u ? 1.0 : 0.0;
  }
  MIXPREC_HOST_DEVICE value_type combine(const value_type& a, const value_type& b) const {
    value_type r;
    for (std::size_t f = 0; f < value_type::fields; ++f) r.v[f] = a.v[f] + b.v[f];
    if constexpr (env_type::slots > 0)
      for (std::size_t s = 0; s < env_type::slots; ++s) r.acc(s) = combine_power(a.acc(s), b.acc(s), env.slot_order[s]);
    return r;
  }

};

// One thread: the scalar rules. `second` runs only the split component's
// rule, with the norm measured by the split pass.
template <class Arena, class... C>
struct decide_body {
  using env_type = step_env<Arena, C...>;
  using analysis = typename env_type::analysis;
  env_type env;
  bool second;

  MIXPREC_HOST_DEVICE void operator()(std::size_t) const {
    chain_block<C...> block = *env.block;
    if (!second) {
      const auto& g = *env.first_global;
      bool non_finite = g.non_finite() != 0;
      if constexpr (env_type::slots > 0)
        for (std::size_t s = 0; s < env_type::slots; ++s) non_finite = non_finite || !finite(g.acc(s));
      block.step.skip = 0;
      block.step.non_finite = non_finite ? 1u : 0u;
      const std::uint64_t t = block.step.count + 1;
      double multiplier = 1.0;
      block.step.hold = 0;
      run(block, t, non_finite, multiplier, std::make_index_sequence<sizeof...(C)>{});
      if (block.step.skip) block.step.skipped_total += 1;
      else if (!block.step.hold) block.step.count = t;
    } else if constexpr (analysis::has_split) {
      if (block.step.skip) return;
      constexpr std::size_t k = analysis::split;
      const auto& c = get<k>(env.comps);
      decide_context ctx{&block.step, block.step.count, root_of(env.split_global->input_p(), c.norm_order()),
                         block.step.non_finite != 0 || env.split_global->non_finite() != 0.0};
      c.decide(get<k>(block.comps), ctx);
    }
    *env.block = block;
  }
  template <std::size_t... K>
  MIXPREC_HOST_DEVICE void run(chain_block<C...>& block, std::uint64_t t, bool non_finite, double& multiplier,
                               std::index_sequence<K...>) const {
    (run_one<K>(block, t, non_finite, multiplier), ...);
  }
  template <std::size_t K>
  MIXPREC_HOST_DEVICE void run_one(chain_block<C...>& block, std::uint64_t t, bool non_finite, double& multiplier) const {
    if constexpr (analysis::has_split && K == analysis::split) return;
    const auto& c = get<K>(env.comps);
    using component = std::remove_cv_t<std::remove_reference_t<decltype(c)>>;
    double norm = 0.0;
    if constexpr (component::needs_global_norm && K < analysis::prefix)
      norm = root_of(env.first_global->acc(analysis::norm_slot(K)), c.norm_order()) * multiplier;
    decide_context ctx{&block.step, t, norm, non_finite};
    c.decide(get<K>(block.comps), ctx);
    if constexpr (component::kind == rule_kind::multiplier)
      multiplier *= static_cast<double>(c.multiplier_of(get<K>(block.comps)));
  }
};

// measure_max: measuring for a split component whose norm is max |u|.
enum class update_mode { full, measure, measure_max, finish, to_gradients };

// Bypass: bit k set when component k's rule is switched off for this launch.
template <update_mode Mode, std::uint32_t Bypass, class Arena, class... C>
struct update_body : tiled {
  using env_type = step_env<Arena, C...>;
  using analysis = typename env_type::analysis;
  using value_type = split_stats;
  static constexpr std::size_t n = sizeof...(C);
  static constexpr bool measuring = Mode == update_mode::measure || Mode == update_mode::measure_max;
  static constexpr bool additive = Mode != update_mode::measure_max;
  static constexpr bool pure_contribution = false;  // measuring runs the stages, which write their state
  // Components this pass runs: up to the split when measuring.
  static constexpr std::size_t end = measuring ? analysis::split : n;

  struct context {
    pod_tuple<typename C::scalars...> scalars;
    float factor[n > 0 ? n : 1];
    group_hyper group;
    std::uint64_t t;
    bool skip;
    bool hold;  // stop after the every_k component: this step only accumulates
  };
  env_type env;

  MIXPREC_HOST_DEVICE context enter(std::size_t tile) const {
    const tile_desc d = env.tiles[tile];
    context ctx;
    ctx.scalars = env.block->comps;
    ctx.skip = env.block->step.skip != 0;
    ctx.hold = env.block->step.hold != 0;
    ctx.t = env.block->step.count;
    ctx.group = env.groups[env.segment_groups[d.segment]];
    tile_stats ts{0, 0, 0, 0, d.segment, d.unit};
    if constexpr (analysis::any_units) {
      ts.unit_input_sq = env.unit_stats[d.unit].unit_input_sq();
      ts.unit_weight_sq = env.unit_stats[d.unit].unit_weight_sq();
    }
    if constexpr (analysis::has_split && !measuring) {
      ts.segment_input_sq = env.segment_stats[d.segment].input_sq();
      ts.segment_weight_sq = env.segment_stats[d.segment].weight_sq();
    }
    factors(ctx, ts, std::make_index_sequence<n>{});
    return ctx;
  }
  template <std::size_t... K>
  MIXPREC_HOST_DEVICE void factors(context& ctx, const tile_stats& ts, std::index_sequence<K...>) const {
    ((ctx.factor[K] = get<K>(env.comps).tile_factor(get<K>(ctx.scalars), ts)), ...);
  }

  // The chain's element rules for components [0, end) on u; `decay`
  // collects the factors decoupled weight decay applies to the weight.
  template <std::size_t... K>
  MIXPREC_HOST_DEVICE float run(float u, float w, std::size_t i, const context& ctx, float& decay,
                                std::index_sequence<K...>) const {
    ((u = apply_one<K>(u, w, i, ctx, decay)), ...);
    return u;
  }
  template <std::size_t K>
  MIXPREC_HOST_DEVICE float apply_one(float u, float w, std::size_t i, const context& ctx, float& decay) const {
    const auto& c = get<K>(env.comps);
    using component = std::remove_cv_t<std::remove_reference_t<decltype(c)>>;
    if constexpr (K > analysis::hold_index) {
      if (ctx.hold) return u;
    }
    if constexpr (component::is_writer || ((Bypass >> K) & 1u) != 0) {
      return u;
    } else {
      using F = typename component::state_format;
      const bool replay = Mode == update_mode::finish && K < analysis::split;
      element_io<typename component::scalars, F> io{get<K>(ctx.scalars), state_ref<F>{&get<K>(env.states), i, ctx.t},
                                                    i, w, ctx.factor[K], ctx.group, ctx.t, replay, &decay};
      return c.apply(u, io);
    }
  }

  // A skipped step touches nothing (checked once per tile).
  MIXPREC_HOST_DEVICE bool active(const context& ctx) const { return !ctx.skip; }

  // Pass 2 (full, finish, to_gradients).
  MIXPREC_HOST_DEVICE void element(std::size_t i, const context& ctx) const {
    const float g = to_float(env.arena.grad[i]);
    const float w = env.arena.weight(i);
    float decay = 1.0f;
    const float u = run(g, w, i, ctx, decay, std::make_index_sequence<end>{});
    if constexpr (analysis::hold_index < n) {
      if (ctx.hold) return;  // accumulated only: nothing to write
    }
    if constexpr (Mode == update_mode::to_gradients) {
      env.arena.grad[i] = convert<typename Arena::grad_type>(u);
    } else {
      const float decayed = w * decay;
      write(decayed + u, decayed - w + u, w, i, ctx);
    }
  }

  // updated = w * decay + u; `step` = updated - w (for Kahan summation).
  MIXPREC_HOST_DEVICE void write(float updated, float step, float w, std::size_t i, const context& ctx) const {
    using model_type = typename Arena::model_type;
    constexpr std::size_t wk = writer_index();
    static_assert(!narrow_only<wk>() || !std::is_same_v<model_type, float>,
                  "mixprec: round_model_stochastic rounds the model copy to a narrower format (bfloat16, half, fp8), "
                  "but this arena's model is float; use it with parameters<bfloat16, ...> or drop it");
    static_assert(!(Arena::has_master && compensated<wk>()),
                  "mixprec: kahan_summation is for arenas without master weights (Master = void); with fp32 master "
                  "weights use round_model_nearest or round_model_stochastic");
    if constexpr (Arena::has_master) {
      env.arena.master[i] = updated;
      if constexpr (!Arena::model_is_master) env.arena.model[i] = writer<wk>().template round<model_type>(updated, i, ctx.t);
    } else {
      if constexpr (compensated<wk>()) {
        // Kahan: fold the carried error into the update, round, keep the new error.
        using F = typename writer_type<wk>::state_format;
        F& comp = get<wk>(env.states).slot[0][i];
        const float y = step - to_float(comp);
        const float sum = w + y;
        const model_type rounded = convert<model_type>(sum);
        comp = convert<F>((to_float(rounded) - w) - y);
        env.arena.model[i] = rounded;
      } else {
        env.arena.model[i] = writer<wk>().template round<model_type>(updated, i, ctx.t);
      }
    }
  }
  template <std::size_t K>
  static constexpr bool narrow_only() {
    if constexpr (K < n) return writer_type<K>::needs_narrow_model;
    else return false;
  }
  template <std::size_t K>
  static constexpr bool compensated() {
    if constexpr (K < n) return writer_type<K>::uses_compensation;
    else return false;
  }

  static constexpr std::size_t writer_index() {
    constexpr bool w[n + 1] = {C::is_writer..., true};
    for (std::size_t k = 0; k < n; ++k)
      if (w[k]) return k;
    return n;
  }
  template <std::size_t K>
  using writer_type = typename pod_tuple_element<K, pod_tuple<C...>>::type;
  template <std::size_t K>
  MIXPREC_HOST_DEVICE auto writer() const {
    if constexpr (K < n) return get<K>(env.comps);
    else return round_model_nearest{};
  }

  // Pass 2a (measure): run the stages before the split, accumulate the statistics of their output.
  MIXPREC_HOST_DEVICE value_type identity() const {
    value_type v{};
    return v;
  }
  // The stages up to the split, once per element (they write their state):
  // the update there and the weight.
  MIXPREC_HOST_DEVICE void step_values(std::size_t i, const context& ctx, float& u, float& w) const {
    const float g = to_float(env.arena.grad[i]);
    w = env.arena.weight(i);
    float decay = 1.0f;
    u = run(g, w, i, ctx, decay, std::make_index_sequence<end>{});
  }
  MIXPREC_HOST_DEVICE value_type from_values(float u, float w) const {
    value_type c{};
    if constexpr (analysis::has_split) {
      c.v[0] = (bit_cast<std::uint32_t>(u) & 0x7f800000u) == 0x7f800000u ? 1.0 : 0.0;
      c.v[1] = power_or_abs(u, get<analysis::split>(env.comps).norm_order());
    }
    c.v[2] = static_cast<double>(u) * u;
    c.v[3] = static_cast<double>(w) * w;
    return c;
  }
  MIXPREC_HOST_DEVICE value_type contribution(std::size_t i, const context& ctx) const {
    float u, w;
    step_values(i, ctx, u, w);
    return from_values(u, w);
  }
  MIXPREC_HOST_DEVICE bool field_is_max(std::size_t f) const {
    if constexpr (analysis::has_split) return f == 1 && get<analysis::split>(env.comps).norm_order() == infinity_norm;
    else return false;
  }
  MIXPREC_HOST_DEVICE value_type combine(const value_type& a, const value_type& b) const {
    value_type r;
    float p = 2.0f;
    if constexpr (analysis::has_split) p = get<analysis::split>(env.comps).norm_order();
    r.v[0] = a.v[0] + b.v[0];
    r.v[1] = combine_power(a.v[1], b.v[1], p);
    r.v[2] = a.v[2] + b.v[2];
    r.v[3] = a.v[3] + b.v[3];
    return r;
  }
};

}  // namespace mixprec::detail
