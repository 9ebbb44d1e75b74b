// Statistics of state (source::state, component/component.hpp): one of a
// component's row or column fields reduced over each entry of a scope
// (per matrix, per parameter, global: those whose policy says of_state,
// train/scopes.hpp), after the entry rules of the component's level have
// written it (train/step_runner.hpp), so that the element rules of later
// passes read it as they read any statistic (Adafactor's mean of the row
// factors of each matrix). A thread per parameter (one for a scope across
// parameters) combines the entries in order: the same value on every
// backend and launch shape.
#pragma once

#include <cstddef>
#include <cstdint>

#include <mixprec/component/component.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/core/config.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/format/format_traits.hpp>
#include <mixprec/train/environment.hpp>
#include <mixprec/train/plan.hpp>
#include <mixprec/train/reduction.hpp>
#include <mixprec/train/scopes.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

template <int S, class Env>
struct reduce_state_statistic {
  static constexpr stat_entry e = Env::plan::data.stats[S];
  static constexpr std::size_t K = static_cast<std::size_t>(e.component);
  static constexpr state_field f = field_of<component_at<Env, K>>(static_cast<std::size_t>(e.source_field));
  static_assert(f.where == extent::row || f.where == extent::column,
                "a statistic of state reduces row or column state");
  static constexpr std::size_t field = Env::field_offset(K) + static_cast<std::size_t>(e.source_field);
  static constexpr float min_normal = format_traits<float>::min_normal();
  using policy = scope_policy<e.decl.where>;
  static_assert(policy::of_state, "the planner allows statistics of state only in scopes that say of_state");

  Env env;
  double* out;  // the scope's entries, zero before the call
  float power;  // p of a power_sum
  bool by_max;

  // i: the parameter, or the one thread of a scope across parameters.
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const {
    std::uint64_t at = 0;
    double acc = 0.0;
    bool open = false;
    if constexpr (policy::within_parameter) add(i, at, acc, open);
    else
      for (std::size_t q = 0; q < env.params; ++q) add(q, at, acc, open);
    if (open) out[at] = acc;
  }

 private:
  // Parameter q's entries in order, each combined into the scope entry it
  // belongs to (consecutive entries share one: a run per scope entry);
  // none where the field does not cover q (its scope entries stay 0).
  MIXPREC_HOST_DEVICE void add(std::size_t q, std::uint64_t& at, double& acc, bool& open) const {
    const field_storage& fs = env.fields[field];
    if (fs.data == nullptr || fs.base[q] == no_entry) return;
    const param_geometry& g = env.geometry[q];
    const std::uint64_t n = f.where == extent::row ? g.rows : g.batches * g.cols;
    using F = field_storage_t<f.format>;
    const F* x = static_cast<const F*>(fs.data) + fs.base[q];
    for (std::uint64_t k = 0; k < n; ++k) {
      const std::uint64_t t = policy::of_entry(f.where, g, static_cast<std::uint32_t>(q), k);
      if (open && t != at) out[at] = acc, acc = 0.0;
      at = t;
      open = true;
      acc = combine_values(acc, reduction_policy<e.decl.op>::contribution(to_float(x[k]), power, min_normal), by_max);
    }
  }
};

}  // namespace mixprec::detail

MIXPREC_PINNED_END
