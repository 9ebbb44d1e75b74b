// Weight writers: the last element of a step, writing the updated weights.
// At most one per chain; without one, round_model_nearest is used.
//
//   round_model_nearest     with fp32 master weights: master += update, the
//                           model copy is the master rounded to nearest even
//                           (8-bit model copies saturate instead of
//                           overflowing); without master weights: the model
//                           is rounded to nearest (small updates stall);
//   round_model_stochastic<G>  the same with stochastic rounding keyed on
//                           (seed, step, element), its bits from generator
//                           G (cast/generator.hpp; SplitMix64 by default):
//                           without master weights the model tracks the
//                           fp32 trajectory in expectation;
//   kahan_summation<F>      without master weights: Kahan-compensated
//                           updates of the low-precision weights, the lost
//                           low part kept in a compensation field of format F.
//
// A writer is a component with traits::writes_weights and two rules, both
// given the element's context (state, index, step):
//   Model round_weight<Model>(float master, ctx)                 the model copy of fp32 master weights
//   Model write_weight<Model>(float w, float updated, float step, ctx)   without master weights:
//         the new weight from the old one (w), its exact update (updated = w * decay + u)
//         and the change (step = updated - w)
// plus works_with_master (false: the arena must have no master weights) and
// needs_narrow_model (true: the model copy must be narrower than float).
#pragma once

#include <cstdint>
#include <type_traits>

#include <mixprec/cast/convert.hpp>
#include <mixprec/component/component.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

struct writer_traits : component_traits {
  static constexpr bool writes_weights = true;
};

struct round_model_nearest {
  static constexpr const char* name = "round_model_nearest";
  using traits = writer_traits;
  static constexpr bool works_with_master = true;
  static constexpr bool needs_narrow_model = false;
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model round_weight(float v, const Ctx&) const {
    return convert<Model, weight_overflow<Model>>(v);
  }
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model write_weight(float, float updated, float, const Ctx&) const {
    return convert<Model, weight_overflow<Model>>(updated);
  }
};

template <class G = default_generator>
struct round_model_stochastic {
  static_assert(is_generator_v<G>,
                "round_model_stochastic<G>: G must be a generator policy (cast/generator.hpp), "
                "e.g. splitmix_generator or philox_generator");
  static constexpr const char* name = "round_model_stochastic";
  using traits = writer_traits;
  using generator = G;
  static constexpr bool works_with_master = true;
  static constexpr bool needs_narrow_model = true;  // rounding to float would change nothing
  // The host runner draws this writer's bits a generator call per 2 * words
  // (16-bit model) or words (8-bit) elements before each row
  // (train/pass_runner.hpp).
  static constexpr bool draws_per_row = true;
  std::uint64_t seed = 0;
  round_model_stochastic() = default;
  explicit round_model_stochastic(std::uint64_t s) : seed(s) {}
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model round_weight(float v, const Ctx& ctx) const {
    // The same bits as convert<Model>(v, round_stochastic<G>{seed, ctx.t()}, ctx.index()).
    return stochastic_round<Model, weight_overflow<Model>>(v, ctx.template stochastic_bits<Model>(seed));
  }
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model write_weight(float, float updated, float, const Ctx& ctx) const {
    return round_weight<Model>(updated, ctx);
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("seed", seed);
  }
};
round_model_stochastic()->round_model_stochastic<>;
round_model_stochastic(std::uint64_t)->round_model_stochastic<>;

template <class F = bfloat16>
struct kahan_summation {
  static_assert(std::is_same_v<F, float> || std::is_same_v<F, bfloat16>,
                "kahan_summation: the compensation is float or bfloat16");
  static constexpr const char* name = "kahan_summation";
  using traits = writer_traits;
  static constexpr bool works_with_master = false;
  static constexpr bool needs_narrow_model = false;
  // The low part each weight lost, rounded to nearest (it is a correction).
  static constexpr state_field state[] = {
      {"compensation", format_traits<F>::id, extent::element, parameter_set::all, true, false}};
  static constexpr field_id<field_index(state, "compensation")> compensation{};
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model round_weight(float v, const Ctx&) const {
    return convert<Model>(v);
  }
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model write_weight(float w, float, float step, const Ctx& ctx) const {
    // Kahan: fold the carried error into the update, round, keep the new error.
    const auto carried = ctx.state(compensation);
    const float y = step - carried.get();
    const Model rounded = convert<Model>(w + y);
    carried.set((to_float(rounded) - w) - y);
    return rounded;
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
