// A loss-scaling component that takes its scale and its skip decision from
// torch.amp.GradScaler instead of keeping its own: the optimizer's
// `grad_scale` (the scale the loss was multiplied by, or none when
// GradScaler.unscale_ already divided the gradients) and `found_inf` (what
// GradScaler's own pass over the gradients found), both device tensors that
// GradScaler hands an optimizer declaring `_step_supports_amp_scaling`.
//
// Its scalar rule reads them on the device, so the step still makes no host
// round trip: a non-zero found_inf skips the step, and every later element
// rule sees the gradient multiplied by 1 / grad_scale, rounded as PyTorch's
// unscale does. It is a uniform multiplier, so clipping after it measures
// the unscaled norm without another pass. GradScaler itself keeps and
// updates the scale.
#pragma once

#include <cmath>
#include <cstdint>

#include <mixprec/component/component.hpp>

namespace mixprec::python {

struct grad_scaler_input {
  static constexpr const char* name = "grad_scaler_input";
  struct traits : component_traits {
    static constexpr bool uniform_multiplier = true;
    static constexpr bool may_skip = true;
  };

  const float* grad_scale = nullptr;  // device; null: the gradients are already unscaled
  const float* found_inf = nullptr;   // device; non-zero: skip this step

  struct scalars {
    float scale, inv_scale;
  };
  scalars initial_scalars() const { return {1.0f, 1.0f}; }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    s.scale = grad_scale != nullptr ? *grad_scale : 1.0f;
    s.inv_scale = grad_scale != nullptr ? detail::reciprocal_as_pytorch(s.scale) : 1.0f;
    if (found_inf != nullptr && *found_inf != 0.0f) ctx.skip();
  }
  MIXPREC_HOST_DEVICE float multiplier(const scalars& s) const { return s.inv_scale; }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u * ctx.scalars().inv_scale;
  }
  MIXPREC_HOST_DEVICE float report(quantity q, const scalars&, const scalars& now) const {
    return q == quantity::loss_scale ? now.scale : NAN;
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("scale", s.scale);
    v("inv_scale", s.inv_scale);
  }
};

}  // namespace mixprec::python
