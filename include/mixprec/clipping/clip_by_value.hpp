// Clips every update element to [-limit, limit] (PyTorch clip_grad_value_,
// Optax clip). NaN stays NaN.
#pragma once

#include <cmath>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>

namespace mixprec {

struct clip_by_value : component_defaults {
  static constexpr const char* name = "clip_by_value";
  static constexpr rule_kind kind = rule_kind::elementwise;
  static constexpr bool linear = false;

  float limit = 1.0f;

  clip_by_value() = default;
  explicit clip_by_value(float l) : limit(l) {}

  scalars initial_scalars() const {
    detail::require(limit > 0 && !std::isnan(limit), "clip_by_value: limit must be positive (got ", limit, ")");
    return {};
  }
  MIXPREC_HOST_DEVICE float clip(float u) const { return u > limit ? limit : (u < -limit ? -limit : u); }
  MIXPREC_HOST_DEVICE float prepass(float u, const scalars&) const { return clip(u); }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO&) const { return clip(u); }
};

}  // namespace mixprec
