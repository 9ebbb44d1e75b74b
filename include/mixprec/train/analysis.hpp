// Compile-time analysis of a chain of components: where the statistics pass
// ends, where the update pass must split, which accumulator slot each
// measured norm uses; and the static_asserts that reject chains the two-pass
// schedule cannot run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <mixprec/component/component.hpp>

namespace mixprec::detail {

template <class... C>
struct chain_analysis {
  static constexpr std::size_t size = sizeof...(C);
  static constexpr rule_kind kinds[size + 1] = {C::kind..., rule_kind::stage};
  static constexpr bool global[size + 1] = {C::needs_global_norm..., false};
  static constexpr bool units[size + 1] = {C::needs_unit_norms..., false};
  static constexpr bool segments[size + 1] = {C::needs_segment_norms..., false};
  static constexpr bool non_finite[size + 1] = {C::needs_non_finite..., false};
  static constexpr bool linear[size + 1] = {C::linear..., true};
  static constexpr bool writer[size + 1] = {C::is_writer..., false};
  static constexpr bool replayable[size + 1] = {C::replayable..., true};

  // (Recursive constexpr functions rather than loops: nvcc warns about loops
  // that constant folding makes trivial.)
  static constexpr bool needs_stats(std::size_t k) { return global[k] || segments[k] || units[k]; }

  // The statistics pass covers components [0, prefix): up to the first stage
  // or the first component that needs per-parameter norms.
  static constexpr std::size_t find_prefix(std::size_t k) {
    return k >= size ? size : (kinds[k] == rule_kind::stage || segments[k]) ? k : find_prefix(k + 1);
  }
  static constexpr std::size_t prefix = find_prefix(0);
  // The first component at or after the prefix that needs statistics of its
  // input: the update pass splits there (size: no split).
  static constexpr std::size_t find_split(std::size_t k) {
    return k >= size ? size : needs_stats(k) ? k : find_split(k + 1);
  }
  static constexpr std::size_t split = find_split(prefix);
  static constexpr bool has_split = split < size;

  static constexpr bool any_non_finite = (C::needs_non_finite || ...);
  static constexpr std::size_t holders = (static_cast<std::size_t>(C::holds) + ... + 0);
  static constexpr bool holds[size + 1] = {C::holds..., false};
  // The component after which a held step (every_k accumulating) stops.
  static constexpr std::size_t find_hold(std::size_t k) { return k >= size ? size : holds[k] ? k : find_hold(k + 1); }
  static constexpr std::size_t hold_index = find_hold(0);
  static constexpr bool any_units = (C::needs_unit_norms || ...);
  // Bit k set: component k can be bypassed (instantiated without its rule).
  static constexpr std::uint32_t bypassable = [] {
    constexpr bool b[size + 1] = {C::can_bypass..., false};
    std::uint32_t m = 0;
    for (std::size_t k = 0; k < size && k < 32; ++k) m |= b[k] ? (1u << k) : 0u;
    return m;
  }();
  static constexpr std::size_t writers = (static_cast<std::size_t>(C::is_writer) + ... + 0);

  // Signed copies for comparisons that nvcc would call pointless when the
  // prefix is empty.
  static constexpr long long prefix_signed = static_cast<long long>(prefix);
  // Accumulator slot of component k's global norm in the statistics pass.
  static constexpr std::size_t norm_slot(std::size_t k) {
    return k == 0 ? 0 : norm_slot(k - 1) + ((static_cast<long long>(k) - 1 < prefix_signed && global[k - 1]) ? 1 : 0);
  }
  static constexpr std::size_t norm_slots = norm_slot(prefix);

  // An inf or NaN gradient makes a norm measured through linear rules
  // non-finite too, so when such a norm exists the statistics pass needs no
  // separate non-finite count.
  static constexpr bool linear_before(std::size_t k, std::size_t j) {
    return j >= k ? true : !linear[j] ? false : linear_before(k, j + 1);
  }
  // Where the non-finite flag is measured: on the output of the first
  // component that needs it (a loss scaler's unscaled gradient, which can
  // overflow even when the scaled one does not), when the statistics pass
  // reaches it; otherwise on the gradient as stored.
  static constexpr std::size_t find_guard(std::size_t k) {
    return k >= size ? size : non_finite[k] ? k : find_guard(k + 1);
  }
  static constexpr std::size_t guard = find_guard(0);
  static constexpr bool flag_at_guard = static_cast<long long>(guard) < prefix_signed;
  static constexpr std::size_t flag_from = flag_at_guard ? guard + 1 : 0;
  static constexpr bool norm_reveals_non_finite_from(std::size_t k) {
    return static_cast<long long>(k) >= prefix_signed  ? false
           : (global[k] && linear_before(k, flag_from)) ? true
                                                        : norm_reveals_non_finite_from(k + 1);
  }
  static constexpr bool norm_reveals_non_finite = norm_reveals_non_finite_from(flag_from);

  // A statistic in the prefix sees its input through the earlier prefix
  // components: elementwise rules are applied in the statistics pass and
  // multipliers scale the measured norm afterwards, which is exact only if no
  // non-linear elementwise rule follows a multiplier before the statistic,
  // and no unit multiplier precedes it.
  static constexpr bool clean_before(std::size_t k, std::size_t j, bool seen_multiplier) {
    return j >= k ? true
           : kinds[j] == rule_kind::unit_multiplier ? false
           : (kinds[j] == rule_kind::elementwise && !linear[j] && seen_multiplier)
               ? false
               : clean_before(k, j + 1, seen_multiplier || kinds[j] == rule_kind::multiplier);
  }
  static constexpr bool measurable_from(std::size_t k) {
    return static_cast<long long>(k) >= prefix_signed ? true
           : ((global[k] || units[k]) && !clean_before(k, 0, false)) ? false
                                                                     : measurable_from(k + 1);
  }
  static constexpr bool prefix_is_measurable = measurable_from(0);
  static constexpr std::size_t count_stats_from(std::size_t k) {
    return k >= size ? 0 : (needs_stats(k) ? 1 : 0) + count_stats_from(k + 1);
  }
  static constexpr std::size_t stats_after_split = has_split ? count_stats_from(split + 1) : 0;
  static constexpr std::size_t unit_components = (static_cast<std::size_t>(C::needs_unit_norms) + ... + 0);
  static constexpr bool replayable_before(std::size_t k) {
    return k >= split ? true : !replayable[k] ? false : replayable_before(k + 1);
  }
  static constexpr bool prefix_of_split_replayable = has_split ? replayable_before(0) : true;

  static_assert(holders <= 1, "mixprec::chain: at most one every_k per chain");
  static_assert(writers <= 1, "mixprec::chain: at most one weight writer (round_model_nearest, round_model_stochastic, kahan_summation)");
  static_assert(prefix_is_measurable,
                "mixprec::chain: a norm cannot be measured in one pass after a non-linear element rule (clip_by_value) "
                "that follows a global clip, or after clip_adaptive; reorder the chain");
  static_assert(stats_after_split == 0,
                "mixprec::chain: only one component after an optimizer stage may need norms (the update pass splits "
                "once); reorder the chain or split it into two steps");
  static_assert(!has_split || !units[split], "mixprec::chain: clip_adaptive must come before the optimizer stages");
  static_assert(unit_components <= 1, "mixprec::chain: at most one clip_adaptive per chain");
  static_assert(prefix_of_split_replayable,
                "mixprec::chain: a stage that cannot replay its output (scale_by_lion) comes before a component that "
                "needs norms of its output; reorder the chain");
};

}  // namespace mixprec::detail
