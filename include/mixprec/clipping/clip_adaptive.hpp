// Adaptive gradient clipping, unit-wise (Brock et al. 2021, "High-performance
// large-scale image recognition without normalization"; the rule of timm's
// adaptive_clip_grad and of Optax's adaptive_grad_clip): for each unit,
//   max = clipping * max(||w_unit||, eps)
//   u  <- u                                if ||u_unit|| < max
//         u * max / max(||u_unit||, 1e-6)  otherwise.
// Units follow PyTorch's layout, as timm's: for a parameter of shape
// [out, ...] each of the `out` slices is a unit; a parameter of rank <= 1 is
// one unit. (Optax's units are for JAX's layouts, [in, out] and HWIO: a
// unit there is an index of the last axis.) Norms are accumulated in double
// in the statistics pass.
#pragma once

#include <cmath>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

struct clip_adaptive {
  static constexpr const char* name = "clip_adaptive";

  float clipping = 0.01f;
  float eps = 1e-3f;

  clip_adaptive() = default;
  explicit clip_adaptive(float c, float e = 1e-3f) : clipping(c), eps(e) {}

  static constexpr statistic statistics[] = {{"input_sq", scope::slice, reduction::power_sum, source::input},
                                             {"weight_sq", scope::slice, reduction::power_sum, source::weights}};
  static constexpr stat_id<statistic_index(statistics, "input_sq")> input_sq{};
  static constexpr stat_id<statistic_index(statistics, "weight_sq")> weight_sq{};

  no_scalars initial_scalars() const {
    detail::require(std::isfinite(clipping) && clipping > 0,
                    "clip_adaptive: clipping must be positive and finite (got ", clipping, ")");
    detail::require(std::isfinite(eps) && eps >= 0, "clip_adaptive: eps must be non-negative (got ", eps, ")");
    return {};
  }
  // The unit's factor (the same for every element of a tile: computed once).
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const float w = static_cast<float>(sqrt(ctx.statistic(weight_sq)));
    const float g = static_cast<float>(sqrt(ctx.statistic(input_sq)));
    const float max = (w > eps ? w : eps) * clipping;
    return detail::mul(u, g < max ? 1.0f : max / (g > 1e-6f ? g : 1e-6f));
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("clipping", clipping);
    v("eps", eps);
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
