// The step runner: what chain::apply() does with a chain's components and
// its state, pass by pass as the plan (train/plan.hpp) says: for each level
// its measuring pass (per-tile partials, then the fixed-order combinations
// into the statistics), its scalar rules on the device, its entry rules
// (per row, column, parameter), then the update pass; the variant of every
// element rule the components' options select is chosen once per step.
#pragma once

#include <cstddef>
#include <string>
#include <tuple>
#include <utility>

#include <mixprec/component/protocol.hpp>
#include <mixprec/detail/for_each.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/detail/tiles.hpp>
#include <mixprec/detail/trace.hpp>
#include <mixprec/detail/workspace.hpp>
#include <mixprec/train/chain_state.hpp>
#include <mixprec/train/environment.hpp>
#include <mixprec/train/pass_runner.hpp>
#include <mixprec/train/passes.hpp>
#include <mixprec/train/plan.hpp>
#include <mixprec/train/state_allocation.hpp>
#include <mixprec/train/state_statistics.hpp>

namespace mixprec {

// What a distributed step does around the passes (mixprec/dist); nothing here.
struct no_step_hooks {
  template <class Arena>
  void before_passes(Arena&, stream) {}
  void combine(double*, std::size_t, bool, stream) {}
  template <class Arena>
  void after_update(Arena&, stream) {}
};

namespace detail {

template <class... C>
struct step_runner {
  using plan_type = chain_plan<C...>;
  static constexpr detail::plan_data d = plan_type::data;
  static constexpr std::size_t n = sizeof...(C);

  const std::tuple<C...>& components_;

  template <class Arena>
  detail::step_env<Arena, C...> environment(Arena& params, chain_state<Arena, C...>& st) const {
    st.require_initialized("chain::apply");
    detail::require_state_arena(params.finalized(), params.signature(), st.arena_);
    detail::step_env<Arena, C...> env{};
    env.comps = std::apply([](const C&... c) { return detail::make_pod_tuple(c...); }, components_);
    env.block = detail::raw(st.block_);
    if constexpr (Arena::has_master) {
      env.arena.master = params.master_data();
      env.arena.master_begin = params.master_begin();
    }
    env.arena.model = params.model_data();
    env.arena.grad = params.grad_data();
    env.tiles = detail::raw(st.layout_.tiles);
    env.geometry = detail::raw(st.layout_.geometry_d);
    env.params = params.count();
    env.groups_of = detail::raw(st.groups_of_);
    env.groups = detail::raw(st.groups_);
    detail::field_storages(st.fields_, env.fields);
    for (int j = 0; j < d.nstats; ++j) env.stats[j] = detail::raw(st.stats_[static_cast<std::size_t>(j)]);
    env.elements = params.element_count();
    env.shard_begin = st.shard_.begin;
    return env;
  }
  template <bool ToGradients, class Arena, class Hooks>
  void run(Arena& params, chain_state<Arena, C...>& st, stream s, Hooks& hooks) const {
    using namespace detail;
    using env_t = step_env<Arena, C...>;
    const env_t env = environment(params, st);
    st.last_stream_ = s;
    const std::size_t ntiles = st.layout_.tile_count();
    hooks.before_passes(params, s);
    dispatch<variant_combinations<C...>() - 1, ToGradients>(variant_code(), env, st, ntiles, s, hooks);
    hooks.after_update(params, s);
  }

  // The combination of the components' variants their options select.
  int variant_code() const {
    int code = 0, radix = 1;
    std::apply(
        [&](const C&... c) { ((code += detail::variant_of(c) * radix, radix *= detail::variant_count<C>()), ...); },
        components_);
    return code;
  }
  template <int Code, bool ToGradients, class Env, class Arena, class Hooks>
  void dispatch(int code, const Env& env, chain_state<Arena, C...>& st, std::size_t ntiles, stream s,
                Hooks& hooks) const {
    if (code == Code) {
      run_levels<0, ToGradients, Code>(env, st, ntiles, s, hooks);
      detail::trace_pass(ToGradients ? "update (to gradients)" : "update", true, !ToGradients);
      detail::run_update(s, ntiles, detail::update_body<ToGradients, Env, Arena, Code>{env});
    } else if constexpr (Code > 0) {
      dispatch<Code - 1, ToGradients>(code, env, st, ntiles, s, hooks);
    }
  }

  // For each level: its measuring pass (if it has statistics), then its
  // scalar rules and entry rules, then the statistics of the state they wrote.
  template <int L, bool ToGradients, int Code, class Env, class Arena, class Hooks>
  void run_levels(const Env& env, chain_state<Arena, C...>& st, std::size_t ntiles, stream s, Hooks& hooks) const {
    if constexpr (L <= d.max_level) {
      constexpr int q = pass_of_level(L);
      if constexpr (q >= 0) measure<q, detail::variant_code_in_pass<C...>(Code, q)>(env, st, ntiles, s, hooks);
      detail::run_single(s, detail::decide_body<L, Env>{env});
      run_entries<L>(env, st, s, std::index_sequence_for<C...>{});
      if constexpr (has_state_statistics(L)) reduce_state<L>(env, st, s, std::make_integer_sequence<int, d.nstats>{});
      run_levels<L + 1, ToGradients, Code>(env, st, ntiles, s, hooks);
    }
  }
  static constexpr int pass_of_level(int L) {
    for (int q = 0; q + 1 < d.npasses; ++q)
      if (d.passes[q].level == L) return q;
    return -1;
  }

  template <int L, class Env, class Arena, std::size_t... K>
  void run_entries(const Env& env, chain_state<Arena, C...>& st, stream s, std::index_sequence<K...>) const {
    (run_entries_of<L, K>(env, st, s), ...);
  }
  template <int L, std::size_t K, class Env, class Arena>
  void run_entries_of(const Env& env, chain_state<Arena, C...>& st, stream s) const {
    using component = std::tuple_element_t<K, std::tuple<C...>>;
    if constexpr (d.level[K] == L) {
      if constexpr (detail::has_decide_row<component>::value)
        detail::for_each_index(s, st.layout_.rows, detail::entry_body<K, extent::row, Env>{env});
      if constexpr (detail::has_decide_column<component>::value)
        detail::for_each_index(s, st.layout_.columns, detail::entry_body<K, extent::column, Env>{env});
      if constexpr (detail::has_decide_parameter<component>::value)
        detail::for_each_index(s, env.params, detail::entry_body<K, extent::parameter, Env>{env});
    }
  }

  static constexpr bool has_state_statistics(int L) {
    for (int j = 0; j < d.nstats; ++j)
      if (d.stats[j].source_field >= 0 && d.stats[j].level == L) return true;
    return false;
  }
  template <int L, class Env, class Arena, int... S>
  void reduce_state(const Env& env, chain_state<Arena, C...>& st, stream s, std::integer_sequence<int, S...>) const {
    (reduce_state_of<L, S>(env, st, s), ...);
  }
  template <int L, int S, class Env, class Arena>
  void reduce_state_of(const Env& env, chain_state<Arena, C...>& st, stream s) const {
    constexpr stat_entry e = d.stats[S];
    if constexpr (e.source_field >= 0 && e.level == L) {
      const float p = power_of_stat(S);
      double* out = raw(st.stats_[static_cast<std::size_t>(S)]);
      for_each_index(s, scope_entries(e.decl.where, st.layout_), zero_entries{out});
      for_each_index(s, scope_policy<e.decl.where>::within_parameter ? env.params : 1,
                     reduce_state_statistic<S, Env>{env, out, p, combines_by_max(e.decl.op, p)});
    }
  }

  // Measuring pass q: per-tile partials, then the fixed-order combinations
  // into every statistic it reduces.
  template <int q, int Code, class Env, class Arena, class Hooks>
  void measure(const Env& env, chain_state<Arena, C...>& st, std::size_t ntiles, stream s, Hooks& hooks) const {
    using namespace detail;
    constexpr pass_entry p = d.passes[q];
    trace_pass(p.kind == pass_kind::statistics ? "statistics" : "update (measure)", true, false);
    bool squares = true;
    float power[max_statistics];
    int k = 0;
    for (int j = 0; j < d.nstats; ++j) {
      if (d.stats[j].pass != q) continue;
      const float pw = power_of_stat(j);
      power[k++] = pw;
      if (d.stats[j].decl.op == reduction::power_sum) squares = squares && pw == 2.0f;
    }
    // A pass without sums of |x|^p is instantiated once (compile time).
    if constexpr (has_power_sum(q)) {
      if (squares) measure_with<q, true, Code>(env, st, ntiles, s, power);
      else measure_with<q, false, Code>(env, st, ntiles, s, power);
    } else {
      measure_with<q, true, Code>(env, st, ntiles, s, power);
    }
    // Every rank's statistics, combined before the scalar rules (mixprec/dist).
    for (int j = 0; j < d.nstats; ++j) {
      if (d.stats[j].pass != q) continue;
      const bool is_max = combines_by_max(d.stats[j].decl.op, power_of_stat(j));
      auto& values = st.stats_[static_cast<std::size_t>(j)];
      hooks.combine(raw(values), values.size(), is_max, s);
    }
  }
  static constexpr bool has_power_sum(int q) {
    for (int j = 0; j < d.nstats; ++j)
      if (d.stats[j].pass == q && d.stats[j].decl.op == reduction::power_sum) return true;
    return false;
  }
  float power_of_stat(int j) const {
    float p = 2.0f;
    const int comp = d.stats[j].component;
    const std::size_t local = static_cast<std::size_t>(d.stats[j].local);
    std::size_t k = 0;
    std::apply([&](const C&... c) { ((p = (static_cast<int>(k++) == comp) ? detail::power_of(c, local) : p), ...); },
               components_);
    return p;
  }

  template <int q, bool Squares, int Code, class Env, class Arena>
  void measure_with(const Env& env, chain_state<Arena, C...>& st, std::size_t ntiles, stream s,
                    const float* power) const {
    using namespace detail;
    using body_t = measure_body<q, Squares, Env, Code>;
    using value_t = typename body_t::value_type;
    constexpr pass_entry p = d.passes[q];
    body_t body{};
    body.env = env;
    for (int k = 0; k < body_t::nstats; ++k) body.power[k] = power[k];
    body.min_normal = format_traits<typename Arena::grad_type>::min_normal();
    pass_buffers& pb = st.passes_[q];
    for (int k = 0; k < p.row_stats; ++k) body.row_partials[k] = raw(pb.rows[static_cast<std::size_t>(k)]);
    for (int k = 0; k < p.column_stats; ++k) body.column_partials[k] = raw(pb.columns[static_cast<std::size_t>(k)]);
    value_t* partials = st.ws_.template slice<value_t>(0, ntiles);
    value_t* scratch =
        st.ws_.template slice<value_t>(workspace::round_up(ntiles * sizeof(value_t)), combine_blocks(ntiles));
    // Per-block statistics are written in place by the tiles holding their
    // blocks; a rank's blocks outside its shard stay 0 for the combine.
    for (int j = 0; j < d.nstats; ++j)
      if (d.stats[j].pass == q && gather_of(d.stats[j].decl.where) == scope_gather::blocks)
        for_each_index(s, scope_entries(d.stats[j].decl.where, st.layout_),
                       zero_entries{raw(st.stats_[static_cast<std::size_t>(j)])});
    run_measure(s, ntiles, body, partials);
    // Global and per-parameter statistics: the tile partials combined.
    value_t* out = reinterpret_cast<value_t*>(raw(pb.field_out));
    combine_all(s, body, static_cast<const value_t*>(partials), ntiles, out, scratch);
    combine_segments(s, body, static_cast<const value_t*>(partials), raw(st.layout_.param_tile_offsets), env.params,
                     out + 1);
    for_each_index(s, env.params > 0 ? env.params : 1, scatter_fields<q, value_t, Env>{env, out, env.params});
    // Statistics of rows, columns and runs of rows: their partials combined.
    for (int j = 0; j < d.nstats; ++j) {
      const stat_entry& e = d.stats[j];
      const scope_gather g = gather_of(e.decl.where);
      if (e.pass != q || e.field || g == scope_gather::blocks) continue;
      const bool is_max = combines_by_max(e.decl.op, power_of_stat(j));
      double* target = raw(st.stats_[static_cast<std::size_t>(j)]);
      if (g == scope_gather::columns) {
        for_each_index(s, st.layout_.columns,
                       strided_combine{raw(pb.columns[static_cast<std::size_t>(e.slot)]), raw(st.layout_.column_ranges),
                                       target, is_max});
        continue;
      }
      // Per row; for runs of rows (slices, matrices) then over each run.
      double* rows = g == scope_gather::rows ? target : raw(st.slice_rows_[static_cast<std::size_t>(j)]);
      for_each_index(
          s, st.layout_.rows,
          strided_combine{raw(pb.rows[static_cast<std::size_t>(e.slot)]), raw(st.layout_.row_ranges), rows, is_max});
      if (g == scope_gather::row_runs)
        for_each_index(s, scope_entries(e.decl.where, st.layout_),
                       strided_combine{rows, scope_runs(e.decl.where, st.layout_), target, is_max});
    }
  }
};

}  // namespace detail
}  // namespace mixprec
