// Everything the passes and rules of a step read, passed to kernels by
// value: the components, the device scalar block, the arena's roles, the
// tiles and geometry, the state fields and the reduced statistics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <mixprec/cast/convert.hpp>
#include <mixprec/component/component.hpp>
#include <mixprec/component/pod_tuple.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/train/layout.hpp>
#include <mixprec/train/plan.hpp>
#include <mixprec/train/reduction.hpp>
#include <mixprec/train/scopes.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

template <class... C>
inline constexpr std::size_t at_least_one = sizeof...(C) > 0 ? sizeof...(C) : 1;

// Device-resident scalar state of a chain: the step counters, every
// component's scalars now and as they were when the step started (the
// rules known before the statistics read those), and this step's
// multiplier factors.
template <class... C>
struct chain_block {
  step_scalars step;
  pod_tuple<scalars_of<C>...> comps;
  pod_tuple<scalars_of<C>...> at_start;
  double factor[at_least_one<C...>];
};

// The stochastic-rounding seed of state field g (fields numbered in chain
// order): one per field, so no two fields of a chain share their draws.
constexpr std::uint64_t field_seed(std::size_t g) { return 0x6d69787072656300ull + g; }

// One state field of one component, on the device.
struct field_storage {
  void* data;                 // float, bfloat16 or 8-bit code entries
  const std::uint64_t* base;  // per parameter: its first entry (no_entry if the field does not cover it)
  std::uint64_t seed;         // stochastic rounding key (bfloat16 fields)
  float* scale = nullptr;     // 8-bit codes: one per block (scope_base<scope::block> + block in parameter)
};
inline constexpr std::uint64_t no_entry = ~std::uint64_t{0};

// Device pointers to the arena's roles.
template <class Arena>
struct arena_access {
  using model_type = typename Arena::model_type;
  using grad_type = typename Arena::grad_type;
  static constexpr bool has_master = Arena::has_master;
  static constexpr bool model_is_master = Arena::model_is_master;
  float* master;  // element master_begin (a shard of them: mixprec/dist)
  std::size_t master_begin;
  model_type* model;
  grad_type* grad;
  MIXPREC_HOST_DEVICE float weight(std::size_t i) const {
    if constexpr (has_master) return master[i - master_begin];
    else return to_float(model[i]);
  }
  MIXPREC_HOST_DEVICE void set_master(std::size_t i, float v) const { master[i - master_begin] = v; }
};

template <class... C>
constexpr std::size_t total_fields() {
  return (field_count<C>() + ... + 0);
}
template <class... C>
constexpr std::size_t first_field(std::size_t k) {
  constexpr std::size_t counts[] = {field_count<C>()..., 0};
  std::size_t f = 0;
  for (std::size_t j = 0; j != k; ++j) f += counts[j];
  return f;
}

// Whether global field g (fields numbered in chain order) is drawn in
// chunks by the host runner: a bfloat16 field written with stochastic
// rounding, one entry per element of the arena (its entry index is then
// the element's index).
template <class C>
constexpr bool drawn_field(std::size_t j) {
  const state_field f = field_of<C>(j);
  return f.format == format_id::bf16 && f.stochastic && f.where == extent::element && f.on == parameter_set::all;
}
// Global field g (fields numbered in chain order): its declaration and its component.
template <class... C>
constexpr state_field field_at(std::size_t g) {
  state_field out{};
  std::size_t base = 0;
  ((g >= base && g < base + field_count<C>() ? (out = field_of<C>(g - base), 0) : 0, base += field_count<C>()), ...);
  return out;
}
template <class... C>
constexpr std::size_t component_of_field(std::size_t g) {
  std::size_t k = 0, base = 0, out = 0;
  ((g >= base && g < base + field_count<C>() ? (out = k) : 0, base += field_count<C>(), ++k), ...);
  return out;
}
template <class... C>
constexpr bool field_is_drawn(std::size_t g) {
  bool out = false;
  std::size_t base = 0;
  ((g >= base && g < base + field_count<C>() ? (out = drawn_field<C>(g - base)) : false, base += field_count<C>()),
   ...);
  return out;
}

// The passes are instantiated per combination of the components' variants
// (component/protocol.hpp): `code` numbers a combination in mixed radix.
template <class... C>
constexpr int variant_combinations() {
  return (variant_count<C>() * ... * 1);
}
template <std::size_t K, class... C>
constexpr int variant_in(int code) {
  constexpr int counts[] = {variant_count<C>()..., 1};
  for (std::size_t j = 0; j != K; ++j) code /= counts[j];
  return code % counts[K];
}

// The code with the digits of the components that do not run their
// element rule in pass q set to 0: a pass is instantiated once per
// combination of the variants it runs, not per combination of the chain's
// (a loss scaler's statistics pass does not depend on Adam's amsgrad).
template <class... C>
constexpr int variant_code_in_pass(int code, int q) {
  constexpr int counts[] = {variant_count<C>()..., 1};
  constexpr plan_data d = chain_plan<C...>::data;
  int out = 0, radix = 1;
  for (int k = 0; k < static_cast<int>(sizeof...(C)); ++k) {
    if (runs_in(d, k, q)) out += (code % counts[k]) * radix;
    code /= counts[k];
    radix *= counts[k];
  }
  return out;
}

template <class Arena, class... C>
struct step_env {
  using plan = chain_plan<C...>;
  using arena_type = Arena;
  using scalars_tuple = pod_tuple<scalars_of<C>...>;
  using block_type = chain_block<C...>;
  static constexpr std::size_t n = sizeof...(C);
  static constexpr std::size_t nfields = total_fields<C...>();

  pod_tuple<C...> comps;
  chain_block<C...>* block;
  arena_access<Arena> arena;
  const step_tile* tiles;
  const param_geometry* geometry;
  std::size_t params;
  const std::uint32_t* groups_of;  // group id per parameter
  const group_hyper* groups;
  static constexpr std::size_t field_offset(std::size_t k) { return first_field<C...>(k); }
  static constexpr bool field_drawn(std::size_t g) { return field_is_drawn<C...>(g); }
  static constexpr state_field field_info(std::size_t g) { return field_at<C...>(g); }
  static constexpr std::size_t field_component(std::size_t g) { return component_of_field<C...>(g); }
  template <std::size_t K>
  static constexpr int variant(int code) {
    return variant_in<K, C...>(code);
  }

  field_storage fields[nfields > 0 ? nfields : 1];
  double* stats[plan::data.nstats > 0 ? plan::data.nstats : 1];  // reduced statistics (global: one value)
  std::uint64_t elements;                                        // of the arena, without padding
  std::uint64_t shard_begin;  // per-element fields hold elements [shard_begin, shard_end)
};

template <class Env, std::size_t K>
using component_at = std::remove_cv_t<std::remove_reference_t<decltype(get<K>(std::declval<Env&>().comps))>>;

// The factor a statistic measured before some multipliers is scaled by
// once they are decided (train/reduction.hpp says how each reduction scales).
template <class Env, int J>
MIXPREC_HOST_DEVICE double derived_scale(const double* factor, float p) {
  constexpr stat_entry e = Env::plan::data.stats[J];
  // (A remeasured statistic keeps a multiplier's bit only for that
  // multiplier's own output, taken before its factor: scale 1.)
  if constexpr (e.derived_mask == 0 || scaling_of_v<e.decl.op> == under_scaling::unchanged ||
                scaling_of_v<e.decl.op> == under_scaling::remeasure) {
    (void)factor, (void)p;
    return 1.0;
  } else {
    double c = 1.0;
    for (int m = 0; m < static_cast<int>(Env::n); ++m)
      if ((e.derived_mask >> m) & 1u) c *= factor[m];
    return scale_factor<e.decl.op>(c, p);
  }
}

// Index of the statistic entry of component K's local statistic j.
template <class Env, std::size_t K>
constexpr int stat_index(std::size_t j) {
  return Env::plan::data.comp[K].first_stat + static_cast<int>(j);
}
// The same as a constant, for __host__ __device__ bodies (see scaling_of_v).
template <class Env, std::size_t K, std::size_t J>
inline constexpr int stat_index_v = stat_index<Env, K>(J);
// Global field G's declaration and component, as constants (the same).
template <class Env, std::size_t G>
inline constexpr state_field field_info_v = Env::field_info(G);
template <class Env, std::size_t G>
inline constexpr std::size_t field_component_v = Env::field_component(G);

// Reads and writes one entry of a state field, rounding narrow formats
// stochastically keyed on (seed, step, key) with generator Gen (the
// component's, cast/generator.hpp). `at` is where the entry is
// read and written: its place in the field, or a register copy of it (the
// grouped update pass, train/passes.hpp); `key` is its entry index.
template <format_id F, bool Stochastic = true, bool Drawn = false, class Gen = default_generator>
struct field_entry {
  using storage = field_storage_t<F>;
  storage* at;
  std::uint64_t key;
  std::uint64_t seed, stream;
  // Drawn: this entry's 16-bit draw, drawn ahead (the draw
  // stochastic_draw<16, Gen> would give); else drawn here.
  const std::uint16_t* draw = nullptr;
  MIXPREC_HOST_DEVICE float load() const { return to_float(*at); }
  MIXPREC_HOST_DEVICE float store(float v) const {
    if constexpr (F == format_id::f32) {
      *at = v;
      return v;
    } else {
      storage r;
      if constexpr (Stochastic) {
        static_assert(format_traits<storage>::total_bits == 16, "field_entry: 16-bit draws");
        if constexpr (Drawn) r = stochastic_round<storage>(v, static_cast<std::uint32_t>(*draw) << 16);
        else r = convert<storage>(v, round_stochastic<Gen>{seed, stream}, key);
      } else {
        r = convert<storage>(v);
      }
      *at = r;
      return to_float(r);
    }
  }
};

}  // namespace mixprec::detail

MIXPREC_PINNED_END
