// An exponential moving average of the weights, kept inside the update pass
// (no extra pass), as timm's ModelEmaV2 and Optax's ema define it:
//
//   ema = decay_t * ema + (1 - decay_t) * w      after each completed step,
//
// starting from the initial weights (timm copies the model), with
// decay_t = decay, or with warmup min(decay, (1 + t) / (10 + t)) (timm's
// ModelEmaV3 warmup, t the number of completed steps before this one).
// Put it last in the chain: it averages the weights the step writes (the
// fp32 master weights; without master weights, the update before it is
// rounded into the model). The average is a per-element state field,
// saved in checkpoints and readable for evaluation:
//
//   state.field<K>("ema")     a view of every element's average (arena layout)
#pragma once

#include <cmath>
#include <cstdint>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>

namespace mixprec {

struct ema_of_weights {
  static constexpr const char* name = "ema_of_weights";
  struct traits : component_traits {
    static constexpr bool keeps_update = true;
  };
  static constexpr state_field state[] = {
      {"ema", format_id::f32, extent::element, parameter_set::all, true, true, /*from_weights=*/true}};
  static constexpr field_id<0> ema{};

  float decay = 0.9999f;
  bool warmup = false;

  ema_of_weights() = default;
  explicit ema_of_weights(float d, bool w = false) : decay(d), warmup(w) {}

  struct scalars {
    float decay;  // of this step
  };
  scalars initial_scalars() const {
    detail::require(decay >= 0.0f && decay <= 1.0f, "ema_of_weights: decay must lie in [0, 1] (got ", decay, ")");
    return {decay};
  }
  scalars restored_scalars(const scalars& s, const scalars&, const ema_of_weights&) const {
    detail::require(s.decay >= 0.0f && s.decay <= 1.0f, "ema_of_weights: the checkpoint's decay ", s.decay,
                    " must lie in [0, 1]");
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    const double t = static_cast<double>(ctx.t() - 1);
    const double ramp = (1.0 + t) / (10.0 + t);
    s.decay = warmup && ramp < static_cast<double>(decay) ? static_cast<float>(ramp) : decay;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const float d = ctx.scalars().decay;
    const float w = ctx.updated_weight(u);
    ctx.state(ema).update([&](float old) { return old * d + w * (1.0f - d); });
    return u;
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("decay", decay);
    v("warmup", warmup);
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("decay", s.decay);
  }
};

}  // namespace mixprec
