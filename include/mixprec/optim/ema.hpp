// An exponential moving average of the weights, kept inside the update pass
// (no extra pass). After each completed step (not a skipped or held one):
//
//   ema = decay_t * ema + (1 - decay_t) * w          (timm's ModelEmaV2)
//
// starting from the weights at init() (timm copies the model; Optax's `ema`
// starts from zero and divides by 1 - decay^t, which is not done here).
// decay is a double, and decay_t and 1 - decay_t are formed in double and
// each rounded once to float, as timm computes them from a Python float: a
// decimal decay such as 0.999 then gives timm's coefficients (forming
// 1 - decay from the float nearest 0.999 would be off by 1.3e-5 relative).
//
// decay_t is `decay`, or a warm-up of it:
//   ema_warmup::tensorflow   min(decay, (1 + n) / (10 + n)), n the completed
//                            steps before this one: TensorFlow's
//                            ExponentialMovingAverage with num_updates.
//   ema_warmup::timm_v3      timm ModelEmaV3's use_warmup rule with
//                            step = t (this step's number, from 1):
//                            s = t - 1; decay_t = 0 at s = 0, else
//                            max(min_decay, min(decay, 1 - (1 + s / gamma)^-power)).
//                            The update is then timm V3's in-place lerp,
//                            ema + (1 - decay_t) (w - ema) (torch.lerp's form).
//
// Put it last in the chain: it averages the weights the step writes (the
// fp32 master weights; without master weights, the update before it is
// rounded into the model). The average is a per-element state field, saved
// in checkpoints and readable for evaluation:
//
//   state.field<K>("ema")     a view of every element's average (arena layout)
#pragma once

#include <cmath>
#include <cstdint>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/optim/stages.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

enum class ema_warmup : std::uint32_t { none, tensorflow, timm_v3 };

struct ema_of_weights {
  static constexpr const char* name = "ema_of_weights";
  struct traits : component_traits {
    static constexpr bool keeps_update = true;
  };
  static constexpr state_field state[] = {
      {"ema", format_id::f32, extent::element, parameter_set::all, true, true, /*from_weights=*/true}};
  static constexpr field_id<field_index(state, "ema")> ema{};

  double decay = 0.9999;
  ema_warmup warmup = ema_warmup::none;
  // ema_warmup::timm_v3 only (timm's defaults).
  double warmup_gamma = 1.0, warmup_power = 2.0 / 3.0, min_decay = 0.0;

  ema_of_weights() = default;
  explicit ema_of_weights(double d, ema_warmup w = ema_warmup::none) : decay(d), warmup(w) {}

  // Variant 1 (timm_v3): the lerp form of the update.
  static constexpr int variants = 2;
  int variant() const { return warmup == ema_warmup::timm_v3 ? 1 : 0; }

  struct scalars {
    float decay;      // decay_t of this step, rounded once
    float one_minus;  // 1 - decay_t in double, rounded once
  };
  scalars initial_scalars() const {
    detail::require(decay >= 0.0 && decay <= 1.0, "ema_of_weights: decay must lie in [0, 1] (got ", decay, ")");
    detail::require(warmup == ema_warmup::none || warmup == ema_warmup::tensorflow || warmup == ema_warmup::timm_v3,
                    "ema_of_weights: unknown warmup ", static_cast<std::uint32_t>(warmup));
    if (warmup == ema_warmup::timm_v3) {
      detail::require(warmup_gamma > 0.0 && std::isfinite(warmup_gamma),
                      "ema_of_weights: warmup_gamma must be finite and positive (got ", warmup_gamma, ")");
      detail::require(warmup_power > 0.0 && std::isfinite(warmup_power),
                      "ema_of_weights: warmup_power must be finite and positive (got ", warmup_power, ")");
      detail::require(min_decay >= 0.0 && min_decay <= decay, "ema_of_weights: min_decay must lie in [0, decay] (got ",
                      min_decay, ")");
    }
    return {static_cast<float>(decay), static_cast<float>(1.0 - decay)};
  }
  scalars restored_scalars(const scalars& s, const scalars&, const ema_of_weights&) const {
    detail::require(s.decay >= 0.0f && s.decay <= 1.0f, "ema_of_weights: the checkpoint's decay ", s.decay,
                    " must lie in [0, 1]");
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    double d = decay;
    if (warmup == ema_warmup::tensorflow) {
      const double n = static_cast<double>(ctx.t() - 1);
      const double ramp = (1.0 + n) / (10.0 + n);
      d = ramp < d ? ramp : d;
    } else if (warmup == ema_warmup::timm_v3) {
      const double steps = static_cast<double>(ctx.t() - 1);
      if (steps <= 0.0) {
        d = 0.0;
      } else {
        const double ramp = 1.0 - pow(1.0 + steps / warmup_gamma, -warmup_power);
        d = ramp < d ? ramp : d;
        d = d > min_decay ? d : min_decay;
      }
    }
    s.decay = static_cast<float>(d);
    s.one_minus = static_cast<float>(1.0 - d);
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const float w = ctx.updated_weight(u);
    if constexpr (Ctx::variant == 1) {
      const float weight = ctx.scalars().one_minus;
      ctx.state(ema).update([&](float old) { return detail::torch_lerp(old, w, weight); });
    } else {
      const float d = ctx.scalars().decay, c = ctx.scalars().one_minus;
      ctx.state(ema).update([&](float old) { return detail::mul(d, old) + detail::mul(c, w); });
    }
    return u;
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("decay", decay);
    v("warmup", static_cast<std::uint32_t>(warmup));
    v("warmup_gamma", warmup_gamma);
    v("warmup_power", warmup_power);
    v("min_decay", min_decay);
  }
  // decide() recomputes both scalars before every update; "decay" is saved
  // as it always was, so checkpoints of earlier versions still load.
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("decay", s.decay);
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
