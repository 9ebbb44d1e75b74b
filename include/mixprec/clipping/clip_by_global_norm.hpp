// Clips the update by its global p-norm over all parameters, with PyTorch's
// formula (torch.nn.utils.clip_grad_norm_): coef = max_norm / (norm + 1e-6),
// clamped to 1, computed in float; every element is multiplied by coef.
// (torch divides as 1 / (norm + 1e-6) times max_norm, a Python scalar over a
// tensor, which can differ from the division here by an ulp.)
// p is any order >= 1 or infinity_norm (the largest magnitude). The norm is
// accumulated in double in the statistics pass, from the gradient as this
// component receives it (after unscaling), whatever the gradients' format.
#pragma once

#include <cmath>
#include <cstddef>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

struct clip_by_global_norm {
  static constexpr const char* name = "clip_by_global_norm";
  struct traits : component_traits {
    static constexpr bool uniform_multiplier = true;
  };

  float max_norm = 1.0f;
  float p = 2.0f;

  clip_by_global_norm() = default;
  explicit clip_by_global_norm(float max, float order = 2.0f) : max_norm(max), p(order) {}

  struct scalars {
    float norm;  // the last measured norm (read it back for logging)
    float coef;  // the multiplier of the step being applied
  };
  static constexpr statistic statistics[] = {{"norm", scope::global, reduction::power_sum, source::input}};
  static constexpr stat_id<statistic_index(statistics, "norm")> norm{};
  MIXPREC_HOST_DEVICE float power(std::size_t) const { return p; }

  scalars initial_scalars() const {
    detail::require(std::isfinite(max_norm) && max_norm > 0,
                    "clip_by_global_norm: max_norm must be positive and finite (got ", max_norm, ")");
    detail::require(p >= 1.0f, "clip_by_global_norm: the norm order p must be >= 1 or infinity_norm (got ", p, ")");
    return {0.0f, 1.0f};
  }
  // A checkpoint's norm is NaN or non-negative, its coefficient NaN (a NaN
  // norm) or in [0, 1]: what decide() writes.
  scalars restored_scalars(const scalars& s, const scalars&, const clip_by_global_norm&) const {
    detail::require(std::isnan(s.norm) || s.norm >= 0.0f, "clip_by_global_norm: the checkpoint's norm ", s.norm,
                    " is negative");
    detail::require(std::isnan(s.coef) || (s.coef >= 0.0f && s.coef <= 1.0f),
                    "clip_by_global_norm: the checkpoint's "
                    "coefficient ",
                    s.coef, " lies outside [0, 1]");
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    s.norm = static_cast<float>(detail::root_of(ctx.statistic(norm), p));
    const float coef = max_norm / (s.norm + 1e-6f);
    s.coef = coef < 1.0f ? coef : 1.0f;  // NaN norm: coef is NaN, as in PyTorch
  }
  MIXPREC_HOST_DEVICE float multiplier(const scalars& s) const { return s.coef; }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return detail::mul(u, ctx.scalars().coef);
  }
  MIXPREC_HOST_DEVICE float report(quantity q, const scalars&, const scalars& now) const {
    return q == quantity::clip_coefficient ? now.coef : q == quantity::gradient_norm ? now.norm : NAN;
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("max_norm", max_norm);
    v("p", p);
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("norm", s.norm);
    v("coef", s.coef);
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
