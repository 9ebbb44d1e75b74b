// Statistics of state (source::state, component/component.hpp): one of a
// component's row or column fields reduced over each matrix, each
// parameter or the whole arena, after the entry rules of the component's
// level have written it (train/step_runner.hpp), so that the element rules
// of later passes read it as they read any statistic (Adafactor's mean of
// the row factors of each matrix). A thread per parameter (one for a
// global statistic) combines the entries in order: the same value on every
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

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

template <int S, class Env>
struct reduce_state_statistic {
  static constexpr stat_entry e = Env::plan::data.stats[S];
  static constexpr std::size_t K = static_cast<std::size_t>(e.component);
  static constexpr state_field f = field_of<component_at<Env, K>>(static_cast<std::size_t>(e.source_field));
  static_assert(f.where == extent::row || f.where == extent::column,
                "a statistic of state reduces row or column state");

  Env env;
  double* out;  // global: [0]; per parameter: [p]; per matrix: [matrix_base + b]
  float power;  // p of a power_sum
  bool by_max;

  // i: the parameter (the one thread of a global statistic: every parameter).
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const {
    if constexpr (e.decl.where == scope::global) {
      double a = 0.0;
      for (std::size_t q = 0; q < env.params; ++q) a = combine(q, 0, entries(q), a);
      out[0] = a;
    } else if constexpr (e.decl.where == scope::parameter) {
      out[i] = combine(i, 0, entries(i), 0.0);
    } else {
      const param_geometry& g = env.geometry[i];
      const std::uint64_t per = f.where == extent::row ? g.matrix_rows : g.cols;
      for (std::uint64_t b = 0; b < g.batches; ++b) out[g.matrix_base + b] = combine(i, b * per, per, 0.0);
    }
  }

 private:
  MIXPREC_HOST_DEVICE std::uint64_t entries(std::size_t q) const {
    const param_geometry& g = env.geometry[q];
    return f.where == extent::row ? g.rows : g.batches * g.cols;
  }
  // Parameter q's entries [first, first + count) combined into a (none
  // where the field does not cover q).
  MIXPREC_HOST_DEVICE double combine(std::size_t q, std::uint64_t first, std::uint64_t count, double a) const {
    const field_storage& fs = env.fields[Env::field_offset(K) + static_cast<std::size_t>(e.source_field)];
    if (fs.data == nullptr || fs.base[q] == no_entry) return a;
    using F = field_storage_t<f.format>;
    const F* at = static_cast<const F*>(fs.data) + fs.base[q] + first;
    const float min_normal = format_traits<float>::min_normal();
    for (std::uint64_t k = 0; k < count; ++k)
      a = combine_values(a, reduction_policy<e.decl.op>::contribution(to_float(at[k]), power, min_normal), by_max);
    return a;
  }
};

}  // namespace mixprec::detail

MIXPREC_PINNED_END
