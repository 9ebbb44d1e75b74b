// Clips the update by its global p-norm over all parameters, with PyTorch's
// formula (torch.nn.utils.clip_grad_norm_): coef = max_norm / (norm + 1e-6),
// clamped to 1, computed in float; every element is multiplied by coef.
// p is any order >= 1 or infinity_norm (the largest magnitude). The norm is
// accumulated in double in the statistics pass, from the gradient as this
// component receives it (after unscaling), whatever the gradients' format.
#pragma once

#include <cmath>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>

namespace mixprec {

struct clip_by_global_norm : component_defaults {
  static constexpr const char* name = "clip_by_global_norm";
  static constexpr rule_kind kind = rule_kind::multiplier;
  static constexpr bool needs_global_norm = true;

  float max_norm = 1.0f;
  float p = 2.0f;

  clip_by_global_norm() = default;
  explicit clip_by_global_norm(float max, float order = 2.0f) : max_norm(max), p(order) {}

  struct scalars {
    float norm;  // the last measured norm (read it back for logging)
    float coef;  // the multiplier of the step being applied
  };

  MIXPREC_HOST_DEVICE float norm_order() const { return p; }
  scalars initial_scalars() const {
    detail::require(std::isfinite(max_norm) && max_norm > 0, "clip_by_global_norm: max_norm must be positive and finite (got ",
                    max_norm, ")");
    detail::require(p >= 1.0f, "clip_by_global_norm: the norm order p must be >= 1 or infinity_norm (got ", p, ")");
    return {0.0f, 1.0f};
  }
  MIXPREC_HOST_DEVICE void decide(scalars& s, decide_context& ctx) const {
    s.norm = static_cast<float>(ctx.norm);
    const float coef = max_norm / (s.norm + 1e-6f);
    s.coef = coef < 1.0f ? coef : 1.0f;  // NaN norm: coef is NaN, as in PyTorch
  }
  MIXPREC_HOST_DEVICE float multiplier_of(const scalars& s) const { return s.coef; }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO& io) const { return u * io.scalars.coef; }
};

}  // namespace mixprec
