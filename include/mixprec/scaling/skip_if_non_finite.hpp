// A guard without scaling: skips the step (nothing changes, the step count
// does not advance) when a gradient element or a measured norm is inf or
// NaN. Optax's apply_if_finite without its retry budget.
#pragma once

#include <mixprec/component/component.hpp>

namespace mixprec {

struct skip_if_non_finite : component_defaults {
  static constexpr const char* name = "skip_if_non_finite";
  static constexpr rule_kind kind = rule_kind::elementwise;
  static constexpr bool needs_non_finite = true;
  static constexpr bool guards = true;

  scalars initial_scalars() const { return {}; }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO&) const { return u; }
  MIXPREC_HOST_DEVICE void decide(scalars&, decide_context& ctx) const {
    if (ctx.non_finite) ctx.step->skip = 1;
  }
};

}  // namespace mixprec
