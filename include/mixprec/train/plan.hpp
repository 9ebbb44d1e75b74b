// The plan of a chain: which passes a step makes, which components each
// runs, which statistics each reduces, and where each scalar rule runs,
// computed at compile time from the components' declarations
// (component/component.hpp), with the rules it enforces.
//
// Every statistic has a level: the first pass in which its source value
// can be computed. The statistics pass (level 0) runs only the rules known
// when the step starts (unscaling, clipping by value); values after a
// uniform multiplier (clipping by the global norm) are measured before it
// and scaled by its factor once that is decided; values after an optimizer
// stage need a pass that runs the stage (it writes the stage's state; a
// later pass recomputes the stage's output read-only). One pass per level
// that has statistics, each followed by the scalar rules of its level, then
// the update pass: the fewest passes the declarations allow.
//
//   chain_plan<C...>::describe()   the plan in words
//   chain_plan<C...>::passes()     how many passes a step makes
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include <mixprec/component/component.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/format/format_traits.hpp>
#include <mixprec/train/reduction.hpp>
#include <mixprec/train/scopes.hpp>

namespace mixprec {

enum class pass_kind : std::uint8_t { statistics, measure, update };

namespace detail {

inline constexpr int max_components = 64;  // bit masks of components
inline constexpr int max_statistics = 64;
inline constexpr int max_passes = 66;

struct component_summary {
  const char* name = "";
  bool before_statistics = false, linear = false, multiplier = false, may_skip = false, may_hold = false,
       writes_weights = false, replayable = true, loss_scaler = false, observes = false, needs_position = false,
       keeps_update = false;
  bool has_decide = false, has_entry_rules = false;
  int first_stat = 0, nstats = 0, nfields = 0;
  bool position_fields = false;  // row or column fields
  int coded_field = -1;          // its first field of block-scaled 8-bit codes (-1: none)
  bool coded_misplaced = false;  // a coded field that is not of every element, or starts from the weights
  std::uint32_t code_block = 0;  // that field's block
  bool code_blocks_differ = false;
};

template <class C>
constexpr component_summary summary_of() {
  using T = traits_of<C>;
  component_summary s;
  s.name = C::name;
  // A component without an element rule (and not a writer) is an identity
  // on the update: linear, and, without state fields, a rule that may run
  // in every pass (before_statistics). It need not claim either.
  const bool identity = !has_update<C>::value && !T::writes_weights;
  s.before_statistics = T::before_statistics || (identity && field_count<C>() == 0);
  s.linear = T::linear || T::uniform_multiplier || identity;
  s.multiplier = T::uniform_multiplier;
  s.may_skip = T::may_skip;
  s.may_hold = T::may_hold;
  s.writes_weights = T::writes_weights;
  s.replayable = T::replayable;
  s.loss_scaler = T::loss_scaler;
  s.observes = T::observes;
  s.needs_position = T::needs_position;
  s.keeps_update = T::keeps_update;
  s.has_decide = has_decide<C>::value;
  s.has_entry_rules = has_decide_row<C>::value || has_decide_column<C>::value || has_decide_parameter<C>::value;
  s.nstats = static_cast<int>(statistic_count<C>());
  s.nfields = static_cast<int>(field_count<C>());
  for (int k = 0; k < s.nfields; ++k) {
    const extent e = field_of<C>(static_cast<std::size_t>(k)).where;
    s.position_fields = s.position_fields || e == extent::row || e == extent::column;
    const state_field f = field_of<C>(static_cast<std::size_t>(k));
    if (is_coded(f.format)) {
      const std::uint32_t b = f.block != 0 ? f.block : default_code_block;
      s.coded_misplaced =
          s.coded_misplaced || f.where != extent::element || f.on != parameter_set::all || f.from_weights;
      s.code_blocks_differ = s.code_blocks_differ || (s.coded_field >= 0 && b != s.code_block);
      if (s.coded_field < 0) s.coded_field = k, s.code_block = b;
    }
  }
  return s;
}

// Positions of values: component k's input is position k, its output k + 1.
inline constexpr int gradient_position = -1;  // the gradients as stored
inline constexpr int weights_position = -2;

struct stat_entry {
  int component = 0, local = 0;
  statistic decl{"", scope::global, reduction::sum, source::input};
  int position = 0;
  int level = 0;
  int pass = 0;                    // the measuring pass that reduces it
  std::uint64_t derived_mask = 0;  // multipliers whose factors scale the measured value
  int slot = 0;                    // index among its pass's statistics of the same kind
  bool field = true;      // global or per-parameter (a field of the tile partials); else per row/column/slice/block
  int source_field = -1;  // source::state: the component's field it reduces (no pass: reduced after entry rules)
  int revealed_by = -1;   // a non-finite count another statistic's sum of squares reveals (see below)
};

struct pass_entry {
  pass_kind kind = pass_kind::update;
  int level = 0;
  int end = 0;        // runs components [0, end)
  int fields = 0;     // global and per-parameter statistics
  int row_stats = 0;  // per-row and per-slice statistics
  int column_stats = 0;
  int block_stats = 0;  // per-block statistics (each tile holds whole blocks)
};

enum class plan_error {
  none,
  too_many_components,
  too_many_statistics,
  stateful_before_statistics,
  output_statistics_of_stage,
  guard_after_stage,
  not_replayable,
  writer_before_statistics,
  two_writers,
  two_holders,
  block_size,            // a per-block statistic's block is not a power of two from 16 to 4096
  block_sizes_differ,    // per-block statistics of one chain have different blocks
  block_with_positions,  // per-block statistics beside per-row, per-column or per-slice ones
  coded_field_extent,    // an 8-bit coded state field that is not per element of every parameter
  code_block_size,       // its block is not a power of two from 16 to 4096
  coded_with_positions,  // 8-bit coded state beside per-row, per-column or per-slice statistics or state
  coded_replayed,        // a component with 8-bit coded state that a measuring pass runs
  state_source,          // a statistic of state names no row or column field of its component
  state_scope            // a statistic of state that is not global, per parameter or per matrix
};

struct plan_data {
  int n = 0;
  component_summary comp[max_components + 1]{};
  int level[max_components + 1]{};
  int first_pass[max_components + 1]{};  // the pass that first runs a component and writes its state
  stat_entry stats[max_statistics]{};
  int nstats = 0;
  pass_entry passes[max_passes]{};
  int npasses = 0;  // measuring passes and the update pass
  int max_level = 0;
  bool positions = false;   // tiles of whole rows, with row and column indices
  std::uint32_t block = 0;  // elements per block of the per-block statistics and 8-bit coded state (0: none)
  bool coded = false;       // some component keeps 8-bit coded state (train/coded_blocks.hpp)
  int writer = -1, holder = -1, scaler = -1;
  plan_error error = plan_error::none;
  int error_component = 0, error_other = 0;
};

constexpr int max_of(int a, int b) { return a > b ? a : b; }

struct plan_data;
constexpr bool runs_in_level(const plan_data& d, int k, int level);

// The plan is made in phases, each a constexpr function of the plan so
// far, unit-tested apart (tests/train/test_plan.cpp). A phase that finds a
// violated rule sets d.error (with the components concerned) and the later
// phases leave the plan as it is.

// Phase 1: what each component declares, within the limits of the masks.
template <class... C>
constexpr void summarize_components(plan_data& d) {
  d.n = static_cast<int>(sizeof...(C));
  if (d.n > max_components) {
    d.error = plan_error::too_many_components;
    return;
  }
  const component_summary all[] = {summary_of<C>()..., component_summary{}};
  for (int k = 0; k < d.n; ++k) d.comp[k] = all[k];
}

// A per-block statistic: a block of a power of two from 16 to a tile's
// size (so every tile of consecutive elements holds whole blocks), one
// block size per chain.
inline constexpr std::uint32_t max_block = 4096;  // detail::tile_size (checked in train/pass_runner.hpp)
constexpr void check_block(plan_data& d, const stat_entry& e, int k) {
  const std::uint32_t b = e.decl.block;
  if (e.decl.where != scope::block || b < 16 || b > max_block || (b & (b - 1)) != 0) {
    d.error = plan_error::block_size;
    d.error_component = k;
  } else if (d.block != 0 && d.block != b) {
    d.error = plan_error::block_sizes_differ;
    d.error_component = d.stats[0].component;
    for (int j = 0; j < d.nstats; ++j)
      if (d.stats[j].decl.where == scope::block) {
        d.error_component = d.stats[j].component;
        break;
      }
    d.error_other = k;
  } else {
    d.block = b;
  }
}

// A statistic of state: the component's row or column field it names,
// reduced over the entries of a scope that allows it (train/scopes.hpp).
template <class T>
constexpr void resolve_state_source(plan_data& d, stat_entry& e, int k) {
  for (int f = 0; f < static_cast<int>(field_count<T>()); ++f) {
    const state_field sf = field_of<T>(static_cast<std::size_t>(f));
    if (same_text(sf.name, e.decl.field) && (sf.where == extent::row || sf.where == extent::column)) e.source_field = f;
  }
  if (e.source_field < 0) d.error = plan_error::state_source;
  else if (!of_state(e.decl.where)) d.error = plan_error::state_scope;
  if (d.error != plan_error::none) d.error_component = k;
}

// Phase 2: every component's statistics in one table, in chain order.
template <class... C>
constexpr void flatten_statistics(plan_data& d) {
  if (d.error != plan_error::none) return;
  int k = 0;
  const auto add = [&](auto tag) {
    using T = typename decltype(tag)::type;
    d.comp[k].first_stat = d.nstats;
    for (int j = 0; j < static_cast<int>(statistic_count<T>()); ++j) {
      if (d.nstats == max_statistics) {
        d.error = plan_error::too_many_statistics;
        return;
      }
      stat_entry& e = d.stats[d.nstats++];
      e.component = k;
      e.local = j;
      e.decl = statistic_of<T>(static_cast<std::size_t>(j));
      if (d.error == plan_error::none && (e.decl.where == scope::block || e.decl.block != 0)) check_block(d, e, k);
      if (d.error == plan_error::none && e.decl.of == source::state) resolve_state_source<T>(d, e, k);
    }
    ++k;
  };
  (add(std::common_type<C>{}), ...);
}

// Phase 2b: block-scaled 8-bit state fields: of every element, and their
// blocks those of the chain's per-block statistics.
constexpr void check_coded_fields(plan_data& d) {
  if (d.error != plan_error::none) return;
  for (int k = 0; k < d.n; ++k) {
    const component_summary& c = d.comp[k];
    if (c.coded_field < 0) continue;
    const std::uint32_t b = c.code_block;
    d.error_component = k;
    if (c.coded_misplaced) {
      d.error = plan_error::coded_field_extent;
      return;
    }
    if (c.code_blocks_differ || b < 16 || b > max_block || (b & (b - 1)) != 0) {
      d.error = c.code_blocks_differ ? plan_error::block_sizes_differ : plan_error::code_block_size;
      return;
    }
    if (d.block != 0 && d.block != b) {
      d.error = plan_error::block_sizes_differ;
      for (int j = 0; j < d.nstats; ++j)
        if (d.stats[j].decl.where == scope::block) d.error_other = d.stats[j].component;
      for (int j = 0; j < k; ++j)
        if (d.comp[j].coded_field >= 0) d.error_other = j;
      return;
    }
    d.block = b;
    d.coded = true;
  }
  d.error_component = 0;
}

// Phase 3: the roles a chain has at most one of (writer, holder; the first
// loss scaler is the one loss_scale() reads), and the rules on roles.
constexpr void assign_roles(plan_data& d) {
  if (d.error != plan_error::none) return;
  for (int k = 0; k < d.n; ++k) {
    const component_summary& c = d.comp[k];
    if (c.before_statistics && c.nfields > 0) {
      d.error = plan_error::stateful_before_statistics;
      d.error_component = k;
      return;
    }
    if (c.writes_weights) {
      if (c.before_statistics) {
        d.error = plan_error::writer_before_statistics;
        d.error_component = k;
        return;
      }
      if (d.writer >= 0) {
        d.error = plan_error::two_writers;
        d.error_component = k;
        d.error_other = d.writer;
        return;
      }
      d.writer = k;
    }
    if (c.may_hold) {
      if (d.holder >= 0) {
        d.error = plan_error::two_holders;
        d.error_component = k;
        d.error_other = d.holder;
        return;
      }
      d.holder = k;
    }
    if (c.loss_scaler && d.scaler < 0) d.scaler = k;
    d.positions = d.positions || c.needs_position || c.position_fields;
  }
}

// Phase 4: levels. Walking the chain, avail is the first pass in which the
// value at a position can be computed and mask the multipliers it is
// measured without (and scaled by once their factors are decided); each
// statistic gets the level of its source and each component the level of
// its latest statistic.
constexpr void assign_levels(plan_data& d) {
  if (d.error != plan_error::none) return;
  int avail = 0;
  std::uint64_t mask = 0;
  bool derived = false;  // the value at this position lacks the multipliers in mask
  for (int k = 0; k < d.n; ++k) {
    const component_summary& c = d.comp[k];
    int lvl = 0;
    for (int j = c.first_stat; j < c.first_stat + c.nstats; ++j) {
      stat_entry& e = d.stats[j];
      if (e.decl.of == source::state) continue;  // below: at the component's level
      if (e.decl.of == source::weights) {
        e.position = weights_position;
        e.level = 0;
      } else if (e.decl.of == source::gradient) {
        e.position = gradient_position;
        e.level = 0;
      } else if (e.decl.of == source::input) {
        e.position = k;
        e.level = avail;
        e.derived_mask = derived ? mask : 0;
      } else {
        if (!c.before_statistics && !c.multiplier) {
          d.error = plan_error::output_statistics_of_stage;
          d.error_component = k;
          return;
        }
        e.position = k + 1;
        e.level = avail;  // before-statistics rules run in every pass; a multiplier scales its own output
        e.derived_mask = (derived ? mask : 0) | (c.multiplier ? (std::uint64_t{1} << k) : 0);
      }
      // A statistic with no formula under scaling (a subnormal count: a
      // multiplier moves values across the smallest normal) is not measured
      // before pending multipliers: it waits for the pass after they are
      // decided. (A multiplier's count of its own output is taken before its
      // own factor: that factor needs it first.)
      if (scaling_of(e.decl.op) == under_scaling::remeasure && e.derived_mask != 0 &&
          !(e.decl.of == source::output && c.multiplier)) {
        e.level = avail + 1;
        e.derived_mask = 0;
      }
      lvl = max_of(lvl, e.level);
    }
    // Output statistics of a linear rule whose own level is later: the
    // value after a non-linear rule needs the pending multipliers applied.
    if (c.before_statistics && !c.linear && derived) {
      for (int j = c.first_stat; j < c.first_stat + c.nstats; ++j)
        if (d.stats[j].decl.of == source::output) {
          d.stats[j].level = avail + 1;
          d.stats[j].derived_mask = 0;
          lvl = max_of(lvl, avail + 1);
        }
    }
    // A component's statistics are reduced together, in the pass of its
    // latest one (weights are the same in every pass before the update);
    // its statistics of state after its entry rules of that level.
    for (int j = c.first_stat; j < c.first_stat + c.nstats; ++j)
      if (d.stats[j].decl.of == source::state) {
        d.stats[j].level = lvl;
        d.stats[j].position = k;
      } else if (d.stats[j].level < lvl) {
        d.stats[j].level = lvl;
        if (d.stats[j].derived_mask != 0) d.stats[j].derived_mask = 0;  // measured where it is known exactly
      }
    d.level[k] = lvl;
    if (c.may_skip && lvl > 0) {
      d.error = plan_error::guard_after_stage;
      d.error_component = k;
      return;
    }
    // The value after k.
    if (c.before_statistics) {
      if (!c.linear && derived) {
        avail = avail + 1;  // the pending multipliers must be applied first
        mask = 0;
        derived = false;
      }
    } else if (c.keeps_update) {
      // The update passes through unchanged: available as before.
    } else if (c.multiplier) {
      if (avail <= lvl) {
        avail = lvl;
        mask = (derived ? mask : 0) | (std::uint64_t{1} << k);
        derived = true;
      }
    } else {
      avail = max_of(avail, lvl + 1);
      mask = 0;
      derived = false;
    }
  }
  d.max_level = 0;
  for (int k = 0; k < d.n; ++k) d.max_level = max_of(d.max_level, d.level[k]);
}

// Phase 5: one measuring pass per level that has statistics (level 0 is
// the statistics pass), each reducing its level's statistics, numbered by
// kind: fields (global and per-parameter) and per-row and per-column slots.
constexpr void form_measuring_passes(plan_data& d) {
  if (d.error != plan_error::none) return;
  for (int L = 0; L <= d.max_level; ++L) {
    int end = -1;
    for (int j = 0; j < d.nstats; ++j)
      if (d.stats[j].level == L && d.stats[j].source_field < 0) end = max_of(end, max_of(d.stats[j].position, 0));
    if (end < 0) continue;
    pass_entry& p = d.passes[d.npasses];
    p.kind = L == 0 ? pass_kind::statistics : pass_kind::measure;
    p.level = L;
    p.end = end;
    for (int j = 0; j < d.nstats; ++j) {
      stat_entry& e = d.stats[j];
      if (e.level != L || e.source_field >= 0) continue;
      e.pass = d.npasses;
      const scope_gather g = gather_of(e.decl.where);
      e.field = g == scope_gather::tiles;
      if (e.field) e.slot = p.fields++;
      else if (g == scope_gather::blocks) e.slot = p.block_stats++;
      else if (g == scope_gather::columns) e.slot = p.column_stats++;
      else e.slot = p.row_stats++;  // rows and runs of rows
      d.positions = d.positions || (!e.field && g != scope_gather::blocks);
    }
    ++d.npasses;
  }
  // Statistics of state are no pass's: reduced after the entry rules of
  // their level, read by later passes (the matrix of an element is its tile's).
  for (int j = 0; j < d.nstats; ++j)
    if (d.stats[j].source_field >= 0) {
      d.stats[j].pass = -1;
      d.stats[j].field = false;
      d.positions = d.positions || gather_of(d.stats[j].decl.where) != scope_gather::tiles;
    }
  // Per-block statistics need tiles of consecutive elements (whole blocks);
  // per-row, per-column and per-slice ones need tiles of rows.
  if (d.coded && d.positions) {
    d.error = plan_error::coded_with_positions;
    for (int k = d.n - 1; k >= 0; --k)
      if (d.comp[k].coded_field >= 0) d.error_component = k;
  } else if (d.block != 0 && d.positions) {
    d.error = plan_error::block_with_positions;
    for (int j = d.nstats - 1; j >= 0; --j)
      if (d.stats[j].decl.where == scope::block) d.error_component = d.stats[j].component;
  }
}

// Phase 6: a global non-finite count is revealed by a global sum of
// squares (or max) of the same pass measured at or after it through linear
// rules only: that sum is inf or NaN exactly when some counted value is
// (the squares of finite floats cannot overflow a double sum). The pass
// then skips the count's own sweep when every p is 2 and reports 0 or 1.
constexpr void reveal_non_finite_counts(plan_data& d) {
  if (d.error != plan_error::none) return;
  for (int j = 0; j < d.nstats; ++j) {
    stat_entry& e = d.stats[j];
    if (e.decl.op != reduction::non_finite_count || e.decl.where != scope::global || e.position < 0 ||
        e.source_field >= 0)
      continue;
    for (int r = 0; r < d.nstats && e.revealed_by < 0; ++r) {
      const stat_entry& o = d.stats[r];
      if (o.pass != e.pass || o.source_field >= 0 || o.decl.op != reduction::power_sum ||
          o.decl.where != scope::global || o.position < e.position)
        continue;
      bool linear = true;
      for (int k = e.position; k < o.position; ++k)
        linear = linear && (d.comp[k].linear || !runs_in_level(d, k, e.level));
      if (linear) e.revealed_by = r;
    }
  }
}

// Phase 7: the update pass after the measuring ones, and for each
// component the pass that first runs it and writes its state; a later
// pass recomputes its output read-only, which it must be able to do.
constexpr void place_update_pass(plan_data& d) {
  if (d.error != plan_error::none) return;
  pass_entry& last = d.passes[d.npasses];
  last.kind = pass_kind::update;
  last.level = d.max_level + 1;
  last.end = d.n;
  const int update_pass = d.npasses++;
  for (int k = 0; k < d.n; ++k) {
    d.first_pass[k] = update_pass;
    for (int q = 0; q < update_pass; ++q) {
      const pass_entry& p = d.passes[q];
      if (k < p.end && (d.comp[k].before_statistics || d.level[k] < p.level)) {
        d.first_pass[k] = q;
        break;
      }
    }
    if (d.first_pass[k] < update_pass && d.comp[k].coded_field >= 0) {
      // Its new codes need the block's new scale, known once the whole
      // block has run: only the update pass holds blocks that way.
      d.error = plan_error::coded_replayed;
      d.error_component = k;
      for (int j = 0; j < d.nstats; ++j)
        if (d.stats[j].position > k) {
          d.error_other = d.stats[j].component;
          break;
        }
      return;
    }
    if (d.first_pass[k] < update_pass && !d.comp[k].before_statistics && !d.comp[k].replayable) {
      d.error = plan_error::not_replayable;
      d.error_component = k;
      for (int j = 0; j < d.nstats; ++j)
        if (d.stats[j].position > k) {
          d.error_other = d.stats[j].component;
          break;
        }
      return;
    }
  }
}

template <class... C>
constexpr plan_data make_plan() {
  plan_data d;
  summarize_components<C...>(d);
  flatten_statistics<C...>(d);
  check_coded_fields(d);
  assign_roles(d);
  assign_levels(d);
  form_measuring_passes(d);
  reveal_non_finite_counts(d);
  place_update_pass(d);
  return d;
}

// Whether component k's rule is applied in the pass of `level` (before its end).
constexpr bool runs_in_level(const plan_data& d, int k, int level) {
  return d.comp[k].before_statistics || d.level[k] < level;
}

// Whether component k runs its element rule in pass q (else it is skipped:
// not yet reached, or a multiplier whose factor is decided after q).
constexpr bool runs_in(const plan_data& d, int k, int q) {
  const pass_entry& p = d.passes[q];
  if (p.kind == pass_kind::update) return true;
  return k < p.end && (d.comp[k].before_statistics || d.level[k] < p.level);
}
// Whether pass q recomputes component k from state an earlier pass wrote.
constexpr bool replays_in(const plan_data& d, int k, int q) {
  return runs_in(d, k, q) && !d.comp[k].before_statistics && d.first_pass[k] < q;
}

template <class T>
inline constexpr bool always_false_v = false;

// A violated rule, reported with the offending component's type (the
// compiler names it in "In instantiation of ... Component = ...").
template <plan_error E, class Component, class Other>
struct chain_rule {
  static constexpr bool ok = true;
};
template <class Component, class Other>
struct chain_rule<plan_error::too_many_components, Component, Other> {
  static_assert(always_false_v<Component>, "mixprec::chain: at most 64 components per chain");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::too_many_statistics, Component, Other> {
  static_assert(always_false_v<Component>, "mixprec::chain: at most 64 statistics per chain");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::stateful_before_statistics, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: a component whose traits say before_statistics runs in every pass and may keep no "
                "state fields (Component names it)");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::output_statistics_of_stage, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: statistics of a component's output are only for before_statistics components and "
                "uniform multipliers; measure the input of the next component instead (Component names it)");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::guard_after_stage, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: a component that may skip the step needs statistics that are known before any "
                "optimizer stage writes its state; move it before the stages (Component names it)");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::not_replayable, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: a statistic of a later component (Other) needs a pass that runs this stage and a "
                "later pass that recomputes its output, which it cannot do (traits::replayable is false); reorder "
                "the chain (Component names the stage)");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::writer_before_statistics, Component, Other> {
  static_assert(always_false_v<Component>, "mixprec::chain: a weight writer cannot be a before_statistics component");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::two_writers, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: at most one weight writer per chain (Component and Other both write weights)");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::block_size, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: a per-block statistic needs a block of a power of two from 16 to 4096 elements, "
                "and only per-block statistics declare one (statistic::block; Component declares it)");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::block_sizes_differ, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: the per-block statistics and 8-bit coded state of one chain share one block size "
                "(Component and Other declare different ones)");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::block_with_positions, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: per-block statistics (Component) cannot share a chain with per-row, per-column or "
                "per-slice statistics, row or column state or traits::needs_position yet: their tiles differ");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::coded_field_extent, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: block-scaled 8-bit state (dynamic8s, dynamic8u, e4m3 fields) is per element of every "
                "parameter and starts from 0, not from the weights (Component declares such a field)");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::code_block_size, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: the block of 8-bit coded state is a power of two from 16 to 4096 elements "
                "(state_field::block; Component declares it)");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::coded_with_positions, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: 8-bit coded state (Component) cannot share a chain with per-row, per-column or "
                "per-slice statistics, row or column state or traits::needs_position: its blocks need tiles of "
                "consecutive elements");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::coded_replayed, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: a statistic of a later component (Other) needs a measuring pass that runs this "
                "stage, whose 8-bit coded state is written only by the update pass (a block's codes need its new "
                "scale); use float or bfloat16 state here, or measure before the stage (Component names it)");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::state_source, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: a statistic of state (field_statistic) names a row or column state field of its own "
                "component; Component has no such field by that name");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::state_scope, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: a statistic of state (field_statistic) is global, per parameter or per matrix "
                "(Component declares another scope)");
  static constexpr bool ok = false;
};
template <class Component, class Other>
struct chain_rule<plan_error::two_holders, Component, Other> {
  static_assert(always_false_v<Component>,
                "mixprec::chain: at most one component may hold a step (every_k); Component and Other both do");
  static constexpr bool ok = false;
};

template <int K, class... C>
struct type_at {
  using type = void;
};
template <int K, class H, class... T>
struct type_at<K, H, T...> {
  using type = std::conditional_t<K == 0, H, typename type_at<K - 1, T...>::type>;
};

inline const char* pass_name(pass_kind k) {
  return k == pass_kind::statistics ? "statistics" : k == pass_kind::measure ? "measure" : "update";
}

}  // namespace detail

template <class... C>
struct chain_plan {
  static constexpr detail::plan_data data = detail::make_plan<C...>();
  static constexpr bool valid =
      detail::chain_rule<data.error, typename detail::type_at<data.error_component, C...>::type,
                         typename detail::type_at<data.error_other, C...>::type>::ok;

  static constexpr int passes() { return data.npasses; }
  static constexpr int update_pass() { return data.npasses - 1; }
  static constexpr bool uses_positions() { return data.positions; }

  // The plan in words, one line per pass and per scalar-rule phase.
  // The plan in words, naming component k by name_of(k) (by default its
  // name; chain_t::describe() gives its path, "adamw/scale_by_adam").
  static std::string describe() {
    return describe([](int k) { return std::string(data.comp[k].name); });
  }
  template <class NameOf>
  static std::string describe(NameOf&& name_of) {
    std::string out;
    auto list = [&](int from, int to, auto&& pick) {
      std::string s;
      for (int k = from; k < to; ++k)
        if (pick(k)) s += std::string(s.empty() ? "" : ", ") + name_of(k);
      return s.empty() ? std::string("-") : s;
    };
    // The statistics of state reduced after the entry rules of level L.
    auto of_state = [&](int L) {
      std::string s;
      for (int j = 0; j < data.nstats; ++j) {
        const detail::stat_entry& e = data.stats[j];
        if (e.source_field < 0 || e.level != L) continue;
        s += std::string(s.empty() ? "  then reduces " : "; ") + name_of(e.component) + "." + e.decl.name + " (" +
             detail::scope_name(e.decl.where) + " " + detail::reduction_name(e.decl.op) + " of its state " +
             e.decl.field + ")";
      }
      return s.empty() ? s : s + "\n";
    };
    for (int q = 0; q < data.npasses; ++q) {
      const detail::pass_entry& p = data.passes[q];
      out += "pass " + std::to_string(q + 1) + " (" + detail::pass_name(p.kind) + "): runs " +
             list(0, data.n, [&](int k) { return detail::runs_in(data, k, q); });
      const std::string replayed =
          list(0, data.n, [&](int k) { return detail::replays_in(data, k, q) && data.comp[k].nfields > 0; });
      if (replayed != "-") out += "; recomputes " + replayed + " read-only";
      if (p.kind == pass_kind::update) {
        out += "; writes the weights (";
        out += data.writer >= 0 ? name_of(data.writer) : std::string("round_model_nearest");
        out += ")\n";
      } else {
        out += "; measures";
        for (int j = 0; j < data.nstats; ++j) {
          const detail::stat_entry& e = data.stats[j];
          if (e.pass != q) continue;
          out += " " + name_of(e.component) + "." + e.decl.name + " (" + detail::scope_name(e.decl.where) +
                 (e.decl.where == scope::block ? " of " + std::to_string(e.decl.block) : std::string()) + " " +
                 detail::reduction_name(e.decl.op) + " of " +
                 (e.decl.of == source::input     ? "its input"
                  : e.decl.of == source::output  ? "its output"
                  : e.decl.of == source::weights ? "the weights"
                                                 : "the gradients") +
                 (e.derived_mask ? ", scaled by later multipliers" : "") + ");";
        }
        out.back() = '\n';
        const int L = p.level;
        const std::string rules = list(0, data.n, [&](int k) {
          return data.level[k] == L && !data.comp[k].observes &&
                 (data.comp[k].has_decide || data.comp[k].has_entry_rules);
        });
        if (rules != "-") out += "  then scalar rules: " + rules + "\n";
        out += of_state(L);
      }
    }
    const std::string early = list(0, data.n, [&](int k) {
      return data.level[k] == 0 && !data.comp[k].observes && (data.comp[k].has_decide || data.comp[k].has_entry_rules);
    });
    if (data.passes[0].kind != pass_kind::statistics && early != "-")
      out = "scalar rules before the first pass: " + early + "\n" + of_state(0) + out;
    const std::string observers = list(0, data.n, [&](int k) { return data.comp[k].observes; });
    if (observers != "-") out += "last scalar rules (observers): " + observers + "\n";
    return out;
  }
};

}  // namespace mixprec
