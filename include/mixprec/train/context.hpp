// What a component's rules see (component/component.hpp):
//
//   element_context   its element rule, in whichever pass runs it: the
//                     element's index, parameter, shape, row and column,
//                     weight, group multipliers, step number and pass; the
//                     component's scalars, statistics and state fields.
//   decide_context    its scalar rule (one device thread per step): the
//                     step number, skip and hold, its global statistics,
//                     other components' reports.
//   entry_context     its per-row, per-column and per-parameter rules (one
//                     device thread per entry): the entry, its statistics
//                     and the state fields of that extent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <mixprec/component/component.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/train/environment.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

// Per-tile values every element of a tile shares, loaded once per tile.
template <class Env>
struct tile_values {
  static constexpr std::size_t nstats = Env::plan::data.nstats > 0 ? Env::plan::data.nstats : 1;
  const param_geometry* geometry;
  std::uint32_t param;
  std::uint32_t row0, col0, batch, slice;
  group_hyper group;
  std::uint64_t t;
  bool skip, hold;
  std::uint64_t field_base[Env::nfields > 0 ? Env::nfields : 1];
  double stat_value[nstats];  // global, per-parameter, per-slice and per-matrix statistics of this tile
  double stat_scale[nstats];  // per-row and per-column statistics: their scale
};

// The entry of component K's statistic handle J. A handle past the table
// maps to the component's first statistic, so that the context's
// static_assert naming the mistake is the only error.
template <class Env, std::size_t K, std::size_t J>
inline constexpr int handle_stat_index_v = stat_index_v<Env, K, (J < statistic_count_v<component_at<Env, K>> ? J : 0)>;

template <class Env, std::size_t K>
constexpr bool reads_start_scalars() {
  return traits_of<component_at<Env, K>>::before_statistics;
}

// A state field of a component, at one element's (or entry's) place.
template <format_id F, bool Stochastic, bool ReadOnly, bool Writable, bool Drawn = false, class Gen = default_generator>
struct state_handle {
  field_entry<F, Stochastic, Drawn, Gen> entry;
  // The stored value.
  MIXPREC_HOST_DEVICE float get() const { return entry.load(); }
  // Stores f(stored) (rounded to the field's format) and returns it; when
  // the pass recomputes the component read-only, returns the stored value.
  template <class Fn>
  MIXPREC_HOST_DEVICE float update(Fn&& f) const {
    static_assert(Writable,
                  "mixprec: an element rule writes only per-element state; write row, column and parameter "
                  "state in decide_row / decide_column / decide_parameter");
    if constexpr (ReadOnly) return entry.load();
    else return entry.store(f(entry.load()));
  }
  // Stores v (no-op when read-only); returns the value as stored.
  MIXPREC_HOST_DEVICE float set(float v) const {
    static_assert(Writable, "mixprec: this state field is not writable here");
    if constexpr (ReadOnly) return entry.load();
    else return entry.store(v);
  }
};

// The grouped update pass (train/passes.hpp) runs V consecutive elements
// per call and keeps their per-element state in registers: lane j of the
// group reads and writes its copies, at group_field_offset within `cache`.
struct no_lane {};
template <std::uint32_t V>
struct group_lane {
  static constexpr std::uint32_t size = V;
  unsigned char* cache;
  std::uint32_t j;
};
template <class Lane>
inline constexpr bool is_group_lane = false;
template <std::uint32_t V>
inline constexpr bool is_group_lane<group_lane<V>> = true;

// The update pass of a chain with 8-bit coded state (train/coded_blocks.hpp)
// runs a block of N elements one at a time and keeps the new values of
// its coded fields in fp32 until the block's scale is known: element j's
// value of coded field g at values[coded_slot(g) * N + j]. Its other
// fields are read and written in memory.
template <std::uint32_t N>
struct coded_lane {
  static constexpr std::uint32_t size = N;
  float* values;
  std::uint32_t j;
};
template <class Lane>
inline constexpr bool is_coded_lane = false;
template <std::uint32_t N>
inline constexpr bool is_coded_lane<coded_lane<N>> = true;
// Coded fields before global field g.
template <class Env>
constexpr std::size_t coded_slot(std::size_t g) {
  std::size_t k = 0;
  for (std::size_t f = 0; f < g; ++f) k += is_coded(Env::field_info(f).format) ? 1 : 0;
  return k;
}
// As a constant for __host__ __device__ bodies (see group_field_offset_v).
template <class Env, std::size_t G>
inline constexpr std::size_t coded_slot_v = coded_slot<Env>(G);

// How an element's context reaches its stochastic-rounding draws and its
// per-element state: the runner's choice, for speed only (every choice
// gives the same bits; train/host_strategy.hpp, train/pass_runner.hpp).
//   FieldDraws   the drawn state fields' bits were drawn ahead, per row
//                (host) or per group, and are read, not drawn per element;
//   WriterDrawn  the same for the weight writer's bits;
//   Lane         no_lane: the element's state in memory; group_lane<V>: in
//                the group's register copies (the grouped update pass).
template <bool FieldDraws = false, bool WriterDrawn = false, class Lane = no_lane>
struct element_access {
  static constexpr bool field_draws = FieldDraws;
  static constexpr bool writer_drawn = WriterDrawn;
  using lane = Lane;
  // What a stage's context sees (the writer's draws are the writer's).
  using for_stage = element_access<FieldDraws, false, Lane>;
  // What the writer's context sees (a writer has no state fields drawn ahead).
  using for_writer = element_access<false, WriterDrawn, Lane>;
};
using direct_access = element_access<>;

// Where the copies of global field g's entries start in a group's cache
// (per-element fields only; 16-byte aligned), and the cache's size.
template <class Env, std::uint32_t V>
constexpr std::size_t group_field_offset(std::size_t g) {
  std::size_t at = 0;
  for (std::size_t f = 0; f < g; ++f) {
    const state_field s = Env::field_info(f);
    if (s.where != extent::element || is_coded(s.format)) continue;
    const std::size_t bytes = entry_bytes(s.format) * std::size_t{V};
    at += (bytes + 15) / 16 * 16;
  }
  return at;
}
template <class Env, std::uint32_t V>
constexpr std::size_t group_cache_bytes() {
  const std::size_t b = group_field_offset<Env, V>(Env::nfields);
  return b > 0 ? b : 16;
}
// The same as constants, for __host__ __device__ bodies: nvcc (without
// --expt-relaxed-constexpr) warns about any call of a constexpr host
// function there, even in a constant expression, but not in these
// initialisers.
template <class Env, std::uint32_t V, std::size_t G>
inline constexpr std::size_t group_field_offset_v = group_field_offset<Env, V>(G);
template <class Env, std::uint32_t V>
inline constexpr std::size_t group_cache_bytes_v = group_cache_bytes<Env, V>();

template <class Env, std::size_t K, bool ReadOnly, int Variant = 0, class Access = direct_access>
struct element_context {
  static constexpr bool FieldDraws = Access::field_draws;
  static constexpr bool WriterDrawn = Access::writer_drawn;
  using Lane = typename Access::lane;
  using component = component_at<Env, K>;
  static constexpr int variant = Variant;  // the component's variant in this instantiation
  using scalars_type = scalars_of<component>;
  static constexpr std::size_t field0 = Env::field_offset(K);

  const Env& env;
  const tile_values<Env>& tile;
  const scalars_type& sc;
  std::uint64_t i;
  std::uint32_t r, c;
  float w;
  float* weight_factor;
  pass_kind which;
  // WriterDrawn: the writer's stochastic-rounding draws for this row of the
  // tile (16-bit slices, or 32-bit words for 8-bit formats), drawn a
  // generator call per 2 * words (or words) elements by the host runner or
  // the group; else null, and the same bits are drawn here. A compile-time
  // choice: with a run-time test the vectorised element loop computes the
  // per-element draw for every element too (measured: the SplitMix64 SR
  // step 4x slower).
  const void* draws = nullptr;
  // FieldDraws (the host runner's update pass): the draws of the
  // stochastically rounded per-element state fields, by global field
  // index, indexed by the row's column.
  const std::uint16_t* const* field_draws = nullptr;
  // The grouped update pass: this element's lane (draws and field_draws
  // are then indexed by the lane, not the column).
  const Lane* lane = nullptr;

  MIXPREC_HOST_DEVICE std::uint32_t draw_index() const {
    if constexpr (is_group_lane<Lane>) return lane->j;
    else return c;
  }
  MIXPREC_HOST_DEVICE std::uint64_t index() const { return i; }
  // The bits stochastic rounding of this element to To compares against,
  // keyed on (seed, step, index), from the component's generator
  // (cast/generator.hpp, stochastic_draw).
  template <class To>
  MIXPREC_HOST_DEVICE std::uint32_t stochastic_bits(std::uint64_t seed) const {
    constexpr int bits = format_traits<To>::total_bits;
    if constexpr (WriterDrawn) {
      if constexpr (bits == 16)
        return static_cast<std::uint32_t>(static_cast<const std::uint16_t*>(draws)[draw_index()]) << 16;
      else return static_cast<const std::uint32_t*>(draws)[draw_index()];
    } else {
      return stochastic_draw<bits, generator_of<component>>(seed, tile.t, i);
    }
  }
  MIXPREC_HOST_DEVICE std::uint32_t parameter() const { return tile.param; }
  MIXPREC_HOST_DEVICE const param_geometry& geometry() const { return *tile.geometry; }
  MIXPREC_HOST_DEVICE std::uint32_t rank() const { return tile.geometry->rank; }
  MIXPREC_HOST_DEVICE std::uint64_t extent(std::uint32_t axis) const { return tile.geometry->extents[axis]; }
  // Row and column of the element in its parameter's last two dimensions
  // (traits::needs_position, or row/column state or statistics).
  MIXPREC_HOST_DEVICE std::uint64_t row() const {
    static_assert(Env::plan::data.positions, "mixprec: ctx.row() needs traits::needs_position");
    return tile.row0 + r;
  }
  MIXPREC_HOST_DEVICE std::uint64_t col() const {
    static_assert(Env::plan::data.positions, "mixprec: ctx.col() needs traits::needs_position");
    return tile.col0 + c;
  }
  MIXPREC_HOST_DEVICE std::uint64_t batch() const { return tile.batch; }
  MIXPREC_HOST_DEVICE float weight() const { return w; }
  MIXPREC_HOST_DEVICE const group_hyper& group() const { return tile.group; }
  MIXPREC_HOST_DEVICE std::uint64_t t() const { return tile.t; }
  MIXPREC_HOST_DEVICE pass_kind pass() const { return which; }
  MIXPREC_HOST_DEVICE bool read_only() const { return ReadOnly; }
  MIXPREC_HOST_DEVICE const scalars_type& scalars() const { return sc; }
  // Decoupled weight decay: the weight is multiplied by f before the update is added.
  MIXPREC_HOST_DEVICE void scale_weight(float f) const { *weight_factor *= f; }
  // The weight this step writes if u is the final update (the writer stores
  // this value as the fp32 master weight): weight * decay + u.
  MIXPREC_HOST_DEVICE float updated_weight(float u) const { return mul(w, *weight_factor) + u; }

  template <std::size_t J>
  MIXPREC_HOST_DEVICE double statistic(stat_id<J>) const {
    static_assert(J < statistic_count_v<component>,
                  "mixprec: a statistic handle past the component's statistics[] table (declare handles with "
                  "statistic_index(statistics, \"name\"))");
    constexpr int s = handle_stat_index_v<Env, K, J>;
    constexpr scope where = Env::plan::data.stats[s].decl.where;
    if constexpr (read_per_element_v<where>) {
      const param_geometry& g = *tile.geometry;
      const scope_place at{tile.row0 + r, tile.batch, tile.col0 + c, 0, i - g.offset, Env::plan::data.block};
      return mul(env.stats[s][scope_policy<where>::of_element(g, tile.param, at)], tile.stat_scale[s]);
    } else {
      return tile.stat_value[s];
    }
  }

  // Field J of the component, as constants (see group_field_offset_v).
  template <std::size_t J>
  struct field_facts {
    static constexpr state_field f = field_of_v<component, J>;
    static constexpr std::size_t g = field0 + J;
    static constexpr bool coded = is_coded(f.format);
    static constexpr bool drawn = FieldDraws && Env::field_drawn(g) && !ReadOnly;
  };

  template <std::size_t J>
  MIXPREC_HOST_DEVICE auto state(field_id<J>) const {
    static_assert(J < field_count_v<component>,
                  "mixprec: a state field handle past the component's state[] table (declare handles with "
                  "field_index(state, \"name\"))");
    constexpr std::size_t in_table = J < field_count_v<component> ? J : 0;  // past the table: the assert above
    using facts = field_facts<in_table>;
    constexpr state_field f = facts::f;
    constexpr std::size_t g = facts::g;
    using gen = generator_of<component>;
    if constexpr (facts::coded) {
      static_assert(is_coded_lane<Lane>,
                    "mixprec: 8-bit coded state is read and written by the update pass only (train/coded_blocks.hpp)");
      float* place = lane->values + coded_slot_v<Env, g> * Lane::size + lane->j;
      return state_handle<format_id::f32, false, ReadOnly, true, false, gen>{
          field_entry<format_id::f32, false, false, gen>{place, i, 0, tile.t, nullptr}};
    } else {
      const field_storage& fs = env.fields[g];
      const std::uint64_t base = tile.field_base[g];
      std::uint64_t at = base;
      // Fields of every element are laid out as the arena: the element's own index.
      if constexpr (f.where == extent::element && f.on == parameter_set::all) at = i - env.shard_begin;
      else if constexpr (f.where == extent::element) at = base + (i - tile.geometry->offset);
      else if constexpr (f.where == extent::row) at = base + row();
      else if constexpr (f.where == extent::column) at = base + tile.batch * tile.geometry->cols + col();
      else if constexpr (f.where == extent::scalar) at = 0;
      using F = field_storage_t<f.format>;
      constexpr bool drawn = facts::drawn;
      const std::uint16_t* draw = nullptr;
      if constexpr (drawn) draw = field_draws[g] + draw_index();
      F* place = nullptr;
      if constexpr (is_group_lane<Lane> && f.where == extent::element) {
        constexpr std::size_t offset = group_field_offset_v<Env, Lane::size, g>;
        place = reinterpret_cast<F*>(lane->cache + offset) + lane->j;
      } else {
        place = static_cast<F*>(fs.data) + at;
      }
      return state_handle<f.format, f.stochastic, ReadOnly, f.where == extent::element, drawn, gen>{
          field_entry<f.format, f.stochastic, drawn, gen>{place, at, fs.seed, tile.t, draw}};
    }
  }
};

template <class Env, class Block, std::size_t K>
struct decide_context {
  using component = component_at<Env, K>;
  const Env& env;
  Block& block;

  MIXPREC_HOST_DEVICE std::uint64_t t() const { return block.step.t; }
  MIXPREC_HOST_DEVICE const step_scalars& step() const { return block.step; }
  MIXPREC_HOST_DEVICE bool skipped() const { return block.step.skip != 0; }
  MIXPREC_HOST_DEVICE void skip() const {
    static_assert(traits_of<component>::may_skip, "mixprec: ctx.skip() needs traits::may_skip");
    block.step.skip = 1;
  }
  MIXPREC_HOST_DEVICE void hold() const {
    static_assert(traits_of<component>::may_hold, "mixprec: ctx.hold() needs traits::may_hold");
    block.step.hold = 1;
  }
  MIXPREC_HOST_DEVICE std::size_t parameters() const { return env.params; }
  // A global statistic (as reduced: the sum, or the max; roots are the component's).
  template <std::size_t J>
  MIXPREC_HOST_DEVICE double statistic(stat_id<J>) const {
    static_assert(J < statistic_count_v<component>,
                  "mixprec: a statistic handle past the component's statistics[] table (declare handles with "
                  "statistic_index(statistics, \"name\"))");
    constexpr int s = handle_stat_index_v<Env, K, J>;
    static_assert(Env::plan::data.stats[s].decl.where == scope::global,
                  "mixprec: a scalar rule reads global statistics; read per-entry ones in decide_row / "
                  "decide_column / decide_parameter or in the element rule");
    static_assert(Env::plan::data.stats[s].source_field < 0,
                  "mixprec: a statistic of state is reduced after the entry rules; read it in the element rule");
    const auto& comp = get<K>(env.comps);
    return mul(env.stats[s][0], derived_scale<Env, s>(block.factor, power_of(comp, J)));
  }
  // A per-parameter statistic, for parameter p.
  template <std::size_t J>
  MIXPREC_HOST_DEVICE double statistic_at(stat_id<J>, std::size_t p) const {
    static_assert(J < statistic_count_v<component>,
                  "mixprec: a statistic handle past the component's statistics[] table (declare handles with "
                  "statistic_index(statistics, \"name\"))");
    constexpr int s = handle_stat_index_v<Env, K, J>;
    static_assert(Env::plan::data.stats[s].decl.where == scope::parameter,
                  "mixprec: statistic_at(stat, p) reads a per-parameter statistic");
    static_assert(Env::plan::data.stats[s].source_field < 0,
                  "mixprec: a statistic of state is reduced after the entry rules; read it in the element rule");
    const auto& comp = get<K>(env.comps);
    return mul(env.stats[s][p], derived_scale<Env, s>(block.factor, power_of(comp, J)));
  }
  // Elements of the arena (without padding).
  MIXPREC_HOST_DEVICE std::uint64_t elements() const { return env.elements; }
  // What another component reports (NaN when none does).
  MIXPREC_HOST_DEVICE float report(quantity q) const { return report_from(q, std::make_index_sequence<Env::n>{}); }

 private:
  template <std::size_t... M>
  MIXPREC_HOST_DEVICE float report_from(quantity q, std::index_sequence<M...>) const {
    float v = NAN;
    ((v = v == v ? v : report_one<M>(q)), ...);
    return v;
  }
  template <std::size_t M>
  MIXPREC_HOST_DEVICE float report_one(quantity q) const {
    using other = component_at<Env, M>;
    if constexpr (has_report<other>::value)
      return get<M>(env.comps).report(q, get<M>(block.at_start), get<M>(block.comps));
    else return NAN;
  }
};

template <class Env, std::size_t K, extent E>
struct entry_context {
  using component = component_at<Env, K>;
  using scalars_type = scalars_of<component>;
  static constexpr std::size_t field0 = Env::field_offset(K);

  const Env& env;
  const scalars_type& sc;
  std::uint64_t entry;  // global: row, column or parameter number
  std::uint32_t param;
  std::uint64_t local;  // row in its parameter, column (batch * cols + col), or 0
  std::uint64_t t_;

  MIXPREC_HOST_DEVICE std::uint32_t parameter() const { return param; }
  MIXPREC_HOST_DEVICE const param_geometry& geometry() const { return env.geometry[param]; }
  MIXPREC_HOST_DEVICE std::uint32_t rank() const { return env.geometry[param].rank; }
  MIXPREC_HOST_DEVICE std::uint64_t rows() const { return env.geometry[param].rows; }
  MIXPREC_HOST_DEVICE std::uint64_t cols() const { return env.geometry[param].cols; }
  MIXPREC_HOST_DEVICE std::uint64_t index() const { return local; }
  MIXPREC_HOST_DEVICE std::uint64_t t() const { return t_; }
  MIXPREC_HOST_DEVICE const scalars_type& scalars() const { return sc; }

  // The statistic for this entry: its own for a statistic of the same
  // scope, the parameter's for a per-parameter one, the global value.
  template <std::size_t J>
  MIXPREC_HOST_DEVICE double statistic(stat_id<J>) const {
    static_assert(J < statistic_count_v<component>,
                  "mixprec: a statistic handle past the component's statistics[] table (declare handles with "
                  "statistic_index(statistics, \"name\"))");
    constexpr int s = handle_stat_index_v<Env, K, J>;
    using policy = scope_policy<Env::plan::data.stats[s].decl.where>;
    static_assert(E == extent::row ? policy::readers.row
                                   : (E == extent::column ? policy::readers.column : policy::readers.parameter),
                  "mixprec: an entry rule reads statistics of its own entry's scope or wider: per row and per slice "
                  "in decide_row, per column in decide_column, per matrix in either, per block only in the element "
                  "rule (train/scopes.hpp, readers)");
    static_assert(Env::plan::data.stats[s].source_field < 0,
                  "mixprec: a statistic of state is reduced after the entry rules; read it in the element rule");
    const std::uint64_t at = policy::of_entry(E, env.geometry[param], param, local);
    return mul(env.stats[s][at], derived_scale<Env, s>(env.block->factor, power_of(get<K>(env.comps), J)));
  }

  // In a per-row rule: a per-row statistic of row `row` of this entry's
  // parameter (another row than its own: blocks of rows, as Adam-mini's
  // heads).
  template <std::size_t J>
  MIXPREC_HOST_DEVICE double statistic_of_row(stat_id<J>, std::uint64_t row) const {
    static_assert(J < statistic_count_v<component>,
                  "mixprec: a statistic handle past the component's statistics[] table (declare handles with "
                  "statistic_index(statistics, \"name\"))");
    constexpr int s = handle_stat_index_v<Env, K, J>;
    static_assert(E == extent::row && Env::plan::data.stats[s].decl.where == scope::row,
                  "mixprec: statistic_of_row(stat, row) reads a per-row statistic in decide_row");
    return env.stats[s][env.geometry[param].row_base + row] *
           derived_scale<Env, s>(env.block->factor, power_of(get<K>(env.comps), J));
  }

  // Whether a field has entries for this entry's parameter.
  template <std::size_t J>
  MIXPREC_HOST_DEVICE bool covers(field_id<J>) const {
    static_assert(J < field_count_v<component>,
                  "mixprec: a state field handle past the component's state[] table (declare handles with "
                  "field_index(state, \"name\"))");
    const field_storage& fs = env.fields[field0 + J];
    return fs.data != nullptr && fs.base[param] != no_entry;
  }
  // This entry's place in a field of the same extent (or the parameter's).
  template <std::size_t J>
  MIXPREC_HOST_DEVICE auto state(field_id<J>) const {
    static_assert(J < field_count_v<component>,
                  "mixprec: a state field handle past the component's state[] table (declare handles with "
                  "field_index(state, \"name\"))");
    constexpr state_field f = field_of_v<component, (J < field_count_v<component> ? J : 0)>;
    static_assert(f.where == E || f.where == extent::parameter || f.where == extent::scalar,
                  "mixprec: an entry rule reads state of its own extent, of its parameter, or scalar state");
    const field_storage& fs = env.fields[field0 + J];
    const std::uint64_t at = f.where == extent::scalar ? 0 : fs.base[param] + (f.where == E ? local : 0);
    using F = field_storage_t<f.format>;
    using gen = generator_of<component>;
    return state_handle<f.format, f.stochastic, false, true, false, gen>{
        field_entry<f.format, f.stochastic, false, gen>{static_cast<F*>(fs.data) + at, at, fs.seed, t_}};
  }
  // In a per-parameter rule: row r or column j of the parameter in a row or column field.
  template <std::size_t J>
  MIXPREC_HOST_DEVICE auto state_at(field_id<J>, std::uint64_t k) const {
    static_assert(J < field_count_v<component>,
                  "mixprec: a state field handle past the component's state[] table (declare handles with "
                  "field_index(state, \"name\"))");
    constexpr state_field f = field_of_v<component, (J < field_count_v<component> ? J : 0)>;
    static_assert(E == extent::parameter && (f.where == extent::row || f.where == extent::column),
                  "mixprec: state_at(field, k) reads row or column k of a parameter in decide_parameter");
    const field_storage& fs = env.fields[field0 + J];
    using F = field_storage_t<f.format>;
    using gen = generator_of<component>;
    return state_handle<f.format, f.stochastic, false, true, false, gen>{
        field_entry<f.format, f.stochastic, false, gen>{static_cast<F*>(fs.data) + fs.base[param] + k,
                                                        fs.base[param] + k, fs.seed, t_}};
  }
};

}  // namespace mixprec::detail

MIXPREC_PINNED_END
