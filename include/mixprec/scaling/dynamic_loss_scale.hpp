// Dynamic loss scaling, as a chain component.
//
// Defaults and algorithm are PyTorch's GradScaler (torch/amp/grad_scaler.py,
// _amp_update_scale_): the loss is multiplied by `scale` before backward; the
// step's gradients are multiplied by inv_scale = float(1.0 / double(scale));
// a non-finite gradient skips the step, multiplies the scale by
// backoff_factor and resets the growth tracker; after growth_interval
// consecutive finite steps the scale is multiplied by growth_factor (kept
// only if the result is finite) and the tracker resets.
//
// Beyond PyTorch:
//   hysteresis              overflows tolerated before backing off, as
//                           DeepSpeed's delayed_shift (1 = PyTorch);
//   consecutive_hysteresis  refill the tolerance after every finite step
//                           (DeepSpeed's consecutive_hysteresis) instead of
//                           only when the scale grows;
//   min_scale, max_scale    bounds of the scale.
//
// The scale never leaves [min_scale, max_scale]. min_scale defaults to, and
// may not be below, the smallest normal float (2^-126): the scale is never
// 0 or subnormal, and its reciprocal (at most 2^126) never overflows.
// PyTorch has no floor: after enough consecutive overflows its scale
// underflows to 0 and every later step is skipped; here the scale stops at
// the floor, where every step whose unscaled gradients are non-finite is
// still skipped (the engine checks this scaler's output). Up to the floor
// the trajectory equals GradScaler's bit for bit: growth and backoff
// factors are doubles, and scale * factor is computed in double and
// rounded to float, as _amp_update_scale_ does.
//
// Everything lives on the device: scale and counters are decided by the
// chain's scalar rule; the host reads them only through the chain state's
// explicit read-back calls.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

struct dynamic_loss_scale {
  static constexpr const char* name = "dynamic_loss_scale";
  struct traits : component_traits {
    static constexpr bool before_statistics = true;  // unscales by the scale in effect for the step
    static constexpr bool linear = true;
    static constexpr bool may_skip = true;
    static constexpr bool loss_scaler = true;
  };

  float init_scale = 65536.0f;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  std::uint32_t growth_interval = 2000;
  std::uint32_t hysteresis = 1;
  bool consecutive_hysteresis = false;
  float min_scale = std::numeric_limits<float>::min();  // 2^-126, the smallest normal float
  float max_scale = std::numeric_limits<float>::infinity();

  struct scalars {
    float scale;      // multiply the next loss by this
    float inv_scale;  // 1 / scale, PyTorch's rounding
    std::uint32_t growth_tracker;
    std::uint32_t hysteresis_left;
  };
  // Whether the unscaled gradient (this component's output) has inf or NaN.
  static constexpr statistic statistics[] = {
      {"non_finite", scope::global, reduction::non_finite_count, source::output}};
  static constexpr stat_id<statistic_index(statistics, "non_finite")> non_finite{};

  scalars initial_scalars() const {
    constexpr float smallest_normal = std::numeric_limits<float>::min();
    detail::require(
        std::isfinite(init_scale) && init_scale >= smallest_normal,
        "dynamic_loss_scale: init_scale must be finite and at least 2^-126, the smallest normal float (got ",
        init_scale, ")");
    detail::require(std::isfinite(growth_factor) && growth_factor > 1.0,
                    "dynamic_loss_scale: growth_factor must be finite and greater than 1 (got ", growth_factor, ")");
    detail::require(backoff_factor > 0.0 && backoff_factor < 1.0,
                    "dynamic_loss_scale: backoff_factor must lie in (0, 1) (got ", backoff_factor, ")");
    detail::require(growth_interval > 0, "dynamic_loss_scale: growth_interval must be at least 1");
    detail::require(hysteresis > 0, "dynamic_loss_scale: hysteresis must be at least 1 (1 disables it)");
    detail::require(min_scale >= smallest_normal && !std::isinf(min_scale),
                    "dynamic_loss_scale: min_scale must be finite and at least 2^-126, the smallest normal float (got ",
                    min_scale, "): a smaller scale's reciprocal overflows");
    detail::require(max_scale >= min_scale, "dynamic_loss_scale: need min_scale <= max_scale (got ", min_scale, ", ",
                    max_scale, ")");
    detail::require(init_scale >= min_scale && init_scale <= max_scale, "dynamic_loss_scale: init_scale ", init_scale,
                    " lies outside [min_scale, max_scale] = [", min_scale, ", ", max_scale, "]");
    return {init_scale, detail::reciprocal_as_pytorch(init_scale), 0u, hysteresis};
  }

  // Scalars from a checkpoint: what this scaler can hold under the
  // hyperparameters they were saved with (a scale in their [min_scale,
  // max_scale] with its reciprocal, a tracker below their growth_interval,
  // a tolerance in [1, hysteresis]), then brought within this scaler's
  // bounds as decide() clamps a grown or backed-off scale.
  scalars restored_scalars(scalars s, const scalars&, const dynamic_loss_scale& saved_with) const {
    constexpr float smallest_normal = std::numeric_limits<float>::min();
    detail::require(std::isfinite(s.scale) && s.scale >= smallest_normal,
                    "dynamic_loss_scale: the checkpoint's loss "
                    "scale ",
                    s.scale, " is not a scale the scaler holds (finite, at least 2^-126)");
    detail::require(s.scale >= saved_with.min_scale && s.scale <= saved_with.max_scale,
                    "dynamic_loss_scale: the "
                    "checkpoint's loss scale ",
                    s.scale, " lies outside [min_scale, max_scale] = [", saved_with.min_scale, ", ",
                    saved_with.max_scale, "] of the hyperparameters it was saved with");
    detail::require(s.inv_scale == detail::reciprocal_as_pytorch(s.scale),
                    "dynamic_loss_scale: the checkpoint's "
                    "inverse scale ",
                    s.inv_scale, " is not the reciprocal of its loss scale ", s.scale);
    detail::require(s.growth_tracker < saved_with.growth_interval,
                    "dynamic_loss_scale: the checkpoint's growth "
                    "tracker ",
                    s.growth_tracker, " is not below the growth_interval ", saved_with.growth_interval,
                    " it was saved with");
    detail::require(s.hysteresis_left >= 1 && s.hysteresis_left <= saved_with.hysteresis,
                    "dynamic_loss_scale: the "
                    "checkpoint's hysteresis left ",
                    s.hysteresis_left, " lies outside [1, hysteresis] = [1, ", saved_with.hysteresis, "]");
    s.scale = s.scale > max_scale ? max_scale : s.scale < min_scale ? min_scale : s.scale;
    s.inv_scale = detail::reciprocal_as_pytorch(s.scale);
    s.hysteresis_left = s.hysteresis_left < hysteresis ? s.hysteresis_left : hysteresis;
    return s;  // a tracker at or past a lowered growth_interval grows the scale at the next finite step
  }

  // The scalars here are those of the step's start: the scale the loss was multiplied by.
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return detail::mul(u, ctx.scalars().inv_scale);
  }

  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    if (ctx.statistic(non_finite) != 0.0) {
      ctx.skip();
      if (s.hysteresis_left <= 1) {
        const float backed = static_cast<float>(static_cast<double>(s.scale) * backoff_factor);  // as PyTorch
        s.scale = backed > min_scale ? backed : min_scale;
      } else {
        --s.hysteresis_left;
      }
      s.growth_tracker = 0;
    } else {
      if (consecutive_hysteresis) s.hysteresis_left = hysteresis;
      const std::uint32_t successful = s.growth_tracker + 1;
      if (successful >= growth_interval) {
        const float grown = static_cast<float>(static_cast<double>(s.scale) * growth_factor);
        if (detail::finite(grown)) s.scale = grown < max_scale ? grown : max_scale;
        s.growth_tracker = 0;
        if (!consecutive_hysteresis) s.hysteresis_left = hysteresis;
      } else {
        s.growth_tracker = successful;
      }
    }
    s.inv_scale = detail::reciprocal_as_pytorch(s.scale);
  }

  MIXPREC_HOST_DEVICE float report(quantity q, const scalars& at_start, const scalars&) const {
    return q == quantity::loss_scale ? at_start.scale : NAN;
  }

  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("init_scale", init_scale);
    v("growth_factor", growth_factor);
    v("backoff_factor", backoff_factor);
    v("growth_interval", growth_interval);
    v("hysteresis", hysteresis);
    v("consecutive_hysteresis", consecutive_hysteresis);
    v("min_scale", min_scale);
    v("max_scale", max_scale);
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("scale", s.scale);
    v("inv_scale", s.inv_scale);
    v("growth_tracker", s.growth_tracker);
    v("hysteresis_left", s.hysteresis_left);
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
