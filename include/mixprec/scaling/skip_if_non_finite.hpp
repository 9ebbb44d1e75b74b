// A guard without scaling: skips the step (nothing changes, the step count
// does not advance) when an element of the update reaching it is inf or
// NaN. Optax's apply_if_finite without its retry budget.
#pragma once

#include <mixprec/component/component.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

struct skip_if_non_finite {
  static constexpr const char* name = "skip_if_non_finite";
  struct traits : component_traits {
    static constexpr bool may_skip = true;  // (no element rule: the engine treats it as the identity)
  };
  static constexpr statistic statistics[] = {{"non_finite", scope::global, reduction::non_finite_count, source::input}};
  static constexpr stat_id<statistic_index(statistics, "non_finite")> non_finite{};

  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(no_scalars&, const Ctx& ctx) const {
    if (ctx.statistic(non_finite) != 0.0) ctx.skip();
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
