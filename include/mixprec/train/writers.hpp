// Weight writers: the last element of a step, writing the updated weights.
// At most one per chain; without one, round_model_nearest is used.
//
//   round_model_nearest     with fp32 master weights: master += update, the
//                           model copy is the master rounded to nearest even
//                           (fp8 model copies saturate instead of
//                           overflowing); without master weights: the model
//                           is rounded to nearest (small updates stall);
//   round_model_stochastic  the same with stochastic rounding keyed on
//                           (seed, step, element): without master weights
//                           the model tracks the fp32 trajectory in
//                           expectation;
//   kahan_summation<F>      without master weights: Kahan-compensated
//                           updates of the low-precision weights, the lost
//                           low part kept in a compensation array of format F.
#pragma once

#include <cstdint>
#include <type_traits>

#include <mixprec/cast/convert.hpp>
#include <mixprec/component/component.hpp>

namespace mixprec {

struct writer_defaults : component_defaults {
  static constexpr rule_kind kind = rule_kind::stage;
  static constexpr bool is_writer = true;
  static constexpr bool uses_compensation = false;
  static constexpr bool needs_narrow_model = false;
  scalars initial_scalars() const { return {}; }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO&) const { return u; }
};

struct round_model_nearest : writer_defaults {
  static constexpr const char* name = "round_model_nearest";
  template <class Model>
  MIXPREC_HOST_DEVICE Model round(float x, std::size_t, std::uint64_t) const {
    return convert<Model, weight_overflow<Model>>(x);
  }
};

struct round_model_stochastic : writer_defaults {
  static constexpr const char* name = "round_model_stochastic";
  static constexpr bool needs_narrow_model = true;  // rounding to float would change nothing
  std::uint64_t seed = 0;
  round_model_stochastic() = default;
  explicit round_model_stochastic(std::uint64_t s) : seed(s) {}
  template <class Model>
  MIXPREC_HOST_DEVICE Model round(float x, std::size_t index, std::uint64_t t) const {
    return convert<Model, weight_overflow<Model>>(x, round_stochastic{seed, t}, index);
  }
};

template <class F = bfloat16>
struct kahan_summation : writer_defaults {
  static constexpr const char* name = "kahan_summation";
  static constexpr bool uses_compensation = true;
  using state_format = F;
  std::size_t state_slots() const { return 1; }
  template <class Model>
  MIXPREC_HOST_DEVICE Model round(float x, std::size_t, std::uint64_t) const {
    return convert<Model>(x);
  }
};

}  // namespace mixprec
