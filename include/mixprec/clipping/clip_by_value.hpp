// Clips every update element to [-limit, limit] (PyTorch clip_grad_value_,
// Optax clip). NaN stays NaN.
#pragma once

#include <cmath>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

struct clip_by_value {
  static constexpr const char* name = "clip_by_value";
  struct traits : component_traits {
    static constexpr bool before_statistics = true;  // non-linear: norms after it are measured, not scaled
  };

  float limit = 1.0f;

  clip_by_value() = default;
  explicit clip_by_value(float l) : limit(l) {}

  no_scalars initial_scalars() const {
    detail::require(limit > 0 && !std::isnan(limit), "clip_by_value: limit must be positive (got ", limit, ")");
    return {};
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx&) const {
    return u > limit ? limit : (u < -limit ? -limit : u);
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("limit", limit);
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
