// Static loss scaling, as a chain component: gradients are multiplied by
// 1 / scale (the reciprocal rounded as PyTorch rounds it). Purely element-
// wise, so a chain of it, clip_by_value and SGD makes one pass. It does not
// look for inf/NaN: put skip_if_non_finite{} in the chain to skip such steps.
#pragma once

#include <cmath>
#include <limits>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

struct static_loss_scale {
  static constexpr const char* name = "static_loss_scale";
  struct traits : component_traits {
    static constexpr bool before_statistics = true;
    static constexpr bool linear = true;
    static constexpr bool loss_scaler = true;
  };

  float scale = 1.0f;

  static_loss_scale() = default;
  explicit static_loss_scale(float s) : scale(s) {}

  struct scalars {
    float scale, inv_scale;
  };

  scalars initial_scalars() const {
    detail::require(std::isfinite(scale) && scale >= std::numeric_limits<float>::min(),
                    "static_loss_scale: scale must be finite and at least 2^-126, the smallest normal float (got ",
                    scale, "): a smaller scale's reciprocal overflows");
    return {scale, detail::reciprocal_as_pytorch(scale)};
  }
  // A checkpoint's scale must be the one it was saved with; this scaler's
  // own scale applies from then on.
  scalars restored_scalars(const scalars& s, const scalars& initial, const static_loss_scale& saved_with) const {
    detail::require(s.scale == saved_with.scale && s.inv_scale == detail::reciprocal_as_pytorch(saved_with.scale),
                    "static_loss_scale: the checkpoint's scale ", s.scale, " (inverse ", s.inv_scale,
                    ") is not the scale ", saved_with.scale, " it was saved with");
    return initial;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return detail::mul(u, ctx.scalars().inv_scale);
  }
  MIXPREC_HOST_DEVICE float report(quantity q, const scalars& s, const scalars&) const {
    return q == quantity::loss_scale ? s.scale : NAN;
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("scale", scale);
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("scale", s.scale);
    v("inv_scale", s.inv_scale);
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
